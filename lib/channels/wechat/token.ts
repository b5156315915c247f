/**
 * The WeChat access token, shared by the whole fleet.
 *
 * WeChat rules (https://developers.weixin.qq.com/doc/offiaccount/Basic_Information/Get_access_token.html,
 * https://developers.weixin.qq.com/doc/offiaccount/Basic_Information/getStableAccessToken.html):
 * - Every server API call needs `access_token`; a token lives `expires_in` seconds (7200).
 * - `/cgi-bin/token` is limited to 2,000 calls a day and each call invalidates the
 *   previous token after a 5-minute overlap, so Lambdas fetching their own would knock
 *   each other's tokens out. We use `POST /cgi-bin/stable_token` instead: in normal mode
 *   (`force_refresh:false`) it returns the same token until the last 5 minutes of its
 *   life, then a new one; `force_refresh:true` always issues a new one but is limited to
 *   20 calls a day, at least 30 s apart.
 * - `40001` / `40014` / `42001` from an API mean the token is invalid, not the latest, or
 *   expired: refresh once and retry.
 *
 * So: one token in DynamoDB (pk `token#wechat#{appId}`, sk `token`) plus a copy in memory
 * per Lambda instance, refreshed ahead of expiry. A refresh is done by whoever wins a
 * short DynamoDB lease (sk `lock`, conditional put); the rest poll the stored token
 * briefly, and concurrent callers inside one instance share one promise. A cold fleet
 * therefore makes one upstream request, not one per worker.
 */
import { silentLog, systemClock, type Clock, type Log } from '../../types';
import type { ForceLedger, TokenLease, TokenStore } from '../../store/wechat-token';
import { describeFetchFailure, redact } from './fetch';
import { tokenErrorFor, WeChatTokenError } from './token-errors';
import { isJsonObject, numberField, stringField } from '../../json';

export { tokenErrorFor, WeChatTokenError, type WeChatTokenErrorCode } from './token-errors';

/** What the API client needs: a current token, and a new one when WeChat rejects it. */
export interface AccessTokenSource {
  /** A token that is valid now (from memory, DynamoDB, or one fleet-wide refresh). */
  get(): Promise<string>;
  /**
   * WeChat rejected `badToken` (40001/40014/42001). Returns a different, valid token:
   * the one another instance already stored, or a refreshed one.
   */
  invalidate(badToken: string): Promise<string>;
}

/** Settings of {@link AccessTokenProvider}. */
export interface AccessTokenProviderOptions {
  appId: string;
  appSecret: string;
  /** e.g. `https://api.weixin.qq.com` (no trailing slash needed). */
  apiBase: string;
  /** Where the fleet shares the token and the refresh lease (lib/store/wechat-token.ts). */
  store: TokenStore;
  fetch?: typeof fetch;
  clock?: Clock;
  log?: Log;
  /** Refresh this long before expiry (default 5 min, matching stable_token's renewal window). */
  refreshAheadMs?: number;
  /** Never use a token with less than this left (default 60 s). */
  expiryMarginMs?: number;
  /**
   * Ask upstream again no sooner than this when it keeps returning a token that is already
   * inside our refresh window (default 30 s): avoids a request per call near expiry.
   */
  minRefreshIntervalMs?: number;
  /** How long a refresh lease is held at most (default 15 s; covers two upstream calls). */
  leaseMs?: number;
  /** How long a caller waits for another instance's refresh before failing (default 20 s). */
  waitMs?: number;
  /** Poll interval while waiting (default 100 ms, jittered). */
  pollMs?: number;
  /** Timeout of one upstream request (default 5 s). */
  requestTimeoutMs?: number;
  /** WeChat allows `force_refresh` only 30 s apart. */
  forceRefreshMinIntervalMs?: number;
  /** Fleet-wide daily budget of `force_refresh` calls (WeChat allows 20; default 10 leaves headroom). */
  forceRefreshDailyBudget?: number;
}

interface CachedToken {
  token: string;
  expiresAtMs: number;
  /** When to start refreshing (ahead of expiry). */
  refreshAtMs: number;
}

interface StoredState {
  token: CachedToken | undefined;
  force: ForceLedger;
}

/**
 * WeChat's daily quotas reset at midnight China Standard Time (UTC+8, no DST), so the
 * force-refresh budget is counted per China-time day.
 */
function chinaDay(nowMs: number): string {
  return new Date(nowMs + 8 * 3_600_000).toISOString().slice(0, 10);
}

const REJECTED_MEMORY = 16;

/**
 * The fleet-wide WeChat access token (see the module comment). Build one per Lambda
 * instance (at cold start) so its in-memory copy is reused across invocations.
 */
export class AccessTokenProvider implements AccessTokenSource {
  private readonly fetchFn: typeof fetch;
  private readonly clock: Clock;
  private readonly log: Log;
  private readonly apiBase: string;
  private readonly refreshAheadMs: number;
  private readonly expiryMarginMs: number;
  private readonly minRefreshIntervalMs: number;
  private readonly leaseMs: number;
  private readonly waitMs: number;
  private readonly pollMs: number;
  private readonly requestTimeoutMs: number;
  private readonly forceMinIntervalMs: number;
  private readonly forceBudget: number;

  private memory: CachedToken | undefined;
  private inflight: Promise<string> | undefined;
  /** Tokens WeChat rejected in this instance; never handed out again. */
  private readonly rejected = new Set<string>();

  constructor(private readonly opts: AccessTokenProviderOptions) {
    this.fetchFn = opts.fetch ?? fetch;
    this.clock = opts.clock ?? systemClock;
    this.log = opts.log ?? silentLog;
    this.apiBase = opts.apiBase.replace(/\/+$/, '');
    this.refreshAheadMs = opts.refreshAheadMs ?? 5 * 60_000;
    this.expiryMarginMs = opts.expiryMarginMs ?? 60_000;
    this.minRefreshIntervalMs = opts.minRefreshIntervalMs ?? 30_000;
    this.leaseMs = opts.leaseMs ?? 15_000;
    this.waitMs = opts.waitMs ?? 20_000;
    this.pollMs = opts.pollMs ?? 100;
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 5_000;
    this.forceMinIntervalMs = opts.forceRefreshMinIntervalMs ?? 30_000;
    this.forceBudget = opts.forceRefreshDailyBudget ?? 10;
  }

  /** {@inheritDoc AccessTokenSource.get} */
  get(): Promise<string> {
    const m = this.memory;
    if (m && this.clock.nowMs() < m.refreshAtMs && !this.rejected.has(m.token)) return Promise.resolve(m.token);
    this.inflight ??= this.obtain().finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  /**
   * {@inheritDoc AccessTokenSource.invalidate}
   *
   * Refreshes only when the shared token is still `badToken` (another instance may have
   * refreshed already). The refresh asks `force_refresh:false` first; only if WeChat
   * hands back the same rejected token does it use `force_refresh:true`, which is
   * budgeted fleet-wide (20 a day, 30 s apart).
   */
  async invalidate(badToken: string): Promise<string> {
    this.rejected.add(badToken);
    if (this.rejected.size > REJECTED_MEMORY) {
      const oldest = this.rejected.values().next();
      if (!oldest.done) this.rejected.delete(oldest.value);
    }
    if (this.memory?.token === badToken) this.memory = undefined;
    this.log.info('wechat access token rejected; refreshing', { appId: this.opts.appId });
    // A get() already in flight may have read the bad token before we marked it: ask again once.
    for (let attempt = 0; attempt < 2; attempt += 1) {
      const token = await this.get();
      if (!this.rejected.has(token)) return token;
    }
    throw new WeChatTokenError('WeChat keeps rejecting the access token even after a refresh', 'rejected', true);
  }

  private usable(t: CachedToken | undefined, nowMs: number): t is CachedToken {
    return t !== undefined && !this.rejected.has(t.token) && nowMs < t.expiresAtMs - this.expiryMarginMs;
  }

  private remember(t: CachedToken): void {
    if (!this.rejected.has(t.token)) this.memory = t;
  }

  /** Memory → DynamoDB → (lease) upstream, waiting for another instance's refresh if need be. */
  private async obtain(): Promise<string> {
    const started = this.clock.nowMs();
    for (;;) {
      const now = this.clock.nowMs();
      const stored = await this.read();
      const current = stored.token;
      if (this.usable(current, now)) {
        this.remember(current);
        if (now < current.refreshAtMs) return current.token;
      }
      const lease = await this.acquireLease(now);
      if (lease) {
        try {
          return await this.refreshUnderLease();
        } finally {
          await this.releaseLease(lease);
        }
      }
      // Another instance is refreshing. A token that is old but still valid will do meanwhile.
      if (this.usable(current, now)) return current.token;
      if (now - started >= this.waitMs) {
        throw new WeChatTokenError(
          `timed out after ${this.waitMs} ms waiting for another instance to refresh the WeChat access token`,
          'timeout',
          true,
        );
      }
      await this.clock.sleep(this.pollMs / 2 + Math.random() * this.pollMs);
    }
  }

  private async refreshUnderLease(): Promise<string> {
    const now = this.clock.nowMs();
    // Re-read under the lease: the previous holder may have stored a fresh token just now.
    const stored = await this.read();
    if (this.usable(stored.token, now) && now < stored.token.refreshAtMs) {
      this.remember(stored.token);
      return stored.token.token;
    }
    let fetched = await this.fetchStableToken(false, now);
    if (this.rejected.has(fetched.token)) {
      // Normal mode returns the token WeChat still considers current, yet WeChat rejected
      // it: only a forced refresh issues a new one.
      await this.reserveForceRefresh(stored.force, now);
      fetched = await this.fetchStableToken(true, this.clock.nowMs());
      if (this.rejected.has(fetched.token)) {
        throw new WeChatTokenError('WeChat returned the rejected access token again after force_refresh', 'rejected', true);
      }
    }
    await this.store(fetched);
    this.remember(fetched);
    return fetched.token;
  }

  private async read(): Promise<StoredState> {
    const { token, force } = await this.opts.store.read();
    return { token: token && { token: token.token, expiresAtMs: token.expiresAtMs, refreshAtMs: token.refreshAtMs ?? token.expiresAtMs - this.refreshAheadMs }, force };
  }

  private async store(t: CachedToken): Promise<void> {
    await this.opts.store.store(t, this.clock.nowMs());
  }

  /**
   * Takes one `force_refresh` from the fleet-wide budget (WeChat: 20 a day, 30 s apart),
   * or throws `force_refresh_limited`. Conditional on the ledger not having moved.
   */
  private async reserveForceRefresh(ledger: ForceLedger, now: number): Promise<void> {
    const day = chinaDay(now);
    const count = ledger.day === day ? ledger.count : 0;
    if (now - ledger.atMs < this.forceMinIntervalMs) {
      throw new WeChatTokenError(
        `the access token was force-refreshed ${Math.round((now - ledger.atMs) / 1000)} s ago; WeChat allows force_refresh only every ${Math.round(this.forceMinIntervalMs / 1000)} s`,
        'force_refresh_limited',
        true,
      );
    }
    if (count >= this.forceBudget) {
      throw new WeChatTokenError(
        `the daily budget of ${this.forceBudget} forced access-token refreshes is used up (WeChat allows 20 a day)`,
        'force_refresh_limited',
        false,
      );
    }
    if (!(await this.opts.store.recordForce(ledger, { atMs: now, day, count: count + 1 }))) {
      throw new WeChatTokenError('another instance force-refreshed the access token at the same time', 'force_refresh_limited', true);
    }
  }

  private acquireLease(now: number): Promise<TokenLease | undefined> {
    return this.opts.store.acquireLease(now, this.leaseMs);
  }

  private async releaseLease(lease: TokenLease): Promise<void> {
    try {
      await this.opts.store.releaseLease(lease);
    } catch (err) {
      // DynamoDB hiccuped: the lease runs out by itself.
      this.log.warn('could not release the wechat token lease', { error: String(err) });
    }
  }

  /** `POST /cgi-bin/stable_token`; `startedMs` anchors `expires_in` conservatively. */
  private async fetchStableToken(force: boolean, startedMs: number): Promise<CachedToken> {
    const secrets = [this.opts.appSecret];
    let res: Response;
    try {
      res = await this.fetchFn(`${this.apiBase}/cgi-bin/stable_token`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          grant_type: 'client_credential',
          appid: this.opts.appId,
          secret: this.opts.appSecret,
          force_refresh: force,
        }),
        signal: AbortSignal.timeout(this.requestTimeoutMs),
      });
    } catch (err) {
      const failure = describeFetchFailure(err);
      throw new WeChatTokenError(
        `WeChat stable_token request ${failure.timeout ? 'timed out' : `failed (${redact(failure.reason, secrets)})`}`,
        failure.timeout ? 'timeout' : 'network',
        true,
      );
    }
    const text = await res.text().catch(() => '');
    if (res.status >= 500) throw new WeChatTokenError(`WeChat stable_token answered HTTP ${res.status}`, 'http', true);
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw new WeChatTokenError(`WeChat stable_token answered HTTP ${res.status} with a body that is not JSON`, res.ok ? 'bad_response' : 'http', true);
    }
    if (!isJsonObject(body)) throw new WeChatTokenError('WeChat stable_token answered with unexpected JSON', 'bad_response', true);
    const errcode = numberField(body, 'errcode');
    if (errcode !== undefined && errcode !== 0) {
      const err = tokenErrorFor(errcode, redact(stringField(body, 'errmsg') ?? '', secrets));
      this.log.error('wechat access token request failed', { errcode, code: err.code, forceRefresh: force });
      throw err;
    }
    const token = stringField(body, 'access_token');
    const expiresIn = numberField(body, 'expires_in');
    if (token === undefined || token === '' || expiresIn === undefined || expiresIn <= 0) {
      throw new WeChatTokenError('WeChat stable_token answered without access_token / expires_in', 'bad_response', true);
    }
    const expiresAtMs = startedMs + expiresIn * 1000;
    const now = this.clock.nowMs();
    // Normally refresh `refreshAheadMs` before expiry. If WeChat handed back a token already
    // inside that window (its own renewal starts at the last 5 min), ask again no sooner
    // than `minRefreshIntervalMs`, but still before the token becomes unusable.
    const refreshAtMs = Math.max(
      expiresAtMs - this.refreshAheadMs,
      Math.min(now + this.minRefreshIntervalMs, expiresAtMs - this.expiryMarginMs),
    );
    this.log.info('wechat access token fetched', { expiresInSec: expiresIn, forceRefresh: force });
    return { token, expiresAtMs, refreshAtMs };
  }
}
