/**
 * Retry timing and user-facing apologies shared by the HTTP backends.
 */
import type { CallGuard, CutReason } from './guard';
import type { LlmEvent } from './types';

/** First backoff when the server gives no hint; doubles each attempt. */
export const BASE_BACKOFF_MS = 500;
/** Upper bound of the computed backoff. */
export const MAX_BACKOFF_MS = 8_000;
/**
 * Longest server-requested wait we sit through inside one invocation. A longer `retry-after`
 * (e.g. a per-minute limit with a minute to go) is better served by giving up with a retryable
 * error so the queue redelivers later, than by burning the worker's time budget asleep.
 */
export const MAX_SERVER_WAIT_MS = 20_000;

/** A minimal header reader (fetch `Headers`, or the openai SDK's error headers). */
export interface HeaderSource {
  get(name: string): string | null;
}

/**
 * The wait a server asked for, in ms, or undefined when it gave none.
 * OpenAI sends `retry-after-ms` (milliseconds, the openai SDKs prefer it) and `retry-after`
 * (RFC 9110 §10.2.3: delay-seconds or an HTTP-date).
 */
export function retryAfterMs(headers: HeaderSource | undefined, now: number = Date.now()): number | undefined {
  if (!headers) return undefined;
  const ms = headers.get('retry-after-ms');
  if (ms !== null && ms.trim() !== '') {
    const value = Number(ms);
    if (Number.isFinite(value) && value >= 0) return value;
  }
  const raw = headers.get('retry-after');
  if (raw === null || raw.trim() === '') return undefined;
  const seconds = Number(raw);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(raw);
  if (Number.isFinite(date)) return Math.max(0, date - now);
  return undefined;
}

/** Exponential backoff for attempt 0, 1, 2…: 500, 1000, 2000… capped at {@link MAX_BACKOFF_MS}. */
export function backoffMs(attempt: number): number {
  return Math.min(MAX_BACKOFF_MS, BASE_BACKOFF_MS * 2 ** attempt);
}

/**
 * How long to wait before retry number `attempt` (0-based), or undefined when the server asks
 * for more than {@link MAX_SERVER_WAIT_MS} (give up and let the queue retry later).
 */
export function retryDelayMs(attempt: number, headers: HeaderSource | undefined): number | undefined {
  const asked = retryAfterMs(headers);
  if (asked === undefined) return backoffMs(attempt);
  return asked > MAX_SERVER_WAIT_MS ? undefined : asked;
}

/** Short apologies sent to the user when an answer fails. */
export const APOLOGY = {
  quota: 'Sorry, the assistant is over its usage quota right now. Please try again later.',
  busy: 'Sorry, the assistant is very busy right now. Please try again in a minute.',
  unavailable: 'Sorry, the assistant is temporarily unavailable. Please try again in a little while.',
  rejected: "Sorry, I couldn't process that message. Please try rephrasing it.",
  misconfigured: 'Sorry, the assistant is not available right now. The operator has been notified.',
  interrupted: 'Sorry, my answer was interrupted. Please ask again.',
  tooSlow: 'Sorry, that took too long. Please try again.',
} as const;

/** The error code a cut is reported with by calls that throw (`transcribe`). */
export const CUT_CODES: Readonly<Record<CutReason, string>> = { idle: 'idle_timeout', deadline: 'deadline' };

/** The `cut` event for a guard that cut its call, or undefined when it did not. */
export function cutEventOf(guard: CallGuard): Extract<LlmEvent, { type: 'cut' }> | undefined {
  const reason = guard.cutReason();
  if (reason === undefined) return undefined;
  // The abort reason is a DOMException (not `instanceof Error` in every realm): read its message.
  const why: unknown = guard.signal.reason;
  const reasonText = typeof why === 'object' && why !== null && 'message' in why && typeof why.message === 'string' ? why.message : reason;
  return { type: 'cut', reason, message: reasonText };
}

/** The {@link LlmCallError} a throwing call raises when its guard cut it (not retryable: the budget is spent). */
export function cutCallError(guard: CallGuard, cause: unknown): LlmCallError | undefined {
  const cut = cutEventOf(guard);
  if (!cut) return undefined;
  return new LlmCallError(errorEvent(CUT_CODES[cut.reason], cut.message, false, APOLOGY.tooSlow), { cause });
}

/** The `error` member of {@link LlmEvent}. */
export type LlmErrorEvent = Extract<LlmEvent, { type: 'error' }>;

/** Builds an `error` event. */
export function errorEvent(code: string, message: string, retryable: boolean, userMessage: string): LlmErrorEvent {
  return { type: 'error', code, message, retryable, userMessage };
}

/**
 * Thrown by non-streaming calls (`transcribe`, `forgetConversation`) with the same fields as an
 * `error` event, so callers can apologise and decide on redelivery the same way.
 */
export class LlmCallError extends Error {
  readonly code: string;
  readonly retryable: boolean;
  readonly userMessage: string;

  constructor(event: LlmErrorEvent, options?: { cause?: unknown }) {
    super(event.message, options);
    this.name = 'LlmCallError';
    this.code = event.code;
    this.retryable = event.retryable;
    this.userMessage = event.userMessage;
  }
}

/** True when `error` is the rejection of an aborted fetch / SDK call. */
export function isAbortError(error: unknown, signal: AbortSignal | undefined): boolean {
  if (signal?.aborted) return true;
  return error instanceof Error && (error.name === 'AbortError' || error.name === 'APIUserAbortError');
}

/** The message of an unknown thrown value. */
export function messageOf(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
