/**
 * What the WhatsApp channel remembers about a user between messages (in
 * {@link UserStateStore} facts), shared by the webhook and the worker.
 *
 * Meta allows free-form messages only within 24 h of the user's last message; after
 * that a send fails with 131047, synchronously or (often) later as a `failed` status
 * webhook (https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/).
 * Both paths record when the window was found closed (the model is
 * lib/core/service-window.ts), so the next answer for a message older than that goes
 * straight to the re-engagement template instead of failing again.
 *
 * @module
 */
import { windowClosedFact, type ServiceWindow } from '../../core/service-window';

/** Fact: epoch ms when Meta reported the 24 h window closed (131047). */
export const WINDOW_CLOSED_AT_FACT = 'waWindowClosedAtMs';
/** Fact: how we learnt it (`status:<wamid>` or `send:<wamid of the user's message>`). */
export const WINDOW_CLOSED_BY_FACT = 'waWindowClosedBy';

/**
 * Meta's customer-service window as this channel records it. Meta's status time has whole
 * seconds only: a closing reported within the second the message arrived counts as after it
 * (a template goes out instead of text that would fail anyway).
 */
export const WHATSAPP_WINDOW: ServiceWindow = { closedAtFact: WINDOW_CLOSED_AT_FACT, resolutionMs: 1000 };

/** The facts that record a closed window. */
export function windowClosedFacts(nowMs: number, by: string): Record<string, string> {
  return { ...windowClosedFact(WHATSAPP_WINDOW, nowMs), [WINDOW_CLOSED_BY_FACT]: by };
}
