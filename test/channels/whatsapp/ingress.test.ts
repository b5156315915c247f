/**
 * The WhatsApp webhook handler called directly: the paths that must not touch DynamoDB or
 * SQS (verification, rejected requests, status updates). The store points at a closed
 * port, so any DynamoDB call would fail the request with a 500.
 */
import { createWhatsAppHandler } from '../../../functions/whatsapp';
import { MAX_BODY_BYTES, parseQuery, type HttpRequest } from '../../../lib/channels/http';
import { handleWhatsApp, type WhatsAppIngressDeps } from '../../../lib/channels/whatsapp/ingress';
import { sampleStatusWebhook, sampleTextWebhook, signedWebhookEvent, signedWebhookRequest } from '../../../local/samples/whatsapp';
import { WINDOW_CLOSED_AT_FACT, WINDOW_CLOSED_BY_FACT } from '../../../lib/channels/whatsapp/state';
import { loadConfig } from '../../../lib/config';
import type { Job } from '../../../lib/types';
import { silentLog } from '../../../lib/types';
import { createDocumentClient } from '../../../lib/store/client';
import { MessageStore } from '../../../lib/store/messages';

const PNID = '106540352242922';
const SECRET = 'unit_app_secret';
const ENV = {
  WHATSAPP_VERIFY_TOKEN: 'the-verify-token',
  WHATSAPP_APP_SECRET: SECRET,
  WHATSAPP_ACCESS_TOKEN: 'tok',
  WHATSAPP_PHONE_NUMBER_ID: PNID,
  // Nothing listens here: a DynamoDB call would fail the request.
  DYNAMODB_ENDPOINT: 'http://127.0.0.1:9',
  AWS_REGION: 'us-east-1',
};

function setup(): { deps: WhatsAppIngressDeps; enqueued: Job[]; facts: { userId: string; changes: Readonly<Record<string, string | undefined>> }[] } {
  const cfg = loadConfig(ENV);
  if (!cfg.whatsapp) throw new Error('whatsapp not configured');
  const enqueued: Job[] = [];
  const facts: { userId: string; changes: Readonly<Record<string, string | undefined>> }[] = [];
  const deps: WhatsAppIngressDeps = {
    config: cfg.whatsapp,
    messages: new MessageStore(createDocumentClient(cfg.aws), cfg.aws.tableName),
    queue: {
      enqueue: async (job) => {
        enqueued.push(job);
      },
    },
    users: {
      set: async (_channel, userId, changes) => {
        facts.push({ userId, changes });
      },
    },
    clock: { nowMs: () => 1_750_000_000_000, sleep: async () => undefined },
    log: silentLog,
  };
  return { deps, enqueued, facts };
}

function get(query: Record<string, string>): HttpRequest {
  const raw = new URLSearchParams(query).toString();
  return { method: 'GET', path: '/whatsapp', rawQuery: raw, query: parseQuery(raw), headers: {}, body: Buffer.alloc(0), receivedAtMs: 0 };
}

describe('handleWhatsApp', () => {
  it('answers the verification challenge only for subscribe + the right token', async () => {
    const { deps } = setup();
    const ok = await handleWhatsApp(deps, get({ 'hub.mode': 'subscribe', 'hub.verify_token': 'the-verify-token', 'hub.challenge': '42' }));
    const bad = await handleWhatsApp(deps, get({ 'hub.mode': 'subscribe', 'hub.verify_token': 'nope', 'hub.challenge': '42' }));
    expect([ok.statusCode, ok.body]).toEqual([200, '42']);
    expect(bad.statusCode).toBe(403);
    expect(bad.body).not.toContain('42');
  });

  it('refuses other methods', async () => {
    const { deps } = setup();
    const res = await handleWhatsApp(deps, { ...signedWebhookRequest(SECRET, '{}'), method: 'PUT' });
    expect(res.statusCode).toBe(405);
  });

  it('answers 401 for a missing or wrong signature, 413 for an oversized body, 400 for signed non-JSON', async () => {
    // Arrange
    const { deps, enqueued } = setup();
    const body = sampleTextWebhook({ phoneNumberId: PNID, from: '1555', text: 'hi' });
    const signed = signedWebhookRequest(SECRET, body);
    const unsigned: HttpRequest = { ...signed, headers: { 'content-type': 'application/json' } };
    const wrong = signedWebhookRequest('other_secret', body);
    const huge: HttpRequest = { ...signed, body: Buffer.alloc(MAX_BODY_BYTES + 1, 0x20) };
    // Act
    const results = await Promise.all([unsigned, wrong, huge, signedWebhookRequest(SECRET, 'not json')].map((r) => handleWhatsApp(deps, r)));
    // Assert
    expect(results.map((r) => r.statusCode)).toEqual([401, 401, 413, 400]);
    for (const r of results) expect(r.body).not.toContain('hi');
    expect(enqueued).toEqual([]);
  });

  it('acknowledges status updates without touching the store or the queue', async () => {
    const { deps, enqueued, facts } = setup();
    const kinds: readonly ('sent' | 'delivered' | 'read')[] = ['sent', 'delivered', 'read'];
    for (const status of kinds) {
      const res = await handleWhatsApp(deps, signedWebhookRequest(SECRET, sampleStatusWebhook({ phoneNumberId: PNID, recipientId: '1555', status })));
      expect(res.statusCode).toBe(200);
    }
    expect(enqueued).toEqual([]);
    expect(facts).toEqual([]);
  });

  it('records a failed status with 131047 on the user, and only that', async () => {
    // Arrange
    const { deps, enqueued, facts } = setup();
    const closed = sampleStatusWebhook({ phoneNumberId: PNID, recipientId: '1555', status: 'failed', errorCode: 131047, id: 'wamid.out-1' });
    const other = sampleStatusWebhook({ phoneNumberId: PNID, recipientId: '1556', status: 'failed', errorCode: 131026 });
    // Act
    const a = await handleWhatsApp(deps, signedWebhookRequest(SECRET, closed));
    const b = await handleWhatsApp(deps, signedWebhookRequest(SECRET, other));
    // Assert
    expect([a.statusCode, b.statusCode]).toEqual([200, 200]);
    expect(facts).toEqual([{ userId: '1555', changes: { [WINDOW_CLOSED_AT_FACT]: '1750000000000', [WINDOW_CLOSED_BY_FACT]: 'status:wamid.out-1' } }]);
    expect(enqueued).toEqual([]);
  });
});

describe('createWhatsAppHandler', () => {
  it('answers 404 when the channel is not configured', async () => {
    const handler = createWhatsAppHandler(loadConfig({}), { log: silentLog });
    const res = await handler(signedWebhookEvent(SECRET, '{}'));
    expect(res.statusCode).toBe(404);
  });

  it('decodes a base64 body from API Gateway before checking the signature', async () => {
    const handler = createWhatsAppHandler(loadConfig(ENV), { log: silentLog });
    const body = sampleStatusWebhook({ phoneNumberId: PNID, recipientId: '1555', status: 'read' });
    const event = signedWebhookEvent(SECRET, body, { base64: true });
    const tamperedEvent = { ...event, body: Buffer.from(body.replace('"read"', '"sent"'), 'utf8').toString('base64') };
    const asBase64 = await handler(event);
    const tampered = await handler(tamperedEvent);
    expect(event.isBase64Encoded).toBe(true);
    expect(asBase64.statusCode).toBe(200);
    expect(tampered.statusCode).toBe(401);
  });
});
