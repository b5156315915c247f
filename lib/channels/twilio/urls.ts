/**
 * The public URLs the gateway hands Twilio (TwiML actions and redirects, status
 * callbacks). Twilio signs every request to them with the URL as written here, query
 * included, so they are built from one base only (`PUBLIC_BASE_URL`, or the function URL a
 * call came through: `calledBaseUrl` in signature.ts) and carry nothing but
 * URL-safe values (digits and SIDs): the signed URL and the one we rebuild to verify
 * it are then the same characters.
 *
 * @module
 */

/** Path of the messaging webhook. */
export const MESSAGING_PATH = '/twilio/messaging';
/** Path of WhatsApp status callbacks (63016 arrives here). */
export const STATUS_PATH = '/twilio/messaging/status';
/** Path of the voice webhook (incoming call). */
export const VOICE_PATH = '/twilio/voice';
/** Path of `<Gather>` actions: what the caller said (or silence). */
export const VOICE_GATHER_PATH = '/twilio/voice/gather';
/** Path of the answer poll: redirected to while the worker answers. */
export const VOICE_POLL_PATH = '/twilio/voice/poll';

function base(publicBaseUrl: string): string {
  return publicBaseUrl.replace(/\/+$/, '');
}

/** Status callback of part `part` of the answer to `msgKey`. */
export function statusCallbackUrl(publicBaseUrl: string, msgKey: string, part: number): string {
  return `${base(publicBaseUrl)}${STATUS_PATH}?k=${encodeURIComponent(msgKey)}&p=${part}`;
}

/** `&v=1` on the voice URLs of a call whose caller ID Twilio verified (signed, like the counters). */
function verifiedFlag(verified: boolean): string {
  return verified ? '&v=1' : '';
}

/**
 * `<Gather>` action for turn `turn` of a call, after `silences` silent gathers in a row;
 * `verified` carries the caller-ID verification of the call's first webhook along.
 */
export function gatherUrl(publicBaseUrl: string, turn: number, silences: number, verified = false): string {
  return `${base(publicBaseUrl)}${VOICE_GATHER_PATH}?t=${turn}&s=${silences}${verifiedFlag(verified)}`;
}

/** Poll for the answer of turn `turn`, the `poll`-th redirect so far (`verified` as for {@link gatherUrl}). */
export function pollUrl(publicBaseUrl: string, turn: number, poll: number, verified = false): string {
  return `${base(publicBaseUrl)}${VOICE_POLL_PATH}?t=${turn}&r=${poll}${verifiedFlag(verified)}`;
}

/** A small non-negative integer from a query value; `fallback` when absent or malformed. */
export function counter(value: string | undefined, fallback: number, max = 1000): number {
  if (value === undefined || !/^\d{1,6}$/.test(value)) return fallback;
  return Math.min(Number(value), max);
}
