/**
 * The slice of Twilio's REST API the gateway uses: send a message, download media.
 * Plain `fetch` (injected), no SDK, so the code runs in the small ingress bundle too.
 *
 * `POST {api}/2010-04-01/Accounts/{AccountSid}/Messages.json`, HTTP Basic
 * `AccountSid:AuthToken`, form `To`, `From` or `MessagingServiceSid`, `Body` (at most
 * 1,600 characters) or `ContentSid` (a template) — Twilio docs, "Message resource",
 * https://www.twilio.com/docs/messaging/api/message-resource. Errors come back as JSON
 * `{code, message, more_info, status}`.
 *
 * @module
 */
import type { TwilioConfig } from '../../config';
import { MediaTooLargeError, readBodyCapped } from '../download';
import { encodeForm } from './form';
import { isJsonObject } from '../../json';

/** Twilio error 63016: WhatsApp freeform message outside the 24-hour session window. */
export const WHATSAPP_SESSION_CLOSED = '63016';

/** A failed REST call; `code` is Twilio's error code when it sent one, else `http_<status>` / `network`. */
export class TwilioApiError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly status: number,
    readonly retryable: boolean,
  ) {
    super(message);
    this.name = 'TwilioApiError';
  }
}

/** What a message send carries besides the recipient. */
export type OutboundContent = { body: string } | { contentSid: string };

/** One outbound message. */
export interface OutboundMessage {
  to: string;
  /** The sender: a number / WhatsApp address, or a Messaging Service. */
  sender: { from: string } | { messagingServiceSid: string };
  content: OutboundContent;
  /** Where Twilio posts delivery status (a WhatsApp 63016 arrives there). */
  statusCallback?: string;
}

/**
 * Retry policy by HTTP status: 429 and 5xx are transient; 401/403 mean bad credentials,
 * which a redeploy fixes, so they are retried too (the job then reaches the DLQ intact
 * after `maxReceiveCount`, ready to replay). Other 4xx (invalid number, unsubscribed
 * recipient 21610, …) will fail the same way every time.
 */
function retryableStatus(status: number): boolean {
  return status === 429 || status >= 500 || status === 401 || status === 403;
}

/** A small Twilio REST client over an injected `fetch`. */
export class TwilioRest {
  constructor(
    private readonly cfg: Pick<TwilioConfig, 'accountSid' | 'authToken' | 'apiBase'>,
    private readonly fetchImpl: typeof fetch,
    private readonly timeoutMs = 10_000,
  ) {}

  private authorization(): string {
    return `Basic ${Buffer.from(`${this.cfg.accountSid}:${this.cfg.authToken}`).toString('base64')}`;
  }

  /**
   * Sends one message; resolves with its `sid`.
   * @throws TwilioApiError with Twilio's code and whether a retry could help.
   */
  async sendMessage(msg: OutboundMessage): Promise<string> {
    const form: Record<string, string> = { To: msg.to };
    if ('from' in msg.sender) form.From = msg.sender.from;
    else form.MessagingServiceSid = msg.sender.messagingServiceSid;
    if ('body' in msg.content) form.Body = msg.content.body;
    else form.ContentSid = msg.content.contentSid;
    if (msg.statusCallback !== undefined) form.StatusCallback = msg.statusCallback;
    const url = `${this.cfg.apiBase}/2010-04-01/Accounts/${encodeURIComponent(this.cfg.accountSid)}/Messages.json`;
    let res: Response;
    try {
      res = await this.fetchImpl(url, {
        method: 'POST',
        headers: { authorization: this.authorization(), 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: encodeForm(form),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      throw new TwilioApiError(`Twilio unreachable: ${err instanceof Error ? err.message : String(err)}`, 'network', 0, true);
    }
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    const body = isJsonObject(parsed) ? parsed : {};
    if (res.ok) {
      const sid = body.sid;
      return typeof sid === 'string' ? sid : '';
    }
    const code = typeof body.code === 'number' || typeof body.code === 'string' ? String(body.code) : `http_${res.status}`;
    const message = typeof body.message === 'string' ? body.message : `HTTP ${res.status}`;
    // 20429 is Twilio's "too many requests" code, whatever the status says.
    throw new TwilioApiError(`Twilio ${code}: ${message}`, code, res.status, code === '20429' || retryableStatus(res.status));
  }

  /**
   * Downloads media from a `MediaUrl{N}` of a signed webhook, with at most `maxBytes`.
   * Credentials are sent only to Twilio's own API host (media URLs live there and may
   * require HTTP Basic auth); `fetch` drops them on the cross-origin redirect to storage.
   * @throws TwilioApiError when the download fails or is too large.
   */
  async fetchMedia(url: string, maxBytes: number): Promise<{ bytes: Uint8Array; contentType: string }> {
    const sameHost = new URL(url).origin === new URL(this.cfg.apiBase).origin;
    let res: Response;
    try {
      res = await this.fetchImpl(url, {
        headers: sameHost ? { authorization: this.authorization() } : {},
        redirect: 'follow',
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      throw new TwilioApiError(`media unreachable: ${err instanceof Error ? err.message : String(err)}`, 'network', 0, true);
    }
    if (!res.ok) throw new TwilioApiError(`media download failed: HTTP ${res.status}`, `http_${res.status}`, res.status, retryableStatus(res.status));
    const contentType = res.headers.get('content-type') ?? '';
    try {
      return { bytes: await readBodyCapped(res, maxBytes), contentType };
    } catch (err) {
      if (err instanceof MediaTooLargeError) throw new TwilioApiError(`media of ${err.bytes} bytes is too large`, 'media_too_large', res.status, false);
      // The connection dropped or timed out midway: a new attempt may succeed.
      throw new TwilioApiError(`media download failed: ${err instanceof Error ? err.message : String(err)}`, 'network', res.status, true);
    }
  }
}
