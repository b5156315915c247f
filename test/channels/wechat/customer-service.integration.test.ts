/**
 * WeChat customer-service mode end to end: passive when quick, pushed with custom/send
 * when slow, exactly one path delivers, quota-limited merges, error fallbacks to
 * "reply 1", one access token for many answers; plus voice transcoding through media/get.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cdata } from '../../../lib/channels/wechat/xml-reply';
import { startFakeOpenAi, type FakeOpenAi } from '../../fakes/fake-openai';
import { startFakeWeChatApi, type FakeWeChatApi } from '../../fakes/fake-wechat-api';
import { WeChatPlatform, nextMsgId, replyContent } from '../../../local/fakes/wechat-platform';
import { startGateway, type Gateway } from '../../../local/gateway';
import { until } from '../../support/until';

const APP_ID = 'wxfake0000000001';
const APP_SECRET = 'fake-secret';
/** Scaled: the ingress waits 1.5 s (4 s in production), the push takes over 0.3 s later. */
const CS_WAIT_MS = 1500;

describe('WeChat customer-service mode', () => {
  let llm: FakeOpenAi;
  let wx: FakeWeChatApi;
  let gw: Gateway;
  let platform: WeChatPlatform;

  beforeAll(async () => {
    llm = await startFakeOpenAi({ transcriptionText: 'what is the weather' });
    wx = await startFakeWeChatApi({ appId: APP_ID, appSecret: APP_SECRET });
    gw = await startGateway({
      env: {
        OPENAI_API_KEY: 'sk-test',
        OPENAI_BASE_URL: llm.baseUrl,
        WECHAT_TOKEN: 'cstoken',
        WECHAT_APP_ID: APP_ID,
        WECHAT_APP_SECRET: APP_SECRET,
        WECHAT_API_BASE: wx.baseUrl,
        WECHAT_REPLY_MODE: 'customer_service',
        WECHAT_PAGE_BYTES: '300',
        WECHAT_CS_PASSIVE_WAIT_MS: String(CS_WAIT_MS),
      },
      wechat: { pollMs: 20 },
      worker: { wechatTiming: { handOverMarginMs: 300 } },
    });
    platform = new WeChatPlatform({ url: `${gw.http.url}/wechat`, token: 'cstoken', windowMs: 2000 });
    await platform.send('o-warmup', 'warm up');
  });

  afterAll(async () => {
    await gw.stop();
    await llm.close();
    await wx.close();
  });

  beforeEach(() => {
    llm.latencyMs = 0;
    llm.answer = (req) => `Echo: ${req.lastUserText}`;
  });

  it('answers passively when the answer is ready in time, without using the quota', async () => {
    const sendsBefore = wx.sends.length;
    const outcome = await platform.send('o-fast', 'quick one');
    await gw.idle();
    expect(outcome.reply).toBe('Echo: quick one');
    expect(wx.sends.length).toBe(sendsBefore);
  });

  it('acknowledges a slow answer with success and pushes it once, with typing shown', async () => {
    // Arrange
    llm.latencyMs = CS_WAIT_MS + 400;
    // Act
    const outcome = await platform.send('o-slow', 'slow one');
    await until(() => wx.sends.some((s) => s.touser === 'o-slow'), 5000);
    await gw.idle();
    // Assert
    expect(outcome.reply).toBeUndefined();
    expect(outcome.deliveries).toBe(1);
    expect(wx.sends.filter((s) => s.touser === 'o-slow').map((s) => s.content)).toEqual(['Echo: slow one']);
    expect(wx.typings.some((t) => t.touser === 'o-slow' && t.command === 'Typing')).toBe(true);
  });

  it('merges a long answer into at most 5 messages and keeps the rest for "reply 1"', async () => {
    // Arrange: ~8 pages of 300 bytes.
    const long = Array.from({ length: 60 }, (_, i) => `Sentence number ${i} of a long answer.`).join(' ');
    llm.answer = () => long;
    llm.latencyMs = CS_WAIT_MS + 300;
    // Act
    await platform.send('o-long', 'write a lot');
    await until(() => wx.sends.filter((s) => s.touser === 'o-long').length >= 5, 8000);
    await gw.idle();
    const pushed = wx.sends.filter((s) => s.touser === 'o-long').map((s) => s.content ?? '');
    llm.latencyMs = 0;
    const fetched: string[] = [];
    for (let i = 0; i < 6; i++) {
      const r = (await platform.send('o-long', '1')).reply ?? '';
      fetched.push(r);
      if (!/reply 1/.test(r)) break;
    }
    // Assert
    expect(pushed).toHaveLength(5);
    expect(pushed[4]).toMatch(/reply 1/);
    const strip = (s: string): string => s.replace(/\n\n（[^）]*）$/, '');
    expect([...pushed, ...fetched].map(strip).join('')).toBe(long);
  });

  it.each([45015, 45047, 48001])('keeps the answer for the next message after %i and says so', async (errcode) => {
    // Arrange
    const user = `o-err-${errcode}`;
    llm.latencyMs = CS_WAIT_MS + 300;
    wx.failNext('message/custom/send', errcode);
    // Act
    const first = await platform.send(user, 'will the push work?');
    await new Promise((r) => setTimeout(r, CS_WAIT_MS + 600));
    await gw.idle();
    llm.latencyMs = 0;
    const next = await platform.send(user, 'hello again');
    // Assert
    expect(first.reply).toBeUndefined();
    expect(next.reply).toMatch(/could not be sent earlier/);
    expect(next.reply).toContain('Echo: will the push work?');
    // The passive reply carried the older answer, so the new question's answer is pushed.
    await until(() => wx.sends.some((s) => s.touser === user), 5000);
    await gw.idle();
    expect(wx.sends.filter((s) => s.touser === user).map((s) => s.content)).toEqual(['Echo: hello again']);
  });

  it('uses one access token for 50 pushed answers', async () => {
    // Arrange
    const before = wx.stableTokenCalls + wx.tokenCalls;
    llm.latencyMs = CS_WAIT_MS + 300;
    // Act: 50 users at once, each answer pushed.
    await Promise.all(Array.from({ length: 50 }, (_, i) => platform.postOnce(
      `<xml><ToUserName>${cdata('gh_x')}</ToUserName><FromUserName>${cdata(`o-many-${i}`)}</FromUserName><CreateTime>${Math.floor(Date.now() / 1000)}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[q${i}]]></Content><MsgId>${nextMsgId()}</MsgId></xml>`,
    )));
    await until(() => wx.sends.filter((s) => s.touser.startsWith('o-many-')).length >= 50, 30000);
    // Assert
    expect(wx.sends.filter((s) => s.touser.startsWith('o-many-'))).toHaveLength(50);
    expect(wx.stableTokenCalls + wx.tokenCalls - before).toBeLessThanOrEqual(1);
    expect(wx.tokenCalls).toBe(0);
  }, 60000);

  it('transcribes a voice message without Recognition (AMR → WAV) and answers it', async () => {
    // Arrange
    const amr = readFileSync(join(__dirname, '../../fixtures/audio/hello.amr'));
    wx.addMedia('voice-1', amr, 'audio/amr');
    const before = llm.transcriptionCalls;
    // Act
    const res = await platform.postOnce(
      `<xml><ToUserName>${cdata('gh_x')}</ToUserName><FromUserName>${cdata('o-voice')}</FromUserName><CreateTime>${Math.floor(Date.now() / 1000)}</CreateTime><MsgType><![CDATA[voice]]></MsgType><MediaId><![CDATA[voice-1]]></MediaId><Format><![CDATA[amr]]></Format><MsgId>${nextMsgId()}</MsgId></xml>`,
    );
    // Assert: delivered exactly once, passively or (if decoding took past the wait) pushed.
    const passive = replyContent(res.body);
    if (passive === undefined) await until(() => wx.sends.some((s) => s.touser === 'o-voice'), 5000);
    await gw.idle();
    const pushed = wx.sends.filter((s) => s.touser === 'o-voice').map((s) => s.content);
    expect([passive, ...pushed].filter((t) => t !== undefined)).toEqual(['Echo: what is the weather']);
    expect(llm.transcriptionCalls - before).toBe(1);
    const sent = llm.transcriptionRequests.at(-1);
    expect(sent?.filename).toBe('voice.wav');
    expect(Buffer.from(sent?.bytes ?? new Uint8Array()).subarray(0, 4).toString('ascii')).toBe('RIFF');
  });
});
