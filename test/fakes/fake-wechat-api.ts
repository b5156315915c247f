/**
 * A fake of WeChat's server API (api.weixin.qq.com): a real `node:http` server on
 * 127.0.0.1 (random port) with the endpoints the gateway's customer-service mode uses:
 *
 * - `GET  /cgi-bin/token`                 issues a new token per call; earlier ones stay valid for `overlapMs` (5 min).
 * - `POST /cgi-bin/stable_token`          normal mode returns the same token until the last `renewWindowSec`
 *                                         (300 s) of its life, then a new one (the old stays valid until it expires);
 *                                         `force_refresh:true` always issues a new one and the old one stops
 *                                         working after `overlapMs`.
 * - `POST /cgi-bin/message/custom/send`   checks the token, records the message.
 * - `POST /cgi-bin/message/custom/typing` checks the token, records the command.
 * - `GET  /cgi-bin/media/get`             serves media registered with {@link FakeWeChatApi.addMedia}, or `40007`.
 *
 * Token checks answer like WeChat: `41001` missing, `40014` unknown, `40001` superseded or
 * revoked, `42001` expired. Credentials are checked too: `40013` wrong AppID, `40125` wrong AppSecret.
 *
 * Usage:
 * ```ts
 * const wx = await startFakeWeChatApi({ appId: 'wx123', appSecret: 's3cret' });
 * wx.failNext('message/custom/send', 45015);          // next send: outside the 48-hour window
 * // … point WECHAT_API_BASE at wx.baseUrl …
 * expect(wx.sends.map((s) => s.content)).toEqual(['Hello']);
 * expect(wx.stableTokenCalls).toBe(1);
 * await wx.close();
 * ```
 * Knobs (`latencyMs`, `tokenTtlSec`, `renewWindowSec`, `overlapMs`) are plain mutable properties.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { setTimeout as delay } from 'node:timers/promises';
import { closeServer, isRecord, listenLocal, readBody, sendMedia } from '../../local/fakes/fake-http';

/** The endpoints of the fake, named by their path after `/cgi-bin/`. */
export type FakeWeChatEndpoint = 'token' | 'stable_token' | 'message/custom/send' | 'message/custom/typing' | 'media/get';

const ENDPOINTS: readonly FakeWeChatEndpoint[] = ['token', 'stable_token', 'message/custom/send', 'message/custom/typing', 'media/get'];

/** Options of {@link startFakeWeChatApi}. */
export interface FakeWeChatApiOptions {
  /** Expected AppID (default `wxfake0000000001`). */
  appId?: string;
  /** Expected AppSecret (default `fake-app-secret-0123456789abcdef`). */
  appSecret?: string;
  /** `expires_in` of new tokens (default 7200). */
  tokenTtlSec?: number;
  /** stable_token normal mode issues a new token within this many seconds of expiry (default 300). */
  renewWindowSec?: number;
  /** How long a superseded token keeps working (default 300,000 ms, WeChat's 5 minutes). */
  overlapMs?: number;
  /** Delay before every answer (default 0). */
  latencyMs?: number;
  /** The fake's clock (default `Date.now`); share it with the code under test to move time. */
  nowMs?: () => number;
}

/** A customer-service message as the fake received it. */
export interface FakeSend {
  touser: string;
  msgtype: string;
  /** `text.content` of a text message. */
  content: string | undefined;
  /** The whole JSON body. */
  body: Readonly<Record<string, unknown>>;
  token: string;
  atMs: number;
}

/** A typing command as the fake received it. */
export interface FakeTyping {
  touser: string;
  command: string;
  atMs: number;
}

/** One stable_token request. */
export interface FakeStableTokenCall {
  forceRefresh: boolean;
  /** The token handed out, or undefined when the call failed. */
  issued: string | undefined;
  atMs: number;
}

/** Any request, in arrival order (tokens appear as given: this is a fake). */
export interface FakeWeChatRequest {
  endpoint: FakeWeChatEndpoint | 'unknown';
  method: string;
  query: Readonly<Record<string, string>>;
  body: string;
}

interface TokenState {
  expiresAtMs: number;
  /** Stops working after this (superseded by a newer token). */
  invalidAfterMs: number | undefined;
  revoked: boolean;
}

interface InjectedFailure {
  kind: 'errcode' | 'http';
  code: number;
  errmsg: string;
  left: number;
}

interface StoredMedia {
  bytes: Uint8Array;
  contentType: string;
  filename: string;
  /** Served without Content-Length, in chunks. */
  chunked: boolean;
}

const DEFAULT_ERRMSG: Readonly<Record<number, string>> = {
  [-1]: 'system error',
  40001: 'invalid credential, access_token is invalid or not latest',
  40002: 'invalid grant_type',
  40007: 'invalid media_id',
  40013: 'invalid appid',
  40014: 'invalid access_token',
  40125: 'invalid appsecret',
  40164: 'invalid ip 203.0.113.7 ipv6 ::ffff:203.0.113.7, not in whitelist',
  41001: 'access_token missing',
  41002: 'appid missing',
  41004: 'appsecret missing',
  42001: 'access_token expired',
  45002: 'content size out of limit',
  45015: 'response out of time limit or subscription is canceled',
  45047: 'out of response count limit',
  45080: 'no interaction in the last 30 seconds',
  45081: 'already typing',
  47001: 'data format error',
  48001: 'api unauthorized',
};

function endpointOf(pathname: string): FakeWeChatEndpoint | 'unknown' {
  const rest = pathname.startsWith('/cgi-bin/') ? pathname.slice('/cgi-bin/'.length) : '';
  return ENDPOINTS.find((e) => e === rest) ?? 'unknown';
}

function parseJson(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return isRecord(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/** A running fake WeChat API. Start it with {@link startFakeWeChatApi}. */
export class FakeWeChatApi {
  /** e.g. `http://127.0.0.1:40123`; use as `WECHAT_API_BASE`. */
  readonly baseUrl: string;
  readonly appId: string;
  readonly appSecret: string;
  /** Customer-service messages accepted, in order. */
  readonly sends: FakeSend[] = [];
  /** Typing commands accepted, in order. */
  readonly typings: FakeTyping[] = [];
  /** media_ids served (successfully), in order. */
  readonly mediaGets: string[] = [];
  /** Every stable_token request, in order. */
  readonly stableTokenLog: FakeStableTokenCall[] = [];
  /** Every request, in order. */
  readonly requests: FakeWeChatRequest[] = [];
  /** `GET /cgi-bin/token` requests. */
  tokenCalls = 0;
  /** `POST /cgi-bin/stable_token` requests (normal and forced). */
  stableTokenCalls = 0;
  /** stable_token requests with `force_refresh:true`. */
  forceRefreshCalls = 0;
  tokenTtlSec: number;
  renewWindowSec: number;
  overlapMs: number;
  latencyMs: number;
  /** Extra delay per endpoint, added to `latencyMs`. */
  readonly latencyFor: Partial<Record<FakeWeChatEndpoint, number>> = {};

  private readonly now: () => number;
  private readonly tokens = new Map<string, TokenState>();
  private current: string | undefined;
  private readonly failures = new Map<FakeWeChatEndpoint, InjectedFailure[]>();
  private readonly media = new Map<string, StoredMedia>();

  /** @internal use {@link startFakeWeChatApi} */
  constructor(
    private readonly server: Server,
    port: number,
    opts: FakeWeChatApiOptions,
  ) {
    this.baseUrl = `http://127.0.0.1:${port}`;
    this.appId = opts.appId ?? 'wxfake0000000001';
    this.appSecret = opts.appSecret ?? 'fake-app-secret-0123456789abcdef';
    this.tokenTtlSec = opts.tokenTtlSec ?? 7200;
    this.renewWindowSec = opts.renewWindowSec ?? 300;
    this.overlapMs = opts.overlapMs ?? 300_000;
    this.latencyMs = opts.latencyMs ?? 0;
    this.now = opts.nowMs ?? Date.now;
  }

  /** The token stable_token currently hands out (undefined before the first one). */
  get currentToken(): string | undefined {
    return this.current;
  }

  /**
   * The next `times` requests to `endpoint` fail with WeChat's JSON `{errcode, errmsg}`
   * (HTTP 200), before any other check. E.g. `failNext('message/custom/send', 45015)`,
   * `failNext('stable_token', 40164)`, `failNext('message/custom/send', 40001)`.
   */
  failNext(endpoint: FakeWeChatEndpoint, errcode: number, times = 1, errmsg?: string): void {
    this.queueFailure(endpoint, { kind: 'errcode', code: errcode, errmsg: errmsg ?? DEFAULT_ERRMSG[errcode] ?? `error ${errcode}`, left: times });
  }

  /** The next `times` requests to `endpoint` fail with this HTTP status (e.g. 502) and no JSON. */
  failHttpNext(endpoint: FakeWeChatEndpoint, status: number, times = 1): void {
    this.queueFailure(endpoint, { kind: 'http', code: status, errmsg: '', left: times });
  }

  /** Registers media for `GET /cgi-bin/media/get?media_id=…` (served with Content-Type and Content-Disposition). */
  addMedia(mediaId: string, bytes: Uint8Array, contentType: string, filename?: string, opts: { chunked?: boolean } = {}): void {
    const ext = contentType.split('/')[1]?.split(';')[0] ?? 'bin';
    this.media.set(mediaId, { bytes, contentType, filename: filename ?? `${mediaId}.${ext === 'jpeg' ? 'jpg' : ext}`, chunked: opts.chunked ?? false });
  }

  /**
   * Ends the current token's life now: using it answers `42001`, and stable_token's
   * normal mode issues a new one.
   */
  expireToken(): void {
    const state = this.current === undefined ? undefined : this.tokens.get(this.current);
    if (state) state.expiresAtMs = this.now() - 1;
  }

  /**
   * Makes the current token answer `40001` (as when someone else fetched one with
   * `/cgi-bin/token`), while stable_token's normal mode keeps handing it out: only
   * `force_refresh:true` gets a working one.
   */
  revokeToken(): void {
    const state = this.current === undefined ? undefined : this.tokens.get(this.current);
    if (state) state.revoked = true;
  }

  /** The errcode using `token` would get now (0 = valid). */
  tokenStatus(token: string | undefined): number {
    if (token === undefined || token === '') return 41001;
    const state = this.tokens.get(token);
    if (!state) return 40014;
    const now = this.now();
    if (state.revoked || (state.invalidAfterMs !== undefined && now >= state.invalidAfterMs)) return 40001;
    if (now >= state.expiresAtMs) return 42001;
    return 0;
  }

  /** Stops the server (drops keep-alive connections). */
  async close(): Promise<void> {
    await closeServer(this.server);
  }

  /** @internal the request handler */
  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.baseUrl);
    const endpoint = endpointOf(url.pathname);
    const body = (await readBody(req)).toString('utf8');
    const query = Object.fromEntries(url.searchParams.entries());
    this.requests.push({ endpoint, method: req.method ?? 'GET', query, body });
    if (endpoint === 'unknown') {
      this.json(res, { errcode: 404, errmsg: 'not found' }, 404);
      return;
    }
    const wait = this.latencyMs + (this.latencyFor[endpoint] ?? 0);
    if (wait > 0) await delay(wait);
    if (endpoint === 'token') this.tokenCalls += 1;
    if (endpoint === 'stable_token') this.stableTokenCalls += 1;

    const injected = this.takeFailure(endpoint);
    if (injected) {
      if (endpoint === 'stable_token') {
        const parsed = parseJson(body);
        if (parsed?.force_refresh === true) this.forceRefreshCalls += 1;
        this.stableTokenLog.push({ forceRefresh: parsed?.force_refresh === true, issued: undefined, atMs: this.now() });
      }
      if (injected.kind === 'http') {
        res.writeHead(injected.code, { 'content-type': 'text/html' });
        res.end('<html><body>upstream error</body></html>');
      } else {
        this.error(res, injected.code, injected.errmsg);
      }
      return;
    }

    switch (endpoint) {
      case 'token':
        this.handleToken(query, res);
        return;
      case 'stable_token':
        this.handleStableToken(body, res);
        return;
      case 'message/custom/send':
        this.handleSend(query, body, res);
        return;
      case 'message/custom/typing':
        this.handleTyping(query, body, res);
        return;
      case 'media/get':
        this.handleMedia(query, res);
        return;
    }
  }

  private queueFailure(endpoint: FakeWeChatEndpoint, failure: InjectedFailure): void {
    if (failure.left <= 0) return;
    const queue = this.failures.get(endpoint) ?? [];
    queue.push(failure);
    this.failures.set(endpoint, queue);
  }

  private takeFailure(endpoint: FakeWeChatEndpoint): InjectedFailure | undefined {
    const queue = this.failures.get(endpoint);
    const head = queue?.[0];
    if (!queue || !head) return undefined;
    head.left -= 1;
    if (head.left <= 0) queue.shift();
    return head;
  }

  private json(res: ServerResponse, body: unknown, status = 200, contentType = 'application/json; encoding=utf-8'): void {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }

  private error(res: ServerResponse, errcode: number, errmsg?: string): void {
    const rid = randomBytes(4).toString('hex');
    this.json(res, { errcode, errmsg: `${errmsg ?? DEFAULT_ERRMSG[errcode] ?? 'error'} rid: ${rid}` });
  }

  /** Checks AppID and AppSecret like the token endpoints do; returns the errcode or 0. */
  private credentialError(appid: unknown, secret: unknown): number {
    if (typeof appid !== 'string' || appid === '') return 41002;
    if (appid !== this.appId) return 40013;
    if (typeof secret !== 'string' || secret === '') return 41004;
    if (secret !== this.appSecret) return 40125;
    return 0;
  }

  private issue(): string {
    const token = `FAKE_ACCESS_TOKEN_${randomBytes(24).toString('hex')}`;
    this.tokens.set(token, { expiresAtMs: this.now() + this.tokenTtlSec * 1000, invalidAfterMs: undefined, revoked: false });
    return token;
  }

  /** Every working token stops working after the overlap (a new one was issued). */
  private supersedeAll(): void {
    const until = this.now() + this.overlapMs;
    for (const state of this.tokens.values()) {
      if (state.invalidAfterMs === undefined || state.invalidAfterMs > until) state.invalidAfterMs = until;
    }
  }

  private remainingSec(token: string): number {
    const state = this.tokens.get(token);
    return state ? Math.max(0, Math.floor((state.expiresAtMs - this.now()) / 1000)) : 0;
  }

  private handleToken(query: Record<string, string>, res: ServerResponse): void {
    if (query.grant_type !== 'client_credential') return this.error(res, 40002);
    const bad = this.credentialError(query.appid, query.secret);
    if (bad !== 0) return this.error(res, bad);
    this.supersedeAll();
    const token = this.issue();
    this.current = token;
    this.json(res, { access_token: token, expires_in: this.tokenTtlSec });
  }

  private handleStableToken(body: string, res: ServerResponse): void {
    const parsed = parseJson(body);
    if (!parsed) return this.error(res, 47001);
    const force = parsed.force_refresh === true;
    if (force) this.forceRefreshCalls += 1;
    const fail = (errcode: number): void => {
      this.stableTokenLog.push({ forceRefresh: force, issued: undefined, atMs: this.now() });
      this.error(res, errcode);
    };
    if (parsed.grant_type !== 'client_credential') return fail(40002);
    const bad = this.credentialError(parsed.appid, parsed.secret);
    if (bad !== 0) return fail(bad);
    const now = this.now();
    const state = this.current === undefined ? undefined : this.tokens.get(this.current);
    let token: string;
    if (force) {
      this.supersedeAll();
      token = this.issue();
    } else if (this.current !== undefined && state && now < state.expiresAtMs - this.renewWindowSec * 1000) {
      // Normal mode: the same token while it has more than the renewal window left (even if revoked).
      token = this.current;
    } else {
      // Renewal: a new token; the old one keeps working until its own expiry.
      token = this.issue();
    }
    this.current = token;
    this.stableTokenLog.push({ forceRefresh: force, issued: token, atMs: now });
    this.json(res, { access_token: token, expires_in: this.remainingSec(token) });
  }

  private handleSend(query: Record<string, string>, body: string, res: ServerResponse): void {
    const status = this.tokenStatus(query.access_token);
    if (status !== 0) return this.error(res, status);
    const parsed = parseJson(body);
    if (!parsed) return this.error(res, 47001);
    const touser = typeof parsed.touser === 'string' ? parsed.touser : '';
    const msgtype = typeof parsed.msgtype === 'string' ? parsed.msgtype : '';
    if (touser === '') return this.error(res, 40003, 'invalid openid');
    if (msgtype === '') return this.error(res, 40008, 'invalid message type');
    const text = parsed.text;
    const content = isRecord(text) && typeof text.content === 'string' ? text.content : undefined;
    if (msgtype === 'text' && content === undefined) return this.error(res, 47001);
    this.sends.push({ touser, msgtype, content, body: parsed, token: query.access_token ?? '', atMs: this.now() });
    this.json(res, { errcode: 0, errmsg: 'ok' });
  }

  private handleTyping(query: Record<string, string>, body: string, res: ServerResponse): void {
    const status = this.tokenStatus(query.access_token);
    if (status !== 0) return this.error(res, status);
    const parsed = parseJson(body);
    if (!parsed) return this.error(res, 47001);
    const touser = typeof parsed.touser === 'string' ? parsed.touser : '';
    const command = typeof parsed.command === 'string' ? parsed.command : '';
    if (touser === '') return this.error(res, 40003, 'invalid openid');
    if (command !== 'Typing' && command !== 'CancelTyping') return this.error(res, 40097, 'invalid args');
    this.typings.push({ touser, command, atMs: this.now() });
    this.json(res, { errcode: 0, errmsg: 'ok' });
  }

  private handleMedia(query: Record<string, string>, res: ServerResponse): void {
    const status = this.tokenStatus(query.access_token);
    // WeChat labels JSON errors of media/get as text/plain.
    const fail = (errcode: number): void => {
      this.json(res, { errcode, errmsg: `${DEFAULT_ERRMSG[errcode] ?? 'error'} rid: ${randomBytes(4).toString('hex')}` }, 200, 'text/plain');
    };
    if (status !== 0) return fail(status);
    const mediaId = query.media_id ?? '';
    const stored = this.media.get(mediaId);
    if (!stored) return fail(40007);
    this.mediaGets.push(mediaId);
    sendMedia(res, stored.bytes, { 'content-type': stored.contentType, 'content-disposition': `attachment; filename="${stored.filename}"`, 'cache-control': 'no-cache, must-revalidate' }, stored.chunked);
  }
}

/** Starts a fake WeChat API on 127.0.0.1 (random port). Call `close()` in `afterAll`. */
export async function startFakeWeChatApi(opts: FakeWeChatApiOptions = {}): Promise<FakeWeChatApi> {
  const holder: { fake?: FakeWeChatApi } = {};
  const { server, port } = await listenLocal('fake WeChat API did not report its port', (req, res) => {
    const fake = holder.fake;
    if (!fake) {
      res.writeHead(503).end();
      return;
    }
    fake.handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(String(err));
    });
  });
  const fake = new FakeWeChatApi(server, port, opts);
  holder.fake = fake;
  return fake;
}
