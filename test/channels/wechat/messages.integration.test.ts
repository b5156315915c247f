/**
 * WeChat message types, events, safe mode and bad input, through the real handler.
 */
import { aesKeyFromEncodingAesKey, decryptAndCheck } from '../../../lib/channels/wechat/crypto';
import { verifyMsgSignature } from '../../../lib/channels/wechat/signature';
import { cdata } from '../../../lib/channels/wechat/xml-reply';
import { startFakeOpenAi, type FakeOpenAi } from '../../fakes/fake-openai';
import { WeChatPlatform, nextMsgId, replyContent } from '../../../local/fakes/wechat-platform';
import { startGateway, type Gateway } from '../../../local/gateway';

const TOKEN = 'spamtest';
const APP_ID = 'wx2c2769f8efd9abc2';
const KEY = 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG';
const OLD_KEY = 'ZYXWVUTSRQPONMLKJIHGFEDCBAzyxwvutsrqponmlkj';
const ACCOUNT = 'gh_10f6c3c3ac5a';

function xmlOf(from: string, fields: string): string {
  return `<xml><ToUserName>${cdata(ACCOUNT)}</ToUserName><FromUserName>${cdata(from)}</FromUserName><CreateTime>${Math.floor(Date.now() / 1000)}</CreateTime>${fields}</xml>`;
}

describe('WeChat message types and safe mode', () => {
  let llm: FakeOpenAi;
  let gw: Gateway;
  let plain: WeChatPlatform;
  let safe: WeChatPlatform;
  let rotated: WeChatPlatform;

  beforeAll(async () => {
    llm = await startFakeOpenAi();
    gw = await startGateway({
      env: {
        OPENAI_API_KEY: 'sk-test',
        OPENAI_BASE_URL: llm.baseUrl,
        WECHAT_TOKEN: TOKEN,
        WECHAT_APP_ID: APP_ID,
        WECHAT_ENCODING_AES_KEY: KEY,
        WECHAT_ENCODING_AES_KEY_PREVIOUS: OLD_KEY,
        WECHAT_REPLY_WAIT_MS: '1500',
        WECHAT_MENU_PROMPTS: JSON.stringify({ V1001_TODAY: 'What should I do today?' }),
        WECHAT_WELCOME: 'Welcome aboard!',
        // Compatible mode: this suite sends both plaintext and encrypted requests.
        WECHAT_ALLOW_PLAINTEXT: '1',
      },
      wechat: { pollMs: 20, holdMs: 2150 },
    });
    const url = `${gw.http.url}/wechat`;
    plain = new WeChatPlatform({ url, token: TOKEN, windowMs: 2000 });
    safe = new WeChatPlatform({ url, token: TOKEN, windowMs: 2000, aes: { encodingAesKey: KEY, appId: APP_ID } });
    rotated = new WeChatPlatform({ url, token: TOKEN, windowMs: 2000, aes: { encodingAesKey: OLD_KEY, appId: APP_ID } });
    // Warm up (SDK clients, emulators' first requests) so timings below are steady.
    await plain.send('o-warmup', 'warm up');
  });

  afterAll(async () => {
    await gw.stop();
    await llm.close();
  });

  it('answers an encrypted message with an encrypted, correctly signed reply', async () => {
    // Act
    const res = await safe.postOnce(xmlOf('o-safe', `<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[secret hello]]></Content><MsgId>${nextMsgId()}</MsgId>`));
    // Assert
    expect(res.status).toBe(200);
    const encrypt = /<Encrypt><!\[CDATA\[(.*?)\]\]><\/Encrypt>/.exec(res.body)?.[1] ?? '';
    const signature = /<MsgSignature><!\[CDATA\[(.*?)\]\]><\/MsgSignature>/.exec(res.body)?.[1] ?? '';
    const timestamp = /<TimeStamp>(\d+)<\/TimeStamp>/.exec(res.body)?.[1] ?? '';
    const nonce = /<Nonce><!\[CDATA\[(.*?)\]\]><\/Nonce>/.exec(res.body)?.[1] ?? '';
    expect(verifyMsgSignature(TOKEN, timestamp, nonce, encrypt, signature)).toBe(true);
    const inner = decryptAndCheck(encrypt, [aesKeyFromEncodingAesKey(KEY)], APP_ID).xml;
    expect(replyContent(inner)).toBe('Echo: secret hello');
    expect(res.body).not.toContain('secret hello');
  });

  it('accepts the previous key during a rotation and replies with it', async () => {
    const res = await rotated.postOnce(xmlOf('o-rot', `<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[old key]]></Content><MsgId>${nextMsgId()}</MsgId>`));
    expect(res.status).toBe(200);
    expect(replyContent(rotated.openReply(res.body))).toBe('Echo: old key');
  });

  it('rejects a wrong appid after decryption and a bad msg_signature, enqueuing nothing', async () => {
    // Arrange
    const other = new WeChatPlatform({ url: `${gw.http.url}/wechat`, token: TOKEN, windowMs: 2000, aes: { encodingAesKey: KEY, appId: 'wx0000000000000000' } });
    const before = llm.chatCalls;
    const body = xmlOf('o-evil', `<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[x]]></Content><MsgId>${nextMsgId()}</MsgId>`);
    // Act
    const wrongApp = await other.postOnce(body);
    const signed = safe.signedQuery(body);
    const tampered = await fetch(`${gw.http.url}/wechat?${signed.query.replace(/msg_signature=[0-9a-f]+/, 'msg_signature=00')}`, { method: 'POST', body: signed.body });
    await gw.idle();
    // Assert
    expect(wrongApp.status).toBe(403);
    expect(tampered.status).toBe(403);
    expect(llm.chatCalls).toBe(before);
  });

  it.each([
    ['malformed XML', '<xml><ToUserName>oops', 400],
    ['a DTD with entities', '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]><xml><Content>&lol2;</Content></xml>', 400],
    ['an oversized body', `<xml><Content><![CDATA[${'x'.repeat(70_000)}]]></Content></xml>`, 413],
  ])('answers %s with a clear 4xx and enqueues nothing', async (_name, body, status) => {
    const before = gw.batches.length;
    const res = await plain.postOnce(body);
    await gw.idle();
    expect(res.status).toBe(status);
    expect(res.body).not.toContain('lol');
    expect(gw.batches.length).toBe(before);
  });

  it('acknowledges an unknown MsgType with success and no job', async () => {
    const before = gw.batches.length;
    const res = await plain.postOnce(xmlOf('o-unknown', `<MsgType><![CDATA[miniprogrampage]]></MsgType><MsgId>${nextMsgId()}</MsgId>`));
    await gw.idle();
    expect(res.status).toBe(200);
    expect(res.body).toBe('success');
    expect(gw.batches.length).toBe(before);
  });

  it('treats voice with Recognition as text', async () => {
    const res = await plain.postOnce(xmlOf('o-voice', `<MsgType><![CDATA[voice]]></MsgType><MediaId><![CDATA[m1]]></MediaId><Format><![CDATA[amr]]></Format><Recognition><![CDATA[what time is it]]></Recognition><MsgId>${nextMsgId()}</MsgId>`));
    expect(replyContent(res.body)).toBe('Echo: what time is it');
  });

  it('politely declines an image when the model is text-only, without calling it', async () => {
    const before = llm.chatCalls;
    const res = await plain.postOnce(xmlOf('o-img', `<MsgType><![CDATA[image]]></MsgType><PicUrl><![CDATA[http://127.0.0.1:9/x.jpg]]></PicUrl><MediaId><![CDATA[img1]]></MediaId><MsgId>${nextMsgId()}</MsgId>`));
    expect(replyContent(res.body)).toMatch(/only read text/);
    expect(llm.chatCalls).toBe(before);
  });

  it.each([
    ['video', '<MsgType><![CDATA[video]]></MsgType><MediaId><![CDATA[v]]></MediaId><ThumbMediaId><![CDATA[t]]></ThumbMediaId>'],
    ['location', '<MsgType><![CDATA[location]]></MsgType><Location_X>23.1</Location_X><Location_Y>113.3</Location_Y><Scale>20</Scale><Label><![CDATA[Guangzhou]]></Label>'],
    ['link', '<MsgType><![CDATA[link]]></MsgType><Title><![CDATA[t]]></Title><Description><![CDATA[d]]></Description><Url><![CDATA[https://example.com]]></Url>'],
  ])('answers a %s with what is supported', async (_type, fields) => {
    const res = await plain.postOnce(xmlOf('o-other', `${fields}<MsgId>${nextMsgId()}</MsgId>`));
    expect(replyContent(res.body)).toMatch(/text, voice and image/);
  });

  it('welcomes a subscriber with one job; a redelivery gets the same reply again', async () => {
    const body = xmlOf('o-sub', '<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event>');
    const first = await plain.postOnce(body);
    await gw.idle();
    const jobs = gw.batches.flatMap((b) => b.Records).filter((r) => r.body.includes('o-sub')).length;
    const again = await plain.postOnce(body);
    await gw.idle();
    expect(replyContent(first.body)).toBe('Welcome aboard!');
    expect(replyContent(again.body)).toBe('Welcome aboard!');
    expect(gw.batches.flatMap((b) => b.Records).filter((r) => r.body.includes('o-sub')).length).toBe(jobs);
  });

  it('maps a CLICK menu key to its prompt', async () => {
    const res = await plain.postOnce(xmlOf('o-menu', '<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[CLICK]]></Event><EventKey><![CDATA[V1001_TODAY]]></EventKey>'));
    expect(replyContent(res.body)).toBe('Echo: What should I do today?');
  });

  it('forgets the conversation and pending answers on unsubscribe', async () => {
    // Arrange: some memory and an answer still pending.
    await plain.send('o-unsub', 'remember me');
    llm.latencyMs = 2500;
    await plain.postOnce(xmlOf('o-unsub', `<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[slow one]]></Content><MsgId>${nextMsgId()}</MsgId>`), 300);
    // Act
    const res = await plain.postOnce(xmlOf('o-unsub', '<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[unsubscribe]]></Event>'));
    await gw.idle();
    llm.latencyMs = 0;
    // Assert
    expect(res.body).toBe('success');
    expect((await gw.conversations.load('wechat#o-unsub', Date.now())).turns).toEqual([]);
    expect(await gw.messages.listPending('wechat', 'o-unsub', Date.now())).toEqual([]);
  });
});
