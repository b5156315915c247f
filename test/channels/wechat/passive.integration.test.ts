/**
 * WeChat passive replies end to end: the fake platform posts signed messages to the
 * real Lambda handler over HTTP with a scaled-down 5 s window (1 s here) and retries
 * like WeChat; the worker runs from the SQS emulator; the LLM is a fake over HTTP.
 */
import { startFakeOpenAi, type FakeOpenAi } from '../../fakes/fake-openai';
import { WeChatPlatform, nextMsgId, replyContent, textMessageXml } from '../../../local/fakes/wechat-platform';
import { startGateway, type Gateway } from '../../../local/gateway';
import { RecordingMetrics } from '../../fakes/fake-metrics';
import { METRIC } from '../../../lib/core/metrics';
import type { Job } from '../../../lib/types';

const TOKEN = 'testtoken';
/** Scaled WeChat timing: a 2 s window stands for 5 s; a 1.5 s wait stands for 4.5 s. */
const WINDOW_MS = 2000;

describe('WeChat passive replies', () => {
  let llm: FakeOpenAi;
  let gw: Gateway;
  let platform: WeChatPlatform;
  const metrics = new RecordingMetrics();

  beforeAll(async () => {
    llm = await startFakeOpenAi();
    gw = await startGateway({
      env: {
        OPENAI_API_KEY: 'sk-test',
        OPENAI_BASE_URL: llm.baseUrl,
        OPENAI_MAX_RETRIES: '2',
        WECHAT_TOKEN: TOKEN,
        WECHAT_REPLY_WAIT_MS: '1500',
        WECHAT_PAGE_BYTES: '2000',
      },
      wechat: { pollMs: 20, holdMs: WINDOW_MS + 150, metrics },
    });
    platform = new WeChatPlatform({ url: `${gw.http.url}/wechat`, token: TOKEN, windowMs: WINDOW_MS });
    // Warm up (SDK clients, emulators' first requests) so timings below are steady.
    await platform.send('o-warmup', 'warm up');
  });

  afterAll(async () => {
    await gw.stop();
    await llm.close();
  });

  beforeEach(() => {
    llm.script = [];
    llm.latencyMs = 0;
    llm.chunkDelayMs = 0;
    llm.answer = (req) => `Echo: ${req.lastUserText}`;
  });

  it('answers a quick question in the first delivery', async () => {
    // Arrange
    const user = 'o-quick';
    // Act
    const outcome = await platform.send(user, 'hello there');
    // Assert
    expect(outcome.reply).toBe('Echo: hello there');
    expect(outcome.deliveries).toBe(1);
  });

  it('answers in the third delivery when the model needs about two windows', async () => {
    // Arrange: time to first byte past two windows, still inside the third wait.
    const user = 'o-third';
    llm.latencyMs = 2 * WINDOW_MS + 200;
    const before = llm.chatCalls;
    // Act
    const outcome = await platform.send(user, 'slow question');
    // Assert
    expect(outcome.deliveries).toBe(3);
    expect(outcome.statuses.slice(0, 2)).toEqual([undefined, undefined]);
    expect(outcome.reply).toBe('Echo: slow question');
    expect(llm.chatCalls - before).toBe(1);
  });

  it('hands a slow answer over with "reply 1": partial first, then the rest', async () => {
    // Arrange: the answer streams slowly, past all three deliveries.
    const user = 'o-slow';
    const answer = 'First part of a long, slowly written answer. '.repeat(6).trim();
    llm.answer = () => answer;
    llm.chunkChars = 4;
    llm.chunkDelayMs = 120; // ~70 chunks * 120 ms ≈ 8.4 s, past three windows
    // Act
    const passiveBefore = metrics.total(METRIC.wechatAnswers, { path: 'passive' });
    const fetchBefore = metrics.total(METRIC.wechatAnswers, { path: 'fetch' });
    const first = await platform.send(user, 'tell me slowly');
    const replies = [first.reply, (await platform.send(user, '1')).reply];
    await gw.idle();
    for (let i = 0; i < 6 && /reply 1/.test(replies.at(-1) ?? ''); i++) replies.push((await platform.send(user, '1')).reply);
    llm.chunkChars = 8;
    // Assert: nothing lost or repeated once the notes are removed.
    const strip = (s: string | undefined): string => (s ?? '').replace(/\n\n（[^）]*）$/, '');
    expect(first.deliveries).toBe(3);
    expect(first.reply).toMatch(/reply 1|Still thinking/);
    const shown = replies.filter((r) => r !== undefined && !r.startsWith('正在思考')).map(strip).join('');
    expect(shown).toBe(answer);
    // The operator sees one page in the passive window and the rest through "1" (a page served
    // again to a redelivery of a late reply counts again: it was sent again).
    expect(metrics.total(METRIC.wechatAnswers, { path: 'passive' }) - passiveBefore).toBeGreaterThanOrEqual(1);
    expect(metrics.total(METRIC.wechatAnswers, { path: 'fetch' }) - fetchBefore).toBeGreaterThanOrEqual(replies.slice(1).filter((r) => r !== undefined).length);
    expect(metrics.total(METRIC.wechatAnswers, { path: 'fetch' }) - fetchBefore).toBeGreaterThan(0);
  });

  it('makes one LLM call for a redelivered message', async () => {
    // Arrange
    const msgId = nextMsgId();
    const xml = textMessageXml({ from: 'o-dup', to: 'gh_10f6c3c3ac5a', content: 'only once', msgId });
    const before = llm.chatCalls;
    // Act: the same MsgId three times, two of them concurrently.
    const [a, b] = await Promise.all([platform.postOnce(xml), platform.postOnce(xml)]);
    const c = await platform.postOnce(xml);
    await gw.idle();
    // Assert: one LLM call; a redelivery (WeChat sends one only when our reply was late)
    // gets the very same reply again, never another page or a second answer.
    expect(llm.chatCalls - before).toBe(1);
    const replies = [a, b, c].map((r) => r.body).filter((body) => body.includes('<Content>'));
    expect(replies.length).toBeGreaterThanOrEqual(1);
    expect(new Set(replies.map((body) => replyContent(body)))).toEqual(new Set(['Echo: only once']));
  });

  it('resends the same page when WeChat redelivers a message whose reply came too late', async () => {
    // Arrange: the first delivery gives up (window 300 ms) before the answer exists (the
    // model takes 600 ms), and the gateway takes the reply for it after WeChat hung up.
    const user = 'o-late';
    llm.latencyMs = 600;
    const msgId = nextMsgId();
    const xml = textMessageXml({ from: user, to: 'gh_10f6c3c3ac5a', content: 'late reply', msgId });
    // Act
    const lost = await platform.postOnce(xml, 300);
    await gw.idle();
    await new Promise((r) => setTimeout(r, 100));
    const retry = await platform.postOnce(xml);
    // Assert: the answer was not lost with the first response.
    expect(lost.status).toBeUndefined();
    expect(replyContent(retry.body)).toBe('Echo: late reply');
  });

  it('remembers the conversation and /clear forgets it', async () => {
    // Arrange
    const user = 'o-memory';
    // Act
    await platform.send(user, 'my name is Ada');
    await platform.send(user, 'what is my name?');
    const memoryRequest = llm.chatRequests.at(-1);
    const cleared = await platform.send(user, '/clear');
    await platform.send(user, 'who am I?');
    const afterClear = llm.chatRequests.at(-1);
    // Assert
    expect(memoryRequest?.messages.map((m) => m.text)).toEqual(
      expect.arrayContaining(['my name is Ada', 'Echo: my name is Ada', 'what is my name?']),
    );
    expect(cleared.reply).toMatch(/forgotten/);
    expect(afterClear?.messages.map((m) => m.text)).not.toContain('my name is Ada');
  });

  it('answers /help without calling the model', async () => {
    const before = llm.chatCalls;
    const outcome = await platform.send('o-help', '/help');
    expect(outcome.reply).toMatch(/\/clear/);
    expect(llm.chatCalls).toBe(before);
  });

  it('retries a 429 and then answers', async () => {
    // Arrange
    llm.script = [{ kind: 'http', response: { status: 429, headers: { 'retry-after-ms': '50' }, body: { error: { message: 'slow down', type: 'requests', code: 'rate_limit_exceeded' } } } }];
    const before = llm.chatCalls;
    // Act
    const outcome = await platform.send('o-429', 'are you busy?');
    // Assert
    expect(outcome.reply).toBe('Echo: are you busy?');
    expect(llm.chatCalls - before).toBe(2);
  });

  it('apologises instead of staying silent when the quota is exhausted', async () => {
    llm.script = [{ kind: 'http', response: { status: 429, body: { error: { message: 'quota', type: 'insufficient_quota', code: 'insufficient_quota' } } } }];
    const before = llm.chatCalls;
    const outcome = await platform.send('o-quota', 'anyone there?');
    expect(outcome.reply).toMatch(/Sorry/);
    expect(llm.chatCalls - before).toBe(1);
  });

  it('never drops a question sent while an earlier answer is pending', async () => {
    // Arrange: the first answer is slow; the second question arrives meanwhile.
    const user = 'o-two';
    llm.answer = (req) => `Answer to ${req.lastUserText}`;
    llm.latencyMs = 3 * WINDOW_MS + 300;
    // Act
    const first = platform.send(user, 'question A');
    await new Promise((r) => setTimeout(r, 200));
    llm.latencyMs = 0;
    const second = platform.send(user, 'question B');
    const [a, b] = await Promise.all([first, second]);
    await gw.idle();
    const shown = [a.reply, b.reply];
    for (let i = 0; i < 4 && !shown.some((s) => s?.includes('Answer to question B')); i++) {
      shown.push((await platform.send(user, '1')).reply);
    }
    // Assert: both answered, A before B.
    const texts = shown.filter((s): s is string => s !== undefined);
    const ia = texts.findIndex((s) => s.includes('Answer to question A'));
    const ib = texts.findIndex((s) => s.includes('Answer to question B'));
    expect(ia).toBeGreaterThanOrEqual(0);
    expect(ib).toBeGreaterThan(ia);
  });

  it('pages 5,000 Chinese characters with nothing lost or repeated', async () => {
    // Arrange
    const user = 'o-long';
    const sentence = '这是一个很长的回答，用来测试分页功能是否正确。';
    let long = '';
    while (long.length < 5000) long += sentence + (long.length % 7 === 0 ? '\n' : '');
    long = long.slice(0, 5000);
    llm.answer = () => long;
    llm.chunkChars = 200;
    // Act
    const pages: string[] = [];
    const first = await platform.send(user, '写一篇长文');
    await gw.idle();
    pages.push(first.reply ?? '');
    for (let i = 0; i < 10 && pages.at(-1)?.includes('回复 1'); i++) pages.push((await platform.send(user, '1')).reply ?? '');
    llm.chunkChars = 8;
    // Assert
    for (const page of pages) expect(Buffer.byteLength(page, 'utf8')).toBeLessThanOrEqual(2000);
    const joined = pages.map((p) => p.replace(/\n\n（[^）]*）$/, '')).join('');
    expect(joined).toBe(long);
    expect(pages.length).toBeGreaterThanOrEqual(8);
  });

  it('rejects a bad signature with 403 and enqueues nothing', async () => {
    // Arrange
    const xml = textMessageXml({ from: 'o-bad', to: 'gh_x', content: 'hi', msgId: nextMsgId() });
    const before = llm.chatCalls;
    // Act
    const res = await fetch(`${gw.http.url}/wechat?signature=deadbeef&timestamp=1&nonce=2`, { method: 'POST', body: xml });
    await gw.idle();
    // Assert
    expect(res.status).toBe(403);
    expect(await res.text()).not.toContain('hi');
    expect(llm.chatCalls).toBe(before);
  });

  it('verifies the URL and never returns echostr on a bad signature', async () => {
    const { query } = platform.signedQuery('');
    const good = await fetch(`${gw.http.url}/wechat?${query}&echostr=hello123`);
    const bad = await fetch(`${gw.http.url}/wechat?signature=00&timestamp=1&nonce=1&echostr=hello123`);
    expect(good.status).toBe(200);
    expect(await good.text()).toBe('hello123');
    expect(bad.status).toBe(403);
    expect(await bad.text()).not.toContain('hello123');
  });

  describe('a captured signature', () => {
    const longAnswer = (): string => Array.from({ length: 1000 }, (_, i) => `word${i}`).join(' ');

    it('cannot carry another body: a forged FromUserName + "1" is refused and the victim\'s page is not consumed', async () => {
      // Arrange: the victim has a long answer waiting for "1".
      const victim = 'o-victim';
      const answer = longAnswer();
      llm.answer = () => answer;
      const first = await platform.send(victim, 'tell me a lot');
      await gw.idle();
      // The attacker captured the query string of the victim's "1" (it got the second page).
      const captured = platform.signedQuery(textMessageXml({ from: victim, to: 'gh_10f6c3c3ac5a', content: '1', msgId: nextMsgId() }));
      const original = await platform.postSigned(captured);
      const pending = await gw.messages.listPending('wechat', victim, Date.now());
      const cursorBefore = pending[0]?.deliveredChars;
      const before = llm.chatCalls;
      // Act: the same query string with a forged "1" from the victim.
      const forged = await platform.postSigned({ query: captured.query, body: textMessageXml({ from: victim, to: 'gh_10f6c3c3ac5a', content: '1', msgId: nextMsgId() }) });
      const forgedUnsubscribe = await platform.postSigned({
        query: captured.query,
        body: `<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName><FromUserName><![CDATA[${victim}]]></FromUserName><CreateTime>${Math.floor(Date.now() / 1000)}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[unsubscribe]]></Event></xml>`,
      });
      await gw.idle();
      // Assert
      expect(first.reply).toMatch(/reply 1/);
      expect(original.status).toBe(200);
      expect(replyContent(original.body)).toMatch(/reply 1/);
      expect(forged.status).toBe(403);
      expect(forged.body).not.toContain('word');
      expect(forgedUnsubscribe.status).toBe(403);
      expect(llm.chatCalls).toBe(before);
      const after = await gw.messages.listPending('wechat', victim, Date.now());
      expect(after[0]?.msgKey).toBe(pending[0]?.msgKey);
      expect(after[0]?.deliveredChars).toBe(cursorBefore);
      // The victim's own "1" gets the next page (nothing skipped).
      const own = await platform.send(victim, '1');
      expect(own.reply?.startsWith(answer.slice(cursorBefore ?? 0, (cursorBefore ?? 0) + 20))).toBe(true);
    });

    it('still treats a redelivery of the same body under the same query as a redelivery', async () => {
      const signed = platform.signedQuery(textMessageXml({ from: 'o-redeliver', to: 'gh_10f6c3c3ac5a', content: 'same body', msgId: nextMsgId() }));
      const a = await platform.postSigned(signed);
      const b = await platform.postSigned(signed);
      expect(a.status).toBe(200);
      expect(b.status).toBe(200);
      expect(replyContent(b.body)).toBe(replyContent(a.body));
    });
  });

  describe('a job that cannot move', () => {
    /** Puts a stuck message record ahead of the user's next question, as a failing job leaves it. */
    async function stuckHead(user: string, ageMs: number): Promise<Job> {
      const at = Date.now() - ageMs;
      const job: Job = {
        v: 1,
        channel: 'wechat',
        userId: user,
        msgKey: nextMsgId(),
        conversationKey: `wechat#${user}`,
        input: { kind: 'audio', mediaRef: 'media-that-never-downloads', mimeType: 'audio/amr' },
        reply: { channel: 'wechat', accountId: 'gh_10f6c3c3ac5a' },
        arrivedAtMs: at,
      };
      await gw.messages.claim(job, at);
      return job;
    }

    it('does not block the next answer when it has made no progress for FAILED_JOB_HOLD_SEC', async () => {
      // Arrange: a voice message whose job has not moved for 2 minutes (default hold: 60 s).
      const user = 'o-stuck';
      await stuckHead(user, 120_000);
      // Act
      const outcome = await platform.send(user, 'next question');
      // Assert: answered right away, not "still thinking" behind the stuck head.
      expect(outcome.reply).toBe('Echo: next question');
      expect(outcome.deliveries).toBe(1);
    });

    it('shows a failed head\'s note and then lets "1" reach the next answer', async () => {
      // Arrange: the worker gave up on a voice message and wrote a note for the user.
      const user = 'o-failed';
      const head = await stuckHead(user, 1_000);
      await gw.messages.finish(head, 'Sorry, your voice message could not be processed.', 'failed', Date.now());
      // Act
      const first = await platform.send(user, 'next question');
      await gw.idle();
      const second = await platform.send(user, '1');
      // Assert
      expect(first.reply).toBe('Sorry, your voice message could not be processed.');
      expect(first.deliveries).toBe(1);
      expect(second.reply).toBe('Echo: next question');
    });
  });
});
