/**
 * A small client for the parts of Meta's Graph API the gateway uses: send a message,
 * mark a message read with the typing indicator, and the two-step media download.
 * `fetch` is injected (tests point it at a fake Graph server over HTTP).
 *
 * Endpoints (Meta "WhatsApp Cloud API reference",
 * https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages and
 * https://developers.facebook.com/docs/whatsapp/cloud-api/reference/media):
 * - `POST {graph}/{version}/{phone_number_id}/messages` (send, mark read);
 * - `GET {graph}/{version}/{media_id}` → `{url, mime_type, file_size}`, then `GET url`
 *   with the same bearer token (the URL is valid for 5 minutes).
 *
 * @module
 */
import { MediaTooLargeError, readBodyCapped } from '../download';
import { isJsonObject } from '../../json';

/** Graph error codes the gateway acts on (Meta "WhatsApp Cloud API → Error codes"). */
export const GraphCode = {
  /** Access token expired or invalid (`OAuthException`). */
  TOKEN: 190,
  /** Application-level API rate limit. */
  APP_RATE_LIMIT: 4,
  /** WhatsApp Business Account rate limit. */
  WABA_RATE_LIMIT: 80007,
  /** Cloud API throughput reached (default 80 messages/s per number). */
  THROUGHPUT: 130429,
  /** Pair rate limit: too many messages to the same user in a short time (about one per 6 s). */
  PAIR_RATE: 131056,
  /** More than 24 h since the user last wrote: only a template may be sent. */
  REENGAGEMENT: 131047,
  /** Message undeliverable (not a WhatsApp user, old app version, …). */
  UNDELIVERABLE: 131026,
  /** Temporary Meta-side failures. */
  UNKNOWN: 1,
  SERVICE: 2,
  GENERIC_USER: 131000,
  SERVICE_UNAVAILABLE: 131016,
} as const;

/** Our own code for a request that never got a Graph answer (network error, timeout, non-JSON 5xx). */
export const NETWORK_ERROR_CODE = -1;
/** Our own code for media larger than we accept (permanent: retrying cannot help). */
export const TOO_LARGE_CODE = -2;

/** A failed Graph call, with Meta's numeric error code. */
export class GraphError extends Error {
  constructor(
    message: string,
    /** Meta's `error.code`, or {@link NETWORK_ERROR_CODE}. */
    readonly code: number,
    /** HTTP status (0 for a network error). */
    readonly httpStatus: number,
    /** Meta's `error.error_subcode`, when given. */
    readonly subcode?: number,
    /** Meta's `fbtrace_id`, to quote to Meta support. */
    readonly fbtraceId?: string,
  ) {
    super(message);
    this.name = 'GraphError';
  }
}

/** Metadata of an uploaded media object. */
export interface MediaInfo {
  url: string;
  mimeType: string;
  fileSize: number;
}

/** The Graph API operations the WhatsApp channel needs. */
export interface GraphApi {
  /** Sends a text message; returns the new message's `wamid`. */
  sendText(phoneNumberId: string, to: string, body: string): Promise<string>;
  /** Sends an approved template (the only kind allowed outside the 24 h window). */
  sendTemplate(phoneNumberId: string, to: string, name: string, languageCode: string): Promise<string>;
  /** Marks an inbound message read and shows the typing indicator (up to 25 s or until we reply). */
  markRead(phoneNumberId: string, messageId: string): Promise<void>;
  /** Step 1 of a media download: the short-lived URL and type. */
  mediaInfo(mediaId: string): Promise<MediaInfo>;
  /** Step 2: the bytes behind the URL (bearer token required), at most `maxBytes` of them. */
  download(url: string, maxBytes: number): Promise<Uint8Array>;
}

/** Settings of {@link createGraphClient}. */
export interface GraphClientOptions {
  /** e.g. `https://graph.facebook.com` (no trailing slash). */
  base: string;
  /** e.g. `v23.0`. */
  version: string;
  accessToken: string;
  fetch: typeof fetch;
  /** Per-request timeout (default 15 s). */
  timeoutMs?: number;
}

async function readJson(res: Response): Promise<unknown> {
  const text = await res.text();
  try {
    const value: unknown = JSON.parse(text);
    return value;
  } catch {
    return undefined;
  }
}

/** Builds a {@link GraphError} from a non-2xx response's `{error:{…}}` body. */
function errorFrom(status: number, body: unknown, what: string): GraphError {
  const err = isJsonObject(body) && isJsonObject(body.error) ? body.error : undefined;
  const code = typeof err?.code === 'number' ? err.code : NETWORK_ERROR_CODE;
  const subcode = typeof err?.error_subcode === 'number' ? err.error_subcode : undefined;
  const trace = typeof err?.fbtrace_id === 'string' ? err.fbtrace_id : undefined;
  const message = typeof err?.message === 'string' ? err.message : `HTTP ${status}`;
  return new GraphError(`${what} failed: ${message}`, code, status, subcode, trace);
}

/** Creates a Graph API client. */
export function createGraphClient(opts: GraphClientOptions): GraphApi {
  const root = `${opts.base}/${opts.version}`;
  const timeoutMs = opts.timeoutMs ?? 15_000;
  const auth = { authorization: `Bearer ${opts.accessToken}` };

  async function call(what: string, url: string, init: RequestInit): Promise<Response> {
    try {
      return await opts.fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
    } catch (err) {
      throw new GraphError(`${what} failed: ${err instanceof Error ? err.message : String(err)}`, NETWORK_ERROR_CODE, 0);
    }
  }

  async function post(what: string, phoneNumberId: string, payload: Record<string, unknown>): Promise<unknown> {
    const res = await call(what, `${root}/${encodeURIComponent(phoneNumberId)}/messages`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ messaging_product: 'whatsapp', ...payload }),
    });
    const body = await readJson(res);
    if (!res.ok) throw errorFrom(res.status, body, what);
    return body;
  }

  function messageId(body: unknown): string {
    const list = isJsonObject(body) && Array.isArray(body.messages) ? body.messages : [];
    const first: unknown = list[0];
    return isJsonObject(first) && typeof first.id === 'string' ? first.id : '';
  }

  return {
    async sendText(phoneNumberId, to, text) {
      const body = await post('send text', phoneNumberId, {
        recipient_type: 'individual',
        to,
        type: 'text',
        // No link previews: an answer quoting a URL should not turn into a card.
        text: { preview_url: false, body: text },
      });
      return messageId(body);
    },

    async sendTemplate(phoneNumberId, to, name, languageCode) {
      const body = await post('send template', phoneNumberId, {
        recipient_type: 'individual',
        to,
        type: 'template',
        template: { name, language: { code: languageCode } },
      });
      return messageId(body);
    },

    async markRead(phoneNumberId, id) {
      await post('mark read', phoneNumberId, { status: 'read', message_id: id, typing_indicator: { type: 'text' } });
    },

    async mediaInfo(mediaId) {
      const res = await call('media info', `${root}/${encodeURIComponent(mediaId)}`, { headers: auth });
      const body = await readJson(res);
      if (!res.ok) throw errorFrom(res.status, body, 'media info');
      if (!isJsonObject(body) || typeof body.url !== 'string') throw new GraphError('media info has no url', NETWORK_ERROR_CODE, res.status);
      return {
        url: body.url,
        mimeType: typeof body.mime_type === 'string' ? body.mime_type : 'application/octet-stream',
        // Meta documents a number; accept a numeric string too.
        fileSize: typeof body.file_size === 'number' ? body.file_size : typeof body.file_size === 'string' ? Number(body.file_size) || 0 : 0,
      };
    },

    async download(url, maxBytes) {
      // Meta's media host wants the bearer token, and rejects some requests without a User-Agent.
      const res = await call('media download', url, { headers: { ...auth, 'user-agent': 'channel-llm-gateway/0.1' } });
      if (!res.ok) throw errorFrom(res.status, await readJson(res), 'media download');
      try {
        return await readBodyCapped(res, maxBytes);
      } catch (err) {
        if (err instanceof MediaTooLargeError) throw new GraphError(err.message, TOO_LARGE_CODE, res.status);
        throw new GraphError(`media download failed: ${err instanceof Error ? err.message : String(err)}`, NETWORK_ERROR_CODE, res.status);
      }
    },
  };
}
