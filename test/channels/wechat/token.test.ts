/**
 * The fleet-wide WeChat access token against the fake WeChat API and the DynamoDB
 * emulator: one upstream fetch for a cold fleet, refresh ahead of expiry, the
 * invalidate-once rule, the force_refresh guard, and typed secret-free errors.
 */
import { DynamoDBDocumentClient, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { AccessTokenProvider, WeChatTokenError, tokenErrorFor, type AccessTokenProviderOptions } from '../../../lib/channels/wechat/token';
import { DynamoTokenStore } from '../../../lib/store/wechat-token';
import { systemClock, type Clock } from '../../../lib/types';
import { startFakeWeChatApi, type FakeWeChatApi, type FakeWeChatApiOptions } from '../../fakes/fake-wechat-api';
import { caught } from '../../support/caught';
import { startTestStack, type TestStack } from '../../../local/stack';

let stack: TestStack;
let db: DynamoDBDocumentClient;
let wx: FakeWeChatApi | undefined;
let appCounter = 0;

beforeAll(async () => {
  stack = await startTestStack();
  db = DynamoDBDocumentClient.from(stack.dynamo);
});

afterAll(async () => {
  await stack.stop();
});

afterEach(async () => {
  await wx?.close();
  wx = undefined;
});

/** A fake with its own AppID, so every test has its own token item. */
async function fake(opts: FakeWeChatApiOptions = {}): Promise<FakeWeChatApi> {
  appCounter += 1;
  wx = await startFakeWeChatApi({ appId: `wxtoken${Date.now().toString(36)}${appCounter}`, appSecret: 'top-secret-app-secret-value', ...opts });
  return wx;
}

function provider(api: FakeWeChatApi, extra: Partial<AccessTokenProviderOptions> = {}): AccessTokenProvider {
  return new AccessTokenProvider({
    appId: api.appId,
    appSecret: api.appSecret,
    apiBase: api.baseUrl,
    store: new DynamoTokenStore(db, stack.tableName, api.appId),
    pollMs: 20,
    ...extra,
  });
}

/** A clock that tests move forward; shared by the provider and the fake. */
function movableClock(): Clock & { advance(ms: number): void } {
  let offset = 0;
  return {
    nowMs: () => Date.now() + offset,
    sleep: (ms) => systemClock.sleep(ms),
    advance(ms: number) {
      offset += ms;
    },
  };
}

function isTokenError(err: unknown): err is WeChatTokenError {
  return err instanceof WeChatTokenError;
}

describe('AccessTokenProvider', () => {
  it('gives 50 concurrent callers on 5 cold instances one token from exactly one stable_token request', async () => {
    const api = await fake();
    api.latencyFor.stable_token = 150; // keep the winner's request open while the others arrive
    const instances = Array.from({ length: 5 }, () => provider(api));
    const calls = Array.from({ length: 50 }, (_, i) => instances[i % instances.length]?.get() ?? Promise.reject(new Error('no instance')));
    const tokens = await Promise.all(calls);

    expect(api.stableTokenCalls).toBe(1);
    expect(api.tokenCalls).toBe(0);
    expect(new Set(tokens)).toEqual(new Set([api.currentToken]));

    // Warm instances answer from memory; a new cold instance from DynamoDB.
    await Promise.all(instances.map((p) => p.get()));
    expect(await provider(api).get()).toBe(api.currentToken);
    expect(api.stableTokenCalls).toBe(1);
  });

  it('stores the token in the single table with a TTL and releases the lease', async () => {
    const api = await fake();
    const token = await provider(api).get();
    const pk = `token#wechat#${api.appId}`;
    const item = (await db.send(new GetCommand({ TableName: stack.tableName, Key: { pk, sk: 'token' } }))).Item;
    expect(item).toMatchObject({ pk, sk: 'token', token });
    const expiresAtMs = Number(item?.expiresAtMs);
    expect(expiresAtMs).toBeGreaterThan(Date.now() + 7000_000);
    expect(Number(item?.expiresAtSec)).toBeGreaterThan(Math.floor(expiresAtMs / 1000)); // TTL in epoch seconds
    const lock = (await db.send(new GetCommand({ TableName: stack.tableName, Key: { pk, sk: 'lock' } }))).Item;
    expect(lock).toBeUndefined();
  });

  it('refreshes ahead of expiry and not before', async () => {
    const clock = movableClock();
    const api = await fake({ nowMs: () => clock.nowMs() });
    const p = provider(api, { clock });
    const first = await p.get();

    clock.advance((7200 - 400) * 1000); // 400 s left: outside the 5-minute window
    expect(await p.get()).toBe(first);
    expect(api.stableTokenCalls).toBe(1);

    clock.advance(200 * 1000); // 200 s left: refresh now
    const second = await p.get();
    expect(second).not.toBe(first);
    expect(api.stableTokenCalls).toBe(2);
    expect(api.forceRefreshCalls).toBe(0);
    expect(api.tokenStatus(first)).toBe(0); // the old one still works until its own expiry
    expect(await provider(api, { clock }).get()).toBe(second);
  });

  it('does not ask upstream on every call when WeChat keeps returning a token inside our refresh window', async () => {
    const clock = movableClock();
    const api = await fake({ nowMs: () => clock.nowMs(), renewWindowSec: 60 }); // WeChat renews later than we would
    const p = provider(api, { clock });
    const first = await p.get();
    clock.advance((7200 - 200) * 1000);
    expect(await p.get()).toBe(first); // asked, got the same one back
    expect(api.stableTokenCalls).toBe(2);
    await Promise.all([p.get(), p.get(), p.get()]);
    expect(api.stableTokenCalls).toBe(2); // not again within minRefreshIntervalMs
    clock.advance(31_000);
    await p.get();
    expect(api.stableTokenCalls).toBe(3);
  });

  it('after 42001 (expired) refreshes once in normal mode', async () => {
    const api = await fake();
    const p = provider(api);
    const bad = await p.get();
    api.expireToken();
    const fresh = await p.invalidate(bad);
    expect(fresh).not.toBe(bad);
    expect(api.tokenStatus(fresh)).toBe(0);
    expect(api.stableTokenLog.map((c) => c.forceRefresh)).toEqual([false, false]);
  });

  it('after 40001 tries force_refresh:false first, then force_refresh:true when WeChat hands back the same token', async () => {
    const api = await fake();
    const p = provider(api);
    const bad = await p.get();
    api.revokeToken();
    const fresh = await p.invalidate(bad);
    expect(fresh).not.toBe(bad);
    expect(api.tokenStatus(fresh)).toBe(0);
    expect(api.stableTokenLog.map((c) => c.forceRefresh)).toEqual([false, false, true]);
    expect(await p.get()).toBe(fresh);
  });

  it('refreshes only if the shared token is still the bad one (another instance may have done it)', async () => {
    const api = await fake();
    const a = provider(api);
    const b = provider(api);
    const bad = await a.get();
    expect(await b.get()).toBe(bad);
    api.revokeToken();
    const fresh = await a.invalidate(bad);
    const callsAfterA = api.stableTokenCalls;
    expect(await b.invalidate(bad)).toBe(fresh);
    expect(api.stableTokenCalls).toBe(callsAfterA);
  });

  it('coalesces concurrent invalidations on several instances into one refresh', async () => {
    const api = await fake();
    const instances = Array.from({ length: 4 }, () => provider(api));
    const bad = await instances[0]?.get();
    if (bad === undefined) throw new Error('no token');
    await Promise.all(instances.map((p) => p.get()));
    api.expireToken();
    const fresh = await Promise.all(instances.flatMap((p) => [p.invalidate(bad), p.invalidate(bad)]));
    expect(new Set(fresh).size).toBe(1);
    expect(api.stableTokenCalls).toBe(2);
  });

  it('guards force_refresh: 30 s apart and a daily budget', async () => {
    const clock = movableClock();
    const api = await fake({ nowMs: () => clock.nowMs() });
    const p = provider(api, { clock, forceRefreshDailyBudget: 2 });
    let token = await p.get();
    api.revokeToken();
    token = await p.invalidate(token);
    expect(api.forceRefreshCalls).toBe(1);

    api.revokeToken();
    const tooSoon = await caught(p.invalidate(token));
    expect(isTokenError(tooSoon) && tooSoon.code).toBe('force_refresh_limited');
    expect(isTokenError(tooSoon) && tooSoon.retryable).toBe(true);
    expect(api.forceRefreshCalls).toBe(1);

    clock.advance(31_000);
    token = await p.invalidate(token);
    expect(api.forceRefreshCalls).toBe(2);

    clock.advance(31_000);
    api.revokeToken();
    const overBudget = await caught(p.invalidate(token));
    expect(isTokenError(overBudget) && overBudget.code).toBe('force_refresh_limited');
    expect(isTokenError(overBudget) && overBudget.retryable).toBe(false);
    expect(api.forceRefreshCalls).toBe(2);
  });

  it('takes over when a lease holder died, after the lease runs out', async () => {
    const api = await fake();
    const pk = `token#wechat#${api.appId}`;
    const leaseUntilMs = Date.now() + 300;
    await db.send(new PutCommand({ TableName: stack.tableName, Item: { pk, sk: 'lock', owner: 'crashed', leaseUntilMs, expiresAtSec: 0 } }));
    const token = await provider(api).get();
    expect(Date.now()).toBeGreaterThanOrEqual(leaseUntilMs);
    expect(token).toBe(api.currentToken);
    expect(api.stableTokenCalls).toBe(1);
  });

  it('gives up waiting for a stuck refresh with a retryable timeout', async () => {
    const api = await fake();
    const pk = `token#wechat#${api.appId}`;
    await db.send(new PutCommand({ TableName: stack.tableName, Item: { pk, sk: 'lock', owner: 'stuck', leaseUntilMs: Date.now() + 60_000, expiresAtSec: 0 } }));
    const err = await caught(provider(api, { waitMs: 150 }).get());
    expect(isTokenError(err) && err.code).toBe('timeout');
    expect(isTokenError(err) && err.retryable).toBe(true);
    expect(api.stableTokenCalls).toBe(0);
  });

  describe('typed errors that name the cause and never the secret', () => {
    const cases: { name: string; setup: (api: FakeWeChatApi) => Partial<AccessTokenProviderOptions>; code: string; errcode: number | undefined; retryable: boolean; mentions: RegExp }[] = [
      { name: '40164 IP not allow-listed', setup: (api) => { api.failNext('stable_token', 40164); return {}; }, code: 'ip_not_allowed', errcode: 40164, retryable: false, mentions: /allow-list/ },
      { name: '40013 invalid AppID', setup: () => ({ appId: 'wxwrong' }), code: 'invalid_appid', errcode: 40013, retryable: false, mentions: /WECHAT_APP_ID/ },
      { name: '40125 invalid AppSecret', setup: () => ({ appSecret: 'wrong-secret-value-123' }), code: 'invalid_secret', errcode: 40125, retryable: false, mentions: /WECHAT_APP_SECRET/ },
      { name: '-1 system busy', setup: (api) => { api.failNext('stable_token', -1); return {}; }, code: 'busy', errcode: -1, retryable: true, mentions: /busy/ },
      { name: 'HTTP 502', setup: (api) => { api.failHttpNext('stable_token', 502); return {}; }, code: 'http', errcode: undefined, retryable: true, mentions: /502/ },
      { name: 'connection refused', setup: () => ({ apiBase: 'http://127.0.0.1:1' }), code: 'network', errcode: undefined, retryable: true, mentions: /failed/ },
    ];
    it.each(cases)('$name', async ({ setup, code, errcode, retryable, mentions }) => {
      const api = await fake();
      const p = provider(api, setup(api));
      const err = await caught(p.get());
      if (!isTokenError(err)) throw err;
      expect(err.code).toBe(code);
      expect(err.errcode).toBe(errcode);
      expect(err.retryable).toBe(retryable);
      expect(err.message).toMatch(mentions);
      for (const text of [err.message, String(err.stack)]) {
        expect(text).not.toContain(api.appSecret);
        expect(text).not.toContain('wrong-secret-value-123');
      }
    });

    it('scrubs the secret even if WeChat echoed it in errmsg', async () => {
      const api = await fake();
      api.failNext('stable_token', 40125, 1, `invalid appsecret ${api.appSecret}`);
      const err = await caught(provider(api).get());
      if (!isTokenError(err)) throw err;
      expect(err.message).toContain('invalid appsecret [redacted]');
      expect(err.message).not.toContain(api.appSecret);
    });

    it('maps token-endpoint errcodes without a network round trip', () => {
      expect(tokenErrorFor(40001, '').code).toBe('invalid_secret'); // /cgi-bin/token: 40001 = wrong AppSecret
      expect(tokenErrorFor(45009, '').retryable).toBe(false);
      expect(tokenErrorFor(12345, 'odd').message).toContain('12345');
    });
  });
});
