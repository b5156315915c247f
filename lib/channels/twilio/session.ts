/**
 * WhatsApp's 24-hour session through Twilio (error 63016), handled like Meta's 131047.
 *
 * Rule (Twilio docs, error 63016, https://www.twilio.com/docs/api/errors/63016): outside 24 hours since
 * the user's last message only a template (`ContentSid`) may be sent. Twilio reports
 * 63016 either on the send itself or, usually, later on the message's status callback.
 * Either way:
 * 1. the answer is remembered as undelivered, from the first part that failed
 *    (a per-user fact `undelivered:{msgKey}` = part index, in lib/store/user-state);
 * 2. the re-engagement template (`TWILIO_REENGAGE_CONTENT_SID`) is sent once per closed
 *    window, if configured, inviting the user to write again;
 * 3. when the user next writes on WhatsApp (which reopens the window), the undelivered
 *    answers go out first, oldest first, then the new answer. Nothing is lost.
 * An answer to a message that arrived before the window was found closed (or 24 h ago)
 * is not even tried: it goes straight to step 1 (`isWindowClosed` in lib/core/service-window.ts).
 *
 * @module
 */
import type { TwilioConfig } from '../../config';
import { windowClosedFact, type ServiceWindow } from '../../core/service-window';
import type { Log } from '../../types';
import type { UserStateStore } from '../../store/user-state';
import { WHATSAPP_PREFIX, isWhatsAppAddress } from './inbound';
import type { TwilioRest } from './rest';

/** Fact: when the session was last seen closed (epoch ms). */
export const FACT_CLOSED_AT = 'twilioWaClosedAtMs';
/** Fact: when the re-engagement template was sent for the current closed window (epoch ms). */
export const FACT_REENGAGED_AT = 'twilioWaReengagedAtMs';
/** Prefix of the facts naming undelivered answers: `undelivered:{msgKey}` = first part to send. */
export const FACT_UNDELIVERED_PREFIX = 'undelivered:';

/** WhatsApp's customer-service window as this channel records it: found closed by the gateway's own clock (ms). */
export const TWILIO_WHATSAPP_WINDOW: ServiceWindow = { closedAtFact: FACT_CLOSED_AT, resolutionMs: 1 };

/** An answer waiting for the session to reopen. */
export interface Undelivered {
  msgKey: string;
  fromPart: number;
}

/** What the session handling needs. */
export interface SessionDeps {
  config: TwilioConfig;
  rest: TwilioRest;
  users: UserStateStore;
  log: Log;
  nowMs(): number;
}

/** The WhatsApp sender for replies: `TWILIO_WHATSAPP_FROM` (prefixed if needed), else the number the user wrote to. */
export function whatsappSender(cfg: TwilioConfig, inboundTo: string): string {
  if (cfg.whatsappFrom !== '') return isWhatsAppAddress(cfg.whatsappFrom) ? cfg.whatsappFrom : `${WHATSAPP_PREFIX}${cfg.whatsappFrom}`;
  return inboundTo;
}

/** Undelivered answers of a user, from their facts. */
export function undeliveredOf(facts: Readonly<Record<string, string>>): Undelivered[] {
  const out: Undelivered[] = [];
  for (const [name, value] of Object.entries(facts)) {
    if (!name.startsWith(FACT_UNDELIVERED_PREFIX)) continue;
    const fromPart = Number.parseInt(value, 10);
    out.push({ msgKey: name.slice(FACT_UNDELIVERED_PREFIX.length), fromPart: Number.isFinite(fromPart) && fromPart >= 0 ? fromPart : 0 });
  }
  return out;
}

/**
 * Records that `msgKey` could not be delivered from part `fromPart` on because the
 * session is closed, and sends the re-engagement template once per closed window.
 * Never throws for a failed template send (it is logged): the answer is safe either way.
 *
 * @param userId - the bare number.
 * @param to - the WhatsApp address (`whatsapp:+…`).
 * @param sender - the WhatsApp sender (see {@link whatsappSender}).
 */
export async function onSessionClosed(deps: SessionDeps, userId: string, to: string, sender: string, msgKey: string, fromPart: number): Promise<void> {
  const facts = await deps.users.get('twilio', userId, deps.nowMs());
  const seen = facts[`${FACT_UNDELIVERED_PREFIX}${msgKey}`];
  // Several parts may fail (each has its own status callback): resume from the earliest.
  const earliest = seen === undefined ? fromPart : Math.min(fromPart, Number.parseInt(seen, 10) || 0);
  const reengage = deps.config.reengageContentSid !== '' && facts[FACT_REENGAGED_AT] === undefined;
  await deps.users.set(
    'twilio',
    userId,
    {
      ...windowClosedFact(TWILIO_WHATSAPP_WINDOW, deps.nowMs()),
      [`${FACT_UNDELIVERED_PREFIX}${msgKey}`]: String(earliest),
      ...(reengage ? { [FACT_REENGAGED_AT]: String(deps.nowMs()) } : {}),
    },
    deps.nowMs(),
  );
  deps.log.info('whatsapp session closed (63016): answer kept for later', { msgKey, fromPart: earliest, reengage });
  if (!reengage) return;
  try {
    await deps.rest.sendMessage({ to, sender: { from: sender }, content: { contentSid: deps.config.reengageContentSid } });
  } catch (err) {
    deps.log.warn('re-engagement template failed', { error: err instanceof Error ? err.message : String(err) });
  }
}

/** Forgets the closed window and the given undelivered answers (the user wrote again on WhatsApp). */
export async function clearSessionFacts(deps: Pick<SessionDeps, 'users' | 'nowMs'>, userId: string, msgKeys: readonly string[]): Promise<void> {
  const changes: Record<string, string | undefined> = { [FACT_CLOSED_AT]: undefined, [FACT_REENGAGED_AT]: undefined };
  for (const key of msgKeys) changes[`${FACT_UNDELIVERED_PREFIX}${key}`] = undefined;
  await deps.users.set('twilio', userId, changes, deps.nowMs());
}
