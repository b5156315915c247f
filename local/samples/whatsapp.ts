/**
 * Realistic, signed WhatsApp webhook requests for tests, fakes and the benchmark
 * (ingress latency of a text message vs. a status update). Not imported by the functions.
 *
 * Bodies are serialised the way Meta does it: compact JSON with every non-ASCII character
 * escaped as `\uXXXX` (UTF-16, so an emoji becomes a surrogate pair of escapes). That
 * matters because the signature covers these exact bytes.
 *
 * @example
 * ```ts
 * const body = sampleTextWebhook({ phoneNumberId: '106540352242922', from: '16505551234', text: 'Hi' });
 * const event = signedWebhookEvent('app-secret', body);
 * await createWhatsAppHandler(cfg)(event); // → 200
 * ```
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { parseQuery, type HttpRequest } from '../../lib/channels/http';
import { signMetaBody } from '../../lib/channels/whatsapp/signature';
import { asciiJson } from '../../lib/queue/jobs';

/** JSON as Meta writes it: non-ASCII escaped as `\uXXXX`. */
export function metaJson(value: unknown): string {
  return asciiJson(value);
}

/** A fresh message id shaped like Meta's (`wamid.` + base64). */
export function sampleWamid(): string {
  return `wamid.${randomBytes(24).toString('base64')}`;
}

/** The `entry[].changes[].value` envelope around messages or statuses. */
export function webhookEnvelope(phoneNumberId: string, value: Record<string, unknown>): Record<string, unknown> {
  return {
    object: 'whatsapp_business_account',
    entry: [
      {
        id: '102290129340398',
        changes: [
          {
            value: { messaging_product: 'whatsapp', metadata: { display_phone_number: '15550783881', phone_number_id: phoneNumberId }, ...value },
            field: 'messages',
          },
        ],
      },
    ],
  };
}

/** Options of {@link sampleTextWebhook}. */
export interface SampleTextOptions {
  phoneNumberId: string;
  from: string;
  text: string;
  /** Defaults to a fresh {@link sampleWamid}. */
  id?: string;
  /** Defaults to now. */
  timestampSec?: number;
  profileName?: string;
}

/** A webhook body carrying one text message. */
export function sampleTextWebhook(opts: SampleTextOptions): string {
  return metaJson(
    webhookEnvelope(opts.phoneNumberId, {
      contacts: [{ profile: { name: opts.profileName ?? 'Sheena Nelson' }, wa_id: opts.from }],
      messages: [
        {
          from: opts.from,
          id: opts.id ?? sampleWamid(),
          timestamp: String(opts.timestampSec ?? Math.floor(Date.now() / 1000)),
          type: 'text',
          text: { body: opts.text },
        },
      ],
    }),
  );
}

/** Options of {@link sampleStatusWebhook}. */
export interface SampleStatusOptions {
  phoneNumberId: string;
  recipientId: string;
  status: 'sent' | 'delivered' | 'read' | 'failed';
  /** Our outbound message id; defaults to a fresh one. */
  id?: string;
  /** For `failed`: Meta's error code (e.g. 131047). */
  errorCode?: number;
  timestampSec?: number;
}

/** A webhook body carrying one status update, as Meta sends about three per outbound message. */
export function sampleStatusWebhook(opts: SampleStatusOptions): string {
  const status: Record<string, unknown> = {
    id: opts.id ?? sampleWamid(),
    status: opts.status,
    timestamp: String(opts.timestampSec ?? Math.floor(Date.now() / 1000)),
    recipient_id: opts.recipientId,
  };
  if (opts.status !== 'failed') {
    status.conversation = { id: 'CONVERSATION_ID', origin: { type: 'service' } };
    status.pricing = { billable: false, pricing_model: 'PMP', category: 'service', type: 'free_customer_service' };
  } else {
    const code = opts.errorCode ?? 131047;
    status.errors = [
      {
        code,
        title: code === 131047 ? 'Re-engagement message' : 'Message failed',
        message: code === 131047 ? 'Re-engagement message' : 'Message failed',
        error_data: {
          details:
            code === 131047
              ? 'Message failed to send because more than 24 hours have passed since the customer last replied to this number.'
              : 'Message failed to send.',
        },
        href: 'https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/',
      },
    ];
  }
  return metaJson(webhookEnvelope(opts.phoneNumberId, { statuses: [status] }));
}

/** Headers of a signed Meta POST. */
export function signedHeaders(appSecret: string, body: string | Uint8Array): Record<string, string> {
  return {
    'content-type': 'application/json',
    'user-agent': 'facebookexternalua',
    'x-hub-signature-256': signMetaBody(appSecret, body),
  };
}

/**
 * A signed POST /whatsapp as API Gateway (HTTP API, payload 2.0) hands it to the Lambda.
 * `base64: true` sets `isBase64Encoded`, as API Gateway does for bodies it does not treat as text.
 */
export function signedWebhookEvent(appSecret: string, body: string, opts: { base64?: boolean; nowMs?: number } = {}): APIGatewayProxyEventV2 {
  const nowMs = opts.nowMs ?? Date.now();
  const base64 = opts.base64 === true;
  return {
    version: '2.0',
    routeKey: 'POST /whatsapp',
    rawPath: '/whatsapp',
    rawQueryString: '',
    headers: signedHeaders(appSecret, body),
    requestContext: {
      accountId: '123456789012',
      apiId: 'bench',
      domainName: 'example.execute-api.us-east-1.amazonaws.com',
      domainPrefix: 'example',
      http: { method: 'POST', path: '/whatsapp', protocol: 'HTTP/1.1', sourceIp: '173.252.127.1', userAgent: 'facebookexternalua' },
      requestId: `req-${nowMs}`,
      routeKey: 'POST /whatsapp',
      stage: '$default',
      time: new Date(nowMs).toISOString(),
      timeEpoch: nowMs,
    },
    body: base64 ? Buffer.from(body, 'utf8').toString('base64') : body,
    isBase64Encoded: base64,
  };
}

/** A signed POST /whatsapp as {@link HttpRequest}, for calling `handleWhatsApp` directly. */
export function signedWebhookRequest(appSecret: string, body: string, receivedAtMs = Date.now()): HttpRequest {
  return {
    method: 'POST',
    path: '/whatsapp',
    rawQuery: '',
    query: parseQuery(''),
    headers: signedHeaders(appSecret, body),
    body: Buffer.from(body, 'utf8'),
    receivedAtMs,
  };
}
