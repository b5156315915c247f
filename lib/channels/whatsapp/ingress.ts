/**
 * The WhatsApp webhook: verify → parse → (statuses: note 131047) → claim → enqueue → 200.
 *
 * Meta retries a delivery that is not answered 200 quickly, with backoff, for up to
 * 7 days, and sends duplicates anyway (https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/):
 * so the webhook does the least work
 * that makes a message safe (a conditional put of its `wamid` and one SQS send) and
 * acknowledges. The answer travels later through the Graph API (see adapter.ts).
 *
 * Status webhooks (sent / delivered / read / failed, about three per message we send)
 * are the bulk of the traffic: they are dropped right after the signature check, except
 * a `failed` status with 131047, which is recorded on the user.
 *
 * @module
 */
import type { WhatsAppConfig } from '../../config';
import { acceptMessage, type IngressDeps } from '../../core/ingress';
import type { Job, Log, TurnInput } from '../../types';
import type { UserStateStore } from '../../store/user-state';
import { MAX_BODY_BYTES, text, type HttpRequest, type HttpResponse } from '../http';
import { GraphCode } from './graph';
import { parseWebhookBody, WhatsAppPayloadError, type InboundMessage, type StatusUpdate, type WebhookBatch } from './payload';
import { verifyMetaSignature, verifyTokenMatches } from './signature';
import { windowClosedFacts } from './state';

/** Dependencies of the WhatsApp webhook. */
export interface WhatsAppIngressDeps extends IngressDeps {
  config: WhatsAppConfig;
  /** Where a closed 24 h window (131047) is recorded. */
  users: Pick<UserStateStore, 'set'>;
  log: Log;
}

/** Reply to message types the assistant cannot read (video, document, sticker, location, …). */
export const UNSUPPORTED_TEXT =
  'Sorry, I can only read text messages, voice messages and images here. Please type your question.';

/** The header Meta signs every POST with. */
const SIGNATURE_HEADER = 'x-hub-signature-256';

/**
 * What the worker should do with an inbound message, or `undefined` to ignore it.
 * - text → the text; an interactive button/list reply or a template button → the
 *   title of the chosen option, as if the user had typed it;
 * - audio (voice notes included) and image → fetched and read by the worker;
 * - reaction → ignored (an emoji on an earlier message is not a question);
 * - system notices (e.g. "user changed number") → ignored: the user did not write them;
 * - anything else → a polite "not supported" reply that never reaches the model.
 */
export function turnInputFor(m: InboundMessage): TurnInput | undefined {
  switch (m.type) {
    case 'text':
      return { kind: 'text', text: m.body };
    case 'choice':
      return { kind: 'text', text: m.title };
    case 'audio':
      return { kind: 'audio', mediaRef: m.mediaId, mimeType: m.mimeType };
    case 'image':
      return { kind: 'image', mediaRef: m.mediaId, caption: m.caption, mimeType: m.mimeType };
    case 'reaction':
    case 'system':
      return undefined;
    case 'other':
      return { kind: 'notice', text: UNSUPPORTED_TEXT };
  }
}

/** The queue job for an inbound message (message key = `wamid`, user = sender's WhatsApp id). */
export function jobFor(m: InboundMessage, input: TurnInput, arrivedAtMs: number): Job {
  return {
    v: 1,
    channel: 'whatsapp',
    userId: m.from,
    msgKey: m.id,
    conversationKey: `whatsapp#${m.from}`,
    input,
    reply: { channel: 'whatsapp', phoneNumberId: m.phoneNumberId, to: m.from, messageId: m.id },
    arrivedAtMs,
  };
}

function reject(deps: WhatsAppIngressDeps, status: number, reason: string): HttpResponse {
  // Never echo the body or the reason to the caller (design principle 2).
  deps.log.warn('whatsapp request rejected', { status, reason });
  return text(status, status === 401 ? 'unauthorized' : status === 403 ? 'forbidden' : status === 413 ? 'payload too large' : 'bad request');
}

/** GET: Meta's subscription check. Answer `hub.challenge` only for our verify token. */
function verifySubscription(deps: WhatsAppIngressDeps, req: HttpRequest): HttpResponse {
  const mode = req.query['hub.mode'];
  const token = req.query['hub.verify_token'];
  const challenge = req.query['hub.challenge'];
  if (mode !== 'subscribe' || !verifyTokenMatches(deps.config.verifyToken, token) || challenge === undefined) {
    return reject(deps, 403, 'verification with a wrong mode or token');
  }
  return text(200, challenge);
}

/** A `failed` status with 131047: remember that this user's 24 h window is closed. */
async function recordClosedWindows(deps: WhatsAppIngressDeps, statuses: readonly StatusUpdate[], nowMs: number): Promise<void> {
  const closed = statuses.filter((s) => s.status === 'failed' && s.errorCodes.includes(GraphCode.REENGAGEMENT) && s.recipientId !== '');
  await Promise.all(
    closed.map(async (s) => {
      deps.log.warn('whatsapp message failed: 24 h window closed (131047)', { recipient: s.recipientId, messageId: s.id });
      // When Meta saw the window closed (the status's own time), not when the report reached
      // us: a late or retried status must not close the window a newer user message reopened.
      const closedAtMs = s.timestampSec > 0 ? Math.min(nowMs, s.timestampSec * 1000) : nowMs;
      await deps.users.set('whatsapp', s.recipientId, windowClosedFacts(closedAtMs, `status:${s.id}`), nowMs);
    }),
  );
  const otherFailures = statuses.filter((s) => s.status === 'failed' && !s.errorCodes.includes(GraphCode.REENGAGEMENT));
  for (const s of otherFailures) deps.log.warn('whatsapp message failed', { recipient: s.recipientId, messageId: s.id, codes: s.errorCodes });
}

/**
 * Claims and enqueues every message of the batch. One user's messages are enqueued one
 * after the other, in the order Meta listed them, because SQS FIFO orders a group by
 * send time; different users go in parallel.
 */
async function acceptMessages(deps: WhatsAppIngressDeps, messages: readonly InboundMessage[], receivedAtMs: number): Promise<void> {
  const byUser = new Map<string, InboundMessage[]>();
  for (const m of messages) {
    if (m.phoneNumberId !== deps.config.phoneNumberId) {
      // The app may be subscribed for several numbers; we only hold a token for ours.
      deps.log.warn('whatsapp message for another phone number ignored', { phoneNumberId: m.phoneNumberId });
      continue;
    }
    const list = byUser.get(m.from);
    if (list) list.push(m);
    else byUser.set(m.from, [m]);
  }
  await Promise.all(
    [...byUser.values()].map(async (list) => {
      for (const m of list) {
        const input = turnInputFor(m);
        if (!input) {
          deps.log.debug('whatsapp message needs no answer', { type: m.type });
          continue;
        }
        const claim = await acceptMessage(deps, jobFor(m, input, receivedAtMs));
        if (!claim.created) deps.log.info('whatsapp duplicate delivery', { msgKey: m.id, deliveries: claim.record.deliveries });
      }
    }),
  );
}

/**
 * Handles GET (subscription check) and POST (notifications) on `/whatsapp`.
 *
 * POST answers 401 for a missing or wrong `X-Hub-Signature-256` (nothing is parsed or
 * stored), 400 for a signed body that is not JSON, 413 above 3 MB, and otherwise 200 once
 * every message is claimed and enqueued. A DynamoDB or SQS failure propagates (the caller
 * answers 500) so Meta delivers again; the claims make that redelivery harmless.
 *
 * Meta's retry rule: a notification answered with anything but 200 (or not delivered) is
 * sent again "with decreasing frequency until the request succeeds, for up to 7 days"
 * (https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/). So a 5xx while we
 * cannot claim or enqueue loses nothing: a redelivery finds the claim and, while the record
 * is still queued, enqueues the job again (lib/core/ingress.ts; FIFO deduplication and the
 * worker's idempotent turn absorb the double).
 */
export async function handleWhatsApp(deps: WhatsAppIngressDeps, req: HttpRequest): Promise<HttpResponse> {
  if (req.method === 'GET') return verifySubscription(deps, req);
  if (req.method !== 'POST') return text(405, 'method not allowed');
  if (req.body.length > MAX_BODY_BYTES) return reject(deps, 413, `body of ${req.body.length} bytes`);
  // The raw bytes, exactly as received (Meta escapes non-ASCII as \uXXXX; never re-serialise).
  if (!verifyMetaSignature(deps.config.appSecret, req.body, req.headers[SIGNATURE_HEADER])) {
    return reject(deps, 401, req.headers[SIGNATURE_HEADER] === undefined ? 'missing signature' : 'bad signature');
  }
  let batch: WebhookBatch;
  try {
    batch = parseWebhookBody(req.body);
  } catch (err) {
    if (err instanceof WhatsAppPayloadError) return reject(deps, 400, err.code);
    throw err;
  }
  if (batch.skipped > 0) deps.log.warn('whatsapp webhook items skipped', { skipped: batch.skipped });
  // The common case: status updates only. Nothing to store unless a send failed with 131047.
  if (batch.messages.length === 0 && !batch.statuses.some((s) => s.status === 'failed')) return text(200, 'OK');
  await Promise.all([recordClosedWindows(deps, batch.statuses, deps.clock.nowMs()), acceptMessages(deps, batch.messages, req.receivedAtMs)]);
  return text(200, 'OK');
}
