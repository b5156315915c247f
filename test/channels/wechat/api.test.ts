/**
 * WeChatApi against the fake WeChat API, with the real fleet-wide token provider on the
 * DynamoDB emulator: send, typing, media download, the refresh-once-and-retry rule for
 * token errcodes, and typed errors without secrets.
 */
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { WeChatApi, WeChatApiError, apiErrorFor, filenameFromDisposition } from '../../../lib/channels/wechat/api';
import { AccessTokenProvider, WeChatTokenError } from '../../../lib/channels/wechat/token';
import { DynamoTokenStore } from '../../../lib/store/wechat-token';
import { startFakeWeChatApi, type FakeWeChatApi } from '../../fakes/fake-wechat-api';
import { caught } from '../../support/caught';
import { startTestStack, type TestStack } from '../../../local/stack';

let stack: TestStack;
let db: DynamoDBDocumentClient;
let wx: FakeWeChatApi;
let api: WeChatApi;
let counter = 0;

beforeAll(async () => {
  stack = await startTestStack();
  db = DynamoDBDocumentClient.from(stack.dynamo);
});

afterAll(async () => {
  await stack.stop();
});

beforeEach(async () => {
  counter += 1;
  wx = await startFakeWeChatApi({ appId: `wxapi${Date.now().toString(36)}${counter}`, appSecret: 'api-test-secret-0123456789' });
  api = client(wx);
});

afterEach(async () => {
  await wx.close();
});

function client(fake: FakeWeChatApi, apiBase = fake.baseUrl): WeChatApi {
  const tokens = new AccessTokenProvider({
    appId: fake.appId,
    appSecret: fake.appSecret,
    apiBase: fake.baseUrl,
    store: new DynamoTokenStore(db, stack.tableName, fake.appId),
    pollMs: 20,
  });
  return new WeChatApi({ apiBase, tokens, timeoutMs: 2000 });
}

async function apiError(promise: Promise<unknown>): Promise<WeChatApiError> {
  const err = await caught(promise);
  if (!(err instanceof WeChatApiError)) throw err;
  return err;
}

/** No secret or token in what could reach a log. */
function expectSecretFree(err: Error): void {
  const issued = wx.stableTokenLog.flatMap((c) => (c.issued ? [c.issued] : []));
  for (const text of [err.message, String(err.stack), JSON.stringify(err)]) {
    expect(text).not.toContain(wx.appSecret);
    for (const token of issued) expect(text).not.toContain(token);
  }
}

const sendRequests = (): number => wx.requests.filter((r) => r.endpoint === 'message/custom/send').length;

describe('WeChatApi.sendText', () => {
  it('posts a text customer-service message with the token (UTF-8, no \\u escapes)', async () => {
    await api.sendText('o_user_1', '你好 👋 "quoted"');
    expect(wx.sends).toHaveLength(1);
    expect(wx.sends[0]).toMatchObject({ touser: 'o_user_1', msgtype: 'text', content: '你好 👋 "quoted"' });
    expect(wx.sends[0]?.body).toEqual({ touser: 'o_user_1', msgtype: 'text', text: { content: '你好 👋 "quoted"' } });
    const raw = wx.requests.find((r) => r.endpoint === 'message/custom/send')?.body ?? '';
    expect(raw).toContain('你好');
    expect(wx.stableTokenCalls).toBe(1);
  });

  it('reuses the token: many sends, one token request', async () => {
    await Promise.all(Array.from({ length: 20 }, (_, i) => api.sendText(`o_${i}`, `n${i}`)));
    expect(wx.sends).toHaveLength(20);
    expect(wx.stableTokenCalls).toBe(1);
  });

  it.each([
    [45015, /48-hour/],
    [45047, /quota/],
    [48001, /unauthorized/],
    [45002, /too long/],
  ])('errcode %i is a typed, non-retryable error', async (errcode, meaning) => {
    wx.failNext('message/custom/send', errcode);
    const err = await apiError(api.sendText('o_user', 'hello'));
    expect(err.errcode).toBe(errcode);
    expect(err.retryable).toBe(false);
    expect(err.endpoint).toBe('message/custom/send');
    expect(err.message).toMatch(meaning);
    expect(err.errmsg).not.toBe('');
    expect(wx.sends).toHaveLength(0);
    expect(sendRequests()).toBe(1);
    expectSecretFree(err);
  });

  it('-1 (system busy) is retryable', async () => {
    wx.failNext('message/custom/send', -1);
    const err = await apiError(api.sendText('o_user', 'hello'));
    expect(err.errcode).toBe(-1);
    expect(err.retryable).toBe(true);
  });

  it('HTTP 5xx is retryable, with the status and no errcode', async () => {
    wx.failHttpNext('message/custom/send', 502);
    const err = await apiError(api.sendText('o_user', 'hello'));
    expect(err.status).toBe(502);
    expect(err.errcode).toBeUndefined();
    expect(err.retryable).toBe(true);
    expectSecretFree(err);
  });

  it('a network failure is retryable and does not leak the URL or token', async () => {
    const tokens = new AccessTokenProvider({ appId: wx.appId, appSecret: wx.appSecret, apiBase: wx.baseUrl, store: new DynamoTokenStore(db, stack.tableName, wx.appId) });
    const broken = new WeChatApi({ apiBase: 'http://127.0.0.1:1', tokens });
    const err = await apiError(broken.sendText('o_user', 'hello'));
    expect(err.retryable).toBe(true);
    expect(err.errcode).toBeUndefined();
    expect(err.message).not.toContain('access_token');
    expectSecretFree(err);
  });

  it('40001: refreshes the token once (normal, then forced since WeChat returns the same) and retries once', async () => {
    await api.sendText('o_user', 'warm-up');
    const before = wx.currentToken;
    wx.failNext('message/custom/send', 40001);
    await api.sendText('o_user', 'after refresh');
    expect(wx.sends.map((s) => s.content)).toEqual(['warm-up', 'after refresh']);
    expect(sendRequests()).toBe(3);
    expect(wx.stableTokenLog.map((c) => c.forceRefresh)).toEqual([false, false, true]);
    expect(wx.sends[1]?.token).not.toBe(before);
  });

  it('42001 (expired): one normal-mode refresh and a retry', async () => {
    await api.sendText('o_user', 'first');
    wx.expireToken();
    await api.sendText('o_user', 'second');
    expect(wx.sends.map((s) => s.content)).toEqual(['first', 'second']);
    expect(wx.forceRefreshCalls).toBe(0);
    expect(wx.stableTokenCalls).toBe(2);
  });

  it('40014 twice in a row: retries only once, then a typed error', async () => {
    wx.failNext('message/custom/send', 40014, 2);
    const err = await apiError(api.sendText('o_user', 'hello'));
    expect(err.errcode).toBe(40014);
    expect(sendRequests()).toBe(2);
    expect(wx.sends).toHaveLength(0);
    expectSecretFree(err);
  });

  it('a token configuration failure surfaces as a WeChatTokenError', async () => {
    wx.failNext('stable_token', 40164);
    const err = await caught(api.sendText('o_user', 'hello'));
    expect(err).toBeInstanceOf(WeChatTokenError);
    expect(err instanceof WeChatTokenError && err.code).toBe('ip_not_allowed');
    expect(sendRequests()).toBe(0);
  });
});

describe('WeChatApi.typing', () => {
  it('records Typing and CancelTyping', async () => {
    expect(await api.typing('o_user', 'Typing')).toBe(true);
    expect(await api.typing('o_user', 'CancelTyping')).toBe(true);
    expect(wx.typings.map((t) => [t.touser, t.command])).toEqual([
      ['o_user', 'Typing'],
      ['o_user', 'CancelTyping'],
    ]);
  });

  it.each([45080, 45081])('ignores %i (best effort)', async (errcode) => {
    wx.failNext('message/custom/typing', errcode);
    expect(await api.typing('o_user', 'Typing')).toBe(false);
  });

  it('throws other errors for the caller to swallow or log', async () => {
    wx.failNext('message/custom/typing', 48001);
    const err = await apiError(api.typing('o_user', 'Typing'));
    expect(err.errcode).toBe(48001);
  });

  it('retries once after a token error', async () => {
    await api.typing('o_user', 'Typing');
    wx.expireToken();
    expect(await api.typing('o_user', 'CancelTyping')).toBe(true);
    expect(wx.typings).toHaveLength(2);
  });
});

describe('WeChatApi.getMedia', () => {
  it('returns the bytes, content type and file name', async () => {
    const jpeg = new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3, 4, 5]);
    wx.addMedia('MEDIA_IMG', jpeg, 'image/jpeg');
    const file = await api.getMedia('MEDIA_IMG');
    expect(Array.from(file.bytes)).toEqual(Array.from(jpeg));
    expect(file.contentType).toBe('image/jpeg');
    expect(file.filename).toBe('MEDIA_IMG.jpg');
  });

  it('a JSON body with errcode is an error (40007 invalid media_id)', async () => {
    const err = await apiError(api.getMedia('NO_SUCH_MEDIA'));
    expect(err.errcode).toBe(40007);
    expect(err.retryable).toBe(false);
    expect(err.endpoint).toBe('media/get');
    expectSecretFree(err);
  });

  it('retries once after 40001', async () => {
    wx.addMedia('MEDIA_VOICE', new TextEncoder().encode('#!AMR\n<frames>'), 'audio/amr');
    await api.getMedia('MEDIA_VOICE');
    wx.revokeToken();
    const file = await api.getMedia('MEDIA_VOICE');
    expect(file.contentType).toBe('audio/amr');
    expect(wx.mediaGets).toEqual(['MEDIA_VOICE', 'MEDIA_VOICE']);
  });

  it('refuses media over the size limit', async () => {
    const tokens = new AccessTokenProvider({ appId: wx.appId, appSecret: wx.appSecret, apiBase: wx.baseUrl, store: new DynamoTokenStore(db, stack.tableName, wx.appId) });
    const small = new WeChatApi({ apiBase: wx.baseUrl, tokens, maxMediaBytes: 4 });
    wx.addMedia('BIG', new Uint8Array(100), 'image/jpeg');
    const err = await apiError(small.getMedia('BIG'));
    expect(err.retryable).toBe(false);
  });

  it('refuses media that runs past the size limit while it streams (no Content-Length)', async () => {
    const tokens = new AccessTokenProvider({ appId: wx.appId, appSecret: wx.appSecret, apiBase: wx.baseUrl, store: new DynamoTokenStore(db, stack.tableName, wx.appId) });
    const small = new WeChatApi({ apiBase: wx.baseUrl, tokens, maxMediaBytes: 100_000 });
    wx.addMedia('BIG_CHUNKED', new Uint8Array(1_000_000), 'image/jpeg', undefined, { chunked: true });
    const err = await apiError(small.getMedia('BIG_CHUNKED'));
    expect(err.retryable).toBe(false);
    expect(err.message).toMatch(/over the 100000-byte limit/);
  });

  it('reads media served without Content-Length', async () => {
    const jpeg = new Uint8Array(150_000).fill(5);
    jpeg.set([0xff, 0xd8, 0xff, 0xe0]);
    wx.addMedia('CHUNKED_IMG', jpeg, 'image/jpeg', undefined, { chunked: true });
    const file = await api.getMedia('CHUNKED_IMG');
    expect(Buffer.from(file.bytes).equals(Buffer.from(jpeg))).toBe(true);
  });
});

describe('helpers', () => {
  it('classifies errcodes', () => {
    expect(apiErrorFor('message/custom/send', -1, 'system error').retryable).toBe(true);
    expect(apiErrorFor('message/custom/send', 45009, '').retryable).toBe(false);
    expect(apiErrorFor('message/custom/send', 99999, 'odd').message).toContain('99999');
  });

  it('reads file names from Content-Disposition', () => {
    expect(filenameFromDisposition('attachment; filename="abc.jpg"')).toBe('abc.jpg');
    expect(filenameFromDisposition('attachment; filename=abc.amr')).toBe('abc.amr');
    expect(filenameFromDisposition("attachment; filename*=UTF-8''%E8%AF%AD%E9%9F%B3.amr")).toBe('语音.amr');
    expect(filenameFromDisposition(null)).toBeUndefined();
  });
});
