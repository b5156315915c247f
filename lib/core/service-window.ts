/**
 * A vendor's customer-service window, one model for every channel that has one.
 *
 * WhatsApp allows free-form messages only within 24 h of the user's last message, both on
 * the Cloud API (error 131047, https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/)
 * and through Twilio (error 63016, https://www.twilio.com/docs/api/errors/63016). A send
 * outside it fails, synchronously or later on a status report. A channel records when it
 * found the window closed in a user fact, so that an answer to a message older than that
 * goes straight to the channel's fallback instead of failing again; a newer message from
 * the user reopens the window, so an older finding does not count against it.
 *
 * @module
 */
import type { UserFacts } from '../store/user-state';

/** The window: free-form messages only within 24 h of the user's last message. */
export const SERVICE_WINDOW_MS = 24 * 60 * 60 * 1000;

/** Where a channel records that the window was found closed, and how precise that record is. */
export interface ServiceWindow {
  /** The user fact holding the epoch ms when the window was found closed. */
  closedAtFact: string;
  /**
   * The resolution of that time in ms: 1000 when the vendor reports whole seconds (a finding
   * within the second the message arrived counts as after it), 1 for the gateway's own clock.
   */
  resolutionMs: number;
}

/** The fact that records the window found closed at `atMs`. */
export function windowClosedFact(window: ServiceWindow, atMs: number): Record<string, string> {
  return { [window.closedAtFact]: String(atMs) };
}

/**
 * Whether a free-form answer to a message that arrived at `arrivedAtMs` would fall outside
 * the window: the message is 24 h old, or the window was found closed after it arrived.
 */
export function isWindowClosed(window: ServiceWindow, facts: UserFacts, arrivedAtMs: number, nowMs: number): boolean {
  if (nowMs - arrivedAtMs >= SERVICE_WINDOW_MS) return true;
  const raw = facts[window.closedAtFact];
  if (raw === undefined || !/^\d+$/.test(raw)) return false;
  return Math.floor(Number(raw) / window.resolutionMs) >= Math.floor(arrivedAtMs / window.resolutionMs);
}
