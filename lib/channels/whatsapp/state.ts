/**
 * What the WhatsApp channel remembers about a user between messages (in
 * {@link UserStateStore} facts), shared by the webhook and the worker.
 *
 * Meta allows free-form messages only within 24 h of the user's last message; after
 * that a send fails with 131047, synchronously or (often) later as a `failed` status
 * webhook (https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/).
 * Both paths record when the window was found closed, so the
 * next answer for a message older than that goes straight to the re-engagement
 * template instead of failing again.
 *
 * @module
 */
import type { UserFacts } from '../../store/user-state';

/** Fact: epoch ms when Meta reported the 24 h window closed (131047). */
export const WINDOW_CLOSED_AT_FACT = 'waWindowClosedAtMs';
/** Fact: how we learnt it (`status:<wamid>` or `send:<wamid of the user's message>`). */
export const WINDOW_CLOSED_BY_FACT = 'waWindowClosedBy';

/** Meta's customer-service window: free-form messages only within 24 h of the user's last message. */
export const SERVICE_WINDOW_MS = 24 * 60 * 60 * 1000;

/** The facts that record a closed window. */
export function windowClosedFacts(nowMs: number, by: string): Record<string, string> {
  return { [WINDOW_CLOSED_AT_FACT]: String(nowMs), [WINDOW_CLOSED_BY_FACT]: by };
}

/**
 * Whether a free-form answer to a message that arrived at `arrivedAtMs` would fail with
 * 131047: the message is more than 24 h old, or Meta reported the window closed after it
 * arrived (a newer user message reopens the window, so an older report does not count).
 */
export function isWindowClosed(facts: UserFacts, arrivedAtMs: number, nowMs: number): boolean {
  if (nowMs - arrivedAtMs >= SERVICE_WINDOW_MS) return true;
  const raw = facts[WINDOW_CLOSED_AT_FACT];
  if (raw === undefined || !/^\d+$/.test(raw)) return false;
  // Meta's status time has whole seconds only: within the same second, count it as closed
  // (a template goes out instead of text that would fail anyway).
  return Math.floor(Number(raw) / 1000) >= Math.floor(arrivedAtMs / 1000);
}
