/**
 * A Meta-like client that signs webhooks with the app secret and posts them to the gateway,
 * as the WhatsApp Cloud API does (https://developers.facebook.com/docs/graph-api/webhooks/getting-started#event-notifications).
 */
import { signedHeaders } from '../samples/whatsapp';

/** Posts webhooks to the gateway the way Meta does. */
export class MetaClient {
  constructor(
    private readonly url: string,
    private readonly appSecret: string,
  ) {}

  /** Posts a signed body; `contentType` other than JSON makes the local API Gateway base64 it. */
  async post(body: string | Buffer, opts: { signature?: string | null; contentType?: string } = {}): Promise<{ status: number; text: string }> {
    const headers = signedHeaders(this.appSecret, body);
    if (opts.signature === null) Reflect.deleteProperty(headers, 'x-hub-signature-256');
    else if (opts.signature !== undefined) headers['x-hub-signature-256'] = opts.signature;
    if (opts.contentType !== undefined) headers['content-type'] = opts.contentType;
    const res = await fetch(this.url, { method: 'POST', headers, body, signal: AbortSignal.timeout(10_000) });
    return { status: res.status, text: await res.text() };
  }

  /** Meta's subscription check. */
  async verify(query: Readonly<Record<string, string>>): Promise<{ status: number; text: string }> {
    const res = await fetch(`${this.url}?${new URLSearchParams(query).toString()}`, { signal: AbortSignal.timeout(10_000) });
    return { status: res.status, text: await res.text() };
  }
}
