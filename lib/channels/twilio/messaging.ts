/**
 * The Twilio messaging webhook (SMS, MMS, WhatsApp): verify → parse → claim → enqueue →
 * answer at once with empty TwiML. The worker replies later through the REST API
 * (adapter.ts), so the 15 s webhook limit (Twilio error 11200) never meets the model.
 *
 * The same function takes WhatsApp status callbacks (`/twilio/messaging/status`), where
 * a late 63016 (session closed) arrives; everything else there is dropped cheaply.
 *
 * @module
 */
import type { TwilioConfig } from '../../config';
import { acceptMessage, type IngressDeps } from '../../core/ingress';
import type { Job, Log } from '../../types';
import type { UserStateStore } from '../../store/user-state';
import { text, type HttpRequest, type HttpResponse } from '../http';
import { param, parseForm, type TwilioParams } from './form';
import { TwilioFormError, bareNumber, isWhatsAppAddress, messageJob, parseInboundMessage } from './inbound';
import { TwilioRest, WHATSAPP_SESSION_CLOSED } from './rest';
import { onSessionClosed } from './session';
import { calledBaseUrl, publicUrl, verifyTwilioSignature } from './signature';
import { twiml, twimlResponse } from './twiml';
import { MESSAGING_PATH, STATUS_PATH, counter } from './urls';

/** Dependencies of the messaging webhook. */
export interface TwilioMessagingDeps extends IngressDeps {
  config: TwilioConfig;
  /**
   * `PUBLIC_BASE_URL`: the signed URL of a request through the HTTP API is rebuilt from it; one
   * through a function URL uses that URL (https://www.twilio.com/docs/usage/webhooks/webhooks-security).
   */
  publicBaseUrl: string;
  users: UserStateStore;
  log: Log;
  /** For the re-engagement template a late 63016 triggers. */
  fetch: typeof fetch;
}

/** Largest body accepted: a webhook is a few kB even with ten media URLs. */
export const TWILIO_MAX_BODY_BYTES = 64 * 1024;

/** Rejects without echoing anything of the request (design principle 2). */
export function rejectTwilio(log: Log, status: 400 | 403 | 404 | 405 | 413, reason: string): HttpResponse {
  log.warn('twilio request rejected', { status, reason });
  const label = { 400: 'bad request', 403: 'forbidden', 404: 'not found', 405: 'method not allowed', 413: 'payload too large' }[status];
  return text(status, label);
}

/**
 * Reads and verifies a Twilio webhook: POST only, bounded size, `X-Twilio-Signature`
 * valid for the public URL. Returns the parameters, or the response to send.
 */
export function verifiedParams(
  deps: { config: TwilioConfig; publicBaseUrl: string; log: Log },
  req: HttpRequest,
): { ok: true; params: TwilioParams } | { ok: false; response: HttpResponse } {
  if (req.method !== 'POST') return { ok: false, response: rejectTwilio(deps.log, 405, `method ${req.method}`) };
  if (req.body.length > TWILIO_MAX_BODY_BYTES) return { ok: false, response: rejectTwilio(deps.log, 413, `body of ${req.body.length} bytes`) };
  const params = parseForm(req.body);
  const url = publicUrl(calledBaseUrl(deps.publicBaseUrl, req), req.path, req.rawQuery);
  const signature = req.headers['x-twilio-signature'] ?? '';
  if (!verifyTwilioSignature(deps.config.authToken, signature, url, params)) {
    return { ok: false, response: rejectTwilio(deps.log, 403, signature === '' ? 'missing signature' : 'bad signature') };
  }
  return { ok: true, params };
}

/** Handles POST `/twilio/messaging` and POST `/twilio/messaging/status`. */
export async function handleTwilioMessaging(deps: TwilioMessagingDeps, req: HttpRequest): Promise<HttpResponse> {
  const verified = verifiedParams(deps, req);
  if (!verified.ok) return verified.response;
  const params = verified.params;
  if (req.path.endsWith(STATUS_PATH)) return handleStatus(deps, req, params);
  if (!req.path.endsWith(MESSAGING_PATH)) return rejectTwilio(deps.log, 404, `path ${req.path}`);

  let job: Job;
  try {
    job = messageJob(parseInboundMessage(params), req.receivedAtMs);
  } catch (err) {
    if (err instanceof TwilioFormError) return rejectTwilio(deps.log, 400, err.message);
    throw err;
  }
  // Claimed by MessageSid: Twilio's retries (or a fallback URL) never make a second job.
  // A DynamoDB or SQS failure throws: the function answers 500. Twilio retries a webhook
  // only as the connection overrides in its URL fragment say (`#rc=` retry count, `#rp=`
  // retry policy; by default one retry, of connection failures only), so the README has
  // the console URL end in `#rc=3&rp=ct,rt,5xx`; the redelivery then finds the claim and
  // enqueues a job that never reached the queue.
  // https://www.twilio.com/docs/usage/webhooks/webhooks-connection-overrides
  const claim = await acceptMessage(deps, job);
  if (!claim.created) deps.log.info('twilio message redelivered', { msgKey: job.msgKey, deliveries: claim.record.deliveries });
  // `<Response/>`: no reply in TwiML; the worker sends it (Twilio docs, "TwiML for Messaging").
  return twimlResponse(twiml());
}

/**
 * A message status callback. Only a failed/undelivered WhatsApp message with 63016
 * matters: the answer is kept for when the user writes again, and the re-engagement
 * template goes out (session.ts). The query (`k` = message key, `p` = part) was written
 * by the adapter and is covered by Twilio's signature.
 */
async function handleStatus(deps: TwilioMessagingDeps, req: HttpRequest, params: TwilioParams): Promise<HttpResponse> {
  const status = param(params, 'MessageStatus') || param(params, 'SmsStatus');
  const to = param(params, 'To');
  const msgKey = req.query.k ?? '';
  if (param(params, 'ErrorCode') !== WHATSAPP_SESSION_CLOSED || (status !== 'failed' && status !== 'undelivered') || !isWhatsAppAddress(to) || msgKey === '') {
    return twimlResponse(twiml());
  }
  const userId = bareNumber(to);
  const record = await deps.messages.get({ channel: 'twilio', userId, msgKey }, deps.clock.nowMs());
  if (!record) return twimlResponse(twiml());
  const session = {
    config: deps.config,
    rest: new TwilioRest(deps.config, deps.fetch),
    users: deps.users,
    log: deps.log,
    nowMs: () => deps.clock.nowMs(),
  };
  await onSessionClosed(session, userId, to, param(params, 'From'), msgKey, counter(req.query.p, 0));
  return twimlResponse(twiml());
}
