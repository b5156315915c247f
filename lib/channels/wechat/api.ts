/**
 * Client of WeChat's server API (api.weixin.qq.com) for the customer-service reply mode:
 * send a text message, show the typing indicator, download media.
 *
 * WeChat rules (https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Service_Center_messages.html,
 * https://developers.weixin.qq.com/doc/offiaccount/Basic_Information/getStableAccessToken.html,
 * https://developers.weixin.qq.com/doc/offiaccount/Asset_Management/Get_temporary_materials.html):
 * - Every call carries `?access_token=…` and answers `{errcode, errmsg}`; `errcode` 0 (or
 *   absent) is success.
 * - `40001` (invalid or not the latest), `40014` (invalid) and `42001` (expired) mean the
 *   token must be refreshed: we refresh once (fleet-wide, see token.ts) and retry once.
 * - `45015` outside the 48-hour window / unsubscribed, `45047` out of the customer-service
 *   quota, `48001` API unauthorized, `45002` content too long: retrying cannot help.
 * - `-1` system busy, HTTP 5xx and network failures are worth retrying later.
 *
 * Neither the AppSecret nor the access token ever appears in an error message or log.
 */
import { silentLog, type Log } from '../../types';
import { MediaTooLargeError, readBodyCapped } from '../download';
import { describeFetchFailure, redact } from './fetch';
import type { AccessTokenSource } from './token';
import { isJsonObject } from '../../json';

/** `command` of the typing API. */
export type WeChatTypingCommand = 'Typing' | 'CancelTyping';

/** The API calls this client makes (used in errors and logs). */
export type WeChatEndpoint = 'message/custom/send' | 'message/custom/typing' | 'media/get';

/** errcodes that mean "refresh the access token and retry once". */
export const TOKEN_ERRCODES: ReadonlySet<number> = new Set([40001, 40014, 42001]);

/** errcodes of the typing API that only mean "not now" (best effort: ignored). */
export const TYPING_IGNORED_ERRCODES: ReadonlySet<number> = new Set([
  45080, // no interaction from the user in the last 30 s
  45081, // already typing
]);

const RETRYABLE_ERRCODES: ReadonlySet<number> = new Set([
  -1, // system busy
  45011, // API minute-level frequency limit
  40001, // token invalid or not the latest: a later attempt gets a refreshed token
  40014,
  42001,
]);

const ERRCODE_MEANING: Readonly<Record<number, string>> = {
  [-1]: 'WeChat system busy',
  40001: 'access token invalid or not the latest',
  40003: 'invalid OpenID (not a follower of this account)',
  40007: 'invalid media_id (unknown, or older than the 3 days temporary media live)',
  40014: 'invalid access token',
  42001: 'access token expired',
  43004: 'the user has not followed the account',
  45002: 'content too long',
  45009: 'daily API quota reached',
  45011: 'API called too often (minute-level limit)',
  45015: 'outside the 48-hour customer-service window after the user last wrote, or the user unfollowed',
  45047: 'customer-service message quota for this user is used up (5 per user message within 48 h)',
  45080: 'no interaction from the user in the last 30 s (typing)',
  45081: 'already typing',
  48001: 'API unauthorized: customer-service messages need a verified account with the permission',
};

/**
 * A failed WeChat API call. `errcode` is WeChat's, or undefined when WeChat never
 * answered with one (network failure, HTTP error). Messages carry no token or secret.
 */
export class WeChatApiError extends Error {
  constructor(
    message: string,
    readonly endpoint: WeChatEndpoint,
    readonly errcode: number | undefined,
    readonly errmsg: string,
    /** Whether trying again later (SQS redelivery) may help. */
    readonly retryable: boolean,
    /** HTTP status, when the failure is an HTTP one. */
    readonly status?: number,
  ) {
    super(message);
    this.name = 'WeChatApiError';
  }
}

/** Builds the typed error for a WeChat `errcode` (exported for tests and adapters). */
export function apiErrorFor(endpoint: WeChatEndpoint, errcode: number, errmsg: string): WeChatApiError {
  const meaning = ERRCODE_MEANING[errcode];
  const message = `WeChat ${endpoint} failed with errcode ${errcode}${meaning ? ` (${meaning})` : ''}${errmsg ? `: ${errmsg}` : ''}`;
  return new WeChatApiError(message, endpoint, errcode, errmsg, RETRYABLE_ERRCODES.has(errcode));
}

/** A downloaded media file. */
export interface WeChatMediaFile {
  bytes: Uint8Array;
  /** The response's Content-Type without parameters (e.g. `audio/amr`, `image/jpeg`). */
  contentType: string;
  /** From Content-Disposition, when WeChat names the file (e.g. `MEDIA_ID.jpg`). */
  filename: string | undefined;
}

/** Settings of {@link WeChatApi}. */
export interface WeChatApiOptions {
  /** e.g. `https://api.weixin.qq.com`. */
  apiBase: string;
  tokens: AccessTokenSource;
  fetch?: typeof fetch;
  log?: Log;
  /** Timeout of a JSON call (default 10 s). */
  timeoutMs?: number;
  /** Timeout of a media download (default 30 s). */
  mediaTimeoutMs?: number;
  /**
   * Largest media download accepted (default 10 MB: WeChat's temporary images are at most 10 MB,
   * voice 2 MB, https://developers.weixin.qq.com/doc/offiaccount/Asset_Management/New_temporary_materials.html).
   */
  maxMediaBytes?: number;
}

/** `{errcode, errmsg}` of a WeChat JSON answer; errcode 0 when absent. */
function errorFields(body: Record<string, unknown>): { errcode: number; errmsg: string } {
  const errcode = typeof body.errcode === 'number' ? body.errcode : 0;
  const errmsg = typeof body.errmsg === 'string' ? body.errmsg : '';
  return { errcode, errmsg };
}

function parseJsonObject(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return isJsonObject(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/** `filename="x.jpg"` or RFC 5987 `filename*=UTF-8''x.jpg` of a Content-Disposition header. */
export function filenameFromDisposition(header: string | null): string | undefined {
  if (!header) return undefined;
  const extended = /filename\*\s*=\s*(?:UTF-8|utf-8)''([^;]+)/.exec(header);
  if (extended?.[1]) {
    try {
      return decodeURIComponent(extended[1].trim());
    } catch {
      // fall through to the plain form
    }
  }
  const plain = /filename\s*=\s*(?:"([^"]*)"|([^;\s]+))/.exec(header);
  const name = plain?.[1] ?? plain?.[2];
  return name ? name.trim() : undefined;
}

/** Largest body that may be WeChat's JSON (an error or a video URL) rather than file bytes. */
const MAX_JSON_BYTES = 64 * 1024;

/** Whether a media response is WeChat's JSON (an error or a video URL) rather than file bytes. */
function looksLikeJson(contentType: string, bytes: Uint8Array): boolean {
  if (/json|text\/plain/i.test(contentType)) return true;
  // Some gateways label the error `application/octet-stream`: sniff a leading "{".
  let i = 0;
  while (i < bytes.length && i < 16 && (bytes[i] === 0x20 || bytes[i] === 0x0a || bytes[i] === 0x0d || bytes[i] === 0x09)) i += 1;
  return bytes[i] === 0x7b && bytes.length < MAX_JSON_BYTES;
}

/** WeChat server API client; see the module comment for the error rules. */
export class WeChatApi {
  private readonly fetchFn: typeof fetch;
  private readonly log: Log;
  private readonly base: string;
  private readonly timeoutMs: number;
  private readonly mediaTimeoutMs: number;
  private readonly maxMediaBytes: number;

  constructor(private readonly opts: WeChatApiOptions) {
    this.fetchFn = opts.fetch ?? fetch;
    this.log = opts.log ?? silentLog;
    this.base = opts.apiBase.replace(/\/+$/, '');
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.mediaTimeoutMs = opts.mediaTimeoutMs ?? 30_000;
    this.maxMediaBytes = opts.maxMediaBytes ?? 10 * 1024 * 1024;
  }

  /**
   * Sends a customer-service text message (`POST /cgi-bin/message/custom/send`).
   * Split long answers before calling: WeChat answers `45002` for content too long.
   * Throws {@link WeChatApiError} (or `WeChatTokenError` when no token can be had).
   */
  async sendText(openId: string, content: string): Promise<void> {
    // JSON.stringify keeps non-ASCII as UTF-8 (no \u escapes), which WeChat shows verbatim.
    const body = { touser: openId, msgtype: 'text', text: { content } };
    await this.withToken('message/custom/send', (token) => this.postJson('message/custom/send', token, body));
  }

  /**
   * Shows or cancels the typing indicator (`POST /cgi-bin/message/custom/typing`). Best
   * effort: `45080` (no interaction in the last 30 s) and `45081` (already typing) are
   * ignored and give false. Other failures throw, so callers that must not fail catch.
   */
  async typing(openId: string, command: WeChatTypingCommand): Promise<boolean> {
    try {
      await this.withToken('message/custom/typing', (token) =>
        this.postJson('message/custom/typing', token, { touser: openId, command }),
      );
      return true;
    } catch (err) {
      if (err instanceof WeChatApiError && err.errcode !== undefined && TYPING_IGNORED_ERRCODES.has(err.errcode)) {
        this.log.debug('wechat typing indicator declined', { errcode: err.errcode });
        return false;
      }
      throw err;
    }
  }

  /**
   * Downloads temporary media (`GET /cgi-bin/media/get`; media live 3 days). Voice comes as
   * `audio/amr`, images as `image/jpeg`. A JSON body with a non-zero `errcode` is an error
   * (e.g. `40007` invalid media_id); a JSON body without one (a video's `video_url`) is
   * returned as is with content type `application/json`.
   */
  async getMedia(mediaId: string): Promise<WeChatMediaFile> {
    return this.withToken('media/get', (token) => this.download(token, mediaId));
  }

  /** Runs `attempt` with the current token; on a token errcode refreshes once and retries once. */
  private async withToken<T>(endpoint: WeChatEndpoint, attempt: (token: string) => Promise<T>): Promise<T> {
    const token = await this.opts.tokens.get();
    try {
      return await attempt(token);
    } catch (err) {
      if (!(err instanceof WeChatApiError) || err.errcode === undefined || !TOKEN_ERRCODES.has(err.errcode)) throw err;
      this.log.warn('wechat rejected the access token; refreshing once and retrying', { endpoint, errcode: err.errcode });
      const fresh = await this.opts.tokens.invalidate(token);
      return attempt(fresh);
    }
  }

  private url(path: string, token: string, extra: Record<string, string> = {}): string {
    const query = new URLSearchParams({ access_token: token, ...extra });
    return `${this.base}/cgi-bin/${path}?${query.toString()}`;
  }

  /** One HTTP exchange; transport failures become retryable {@link WeChatApiError}s. */
  private async send(endpoint: WeChatEndpoint, url: string, init: RequestInit, timeoutMs: number): Promise<Response> {
    let res: Response;
    try {
      res = await this.fetchFn(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
    } catch (err) {
      const failure = describeFetchFailure(err);
      this.log.warn('wechat api request failed', { endpoint, reason: failure.reason });
      throw new WeChatApiError(`WeChat ${endpoint} request ${failure.timeout ? 'timed out' : `failed (${failure.reason})`}`, endpoint, undefined, '', true);
    }
    if (!res.ok) {
      await res.body?.cancel().catch(() => undefined);
      const retryable = res.status >= 500 || res.status === 429;
      this.log.warn('wechat api http error', { endpoint, status: res.status });
      throw new WeChatApiError(`WeChat ${endpoint} answered HTTP ${res.status}`, endpoint, undefined, '', retryable, res.status);
    }
    return res;
  }

  private async postJson(endpoint: WeChatEndpoint, token: string, body: unknown): Promise<Record<string, unknown>> {
    const res = await this.send(
      endpoint,
      this.url(endpoint, token),
      { method: 'POST', headers: { 'content-type': 'application/json; charset=utf-8' }, body: JSON.stringify(body) },
      this.timeoutMs,
    );
    const text = await res.text();
    const parsed = parseJsonObject(text);
    if (!parsed) {
      throw new WeChatApiError(`WeChat ${endpoint} answered with a body that is not a JSON object`, endpoint, undefined, '', true, res.status);
    }
    this.check(endpoint, token, parsed);
    return parsed;
  }

  private check(endpoint: WeChatEndpoint, token: string, body: Record<string, unknown>): void {
    const { errcode, errmsg } = errorFields(body);
    if (errcode === 0) return;
    const err = apiErrorFor(endpoint, errcode, redact(errmsg, [token]));
    if (!TOKEN_ERRCODES.has(errcode)) this.log.warn('wechat api error', { endpoint, errcode, retryable: err.retryable });
    throw err;
  }

  private async download(token: string, mediaId: string): Promise<WeChatMediaFile> {
    const res = await this.send('media/get', this.url('media/get', token, { media_id: mediaId }), { method: 'GET' }, this.mediaTimeoutMs);
    let bytes: Uint8Array;
    try {
      bytes = await readBodyCapped(res, this.maxMediaBytes);
    } catch (err) {
      if (err instanceof MediaTooLargeError) {
        throw new WeChatApiError(`WeChat media is ${err.bytes} bytes, over the ${this.maxMediaBytes}-byte limit`, 'media/get', undefined, '', false);
      }
      // The connection dropped or timed out midway: a new attempt may succeed.
      const failure = describeFetchFailure(err);
      throw new WeChatApiError(`WeChat media/get download ${failure.timeout ? 'timed out' : `failed (${failure.reason})`}`, 'media/get', undefined, '', true);
    }
    const contentType = (res.headers.get('content-type') ?? 'application/octet-stream').split(';')[0]?.trim().toLowerCase() ?? '';
    if (looksLikeJson(contentType, bytes)) {
      const parsed = parseJsonObject(new TextDecoder().decode(bytes));
      if (parsed) {
        this.check('media/get', token, parsed);
        return { bytes, contentType: 'application/json', filename: undefined };
      }
    }
    if (bytes.length === 0) throw new WeChatApiError('WeChat media/get answered with an empty body', 'media/get', undefined, '', true);
    return { bytes, contentType: contentType || 'application/octet-stream', filename: filenameFromDisposition(res.headers.get('content-disposition')) };
  }
}
