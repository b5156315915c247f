/**
 * The typed delivery note of a message record: why an answer was not (fully) delivered,
 * or what kind of record it is. Every channel's outcomes are one arm of {@link RecordNote};
 * nothing outside this module reads or writes the stored string.
 *
 * Stored as the same short strings earlier versions wrote (`fetch`, `push_failed:45015:told`,
 * `window_closed:template_sent`, …), so the records already in the table (they live 8 days)
 * read back as the same typed notes; a string this module does not know reads as `other`.
 *
 * @module
 */

/** Why an outbound send stopped (WhatsApp Cloud API outcomes, with the Graph error code). */
export type SendStop = 'token_error' | 'rate_limited' | 'transient_error' | 'undeliverable' | 'failed';

/** What happened when a WhatsApp answer met a closed 24 h window. */
export type WindowOutcome = 'template_sent' | 'no_template' | 'template_failed';

/** The note on a message record. */
export type RecordNote =
  /** Nothing to note (delivered, or still in progress). */
  | { kind: 'none' }
  /** WeChat: this record is a "reply 1" request (claimed for dedupe, never queued). */
  | { kind: 'fetch' }
  /** WeChat customer-service push refused with `code`; the answer waits for "reply 1". `told`: the user saw why. */
  | { kind: 'push_failed'; code: string; told: boolean }
  /** WeChat customer-service push used its 5 messages; the rest waits for "reply 1". */
  | { kind: 'push_quota' }
  /** The model failed: the stored answer is a short apology. */
  | { kind: 'apology' }
  /** A worker died after part of the answer was shown; the answer was closed with a note. */
  | { kind: 'interrupted' }
  /** The model's stream was cut (idle or over the time budget); the text so far went out with a note. */
  | { kind: 'cut' }
  /** The answer hit `LLM_MAX_TOKENS`; it went out with a note. */
  | { kind: 'length' }
  /** The user was over the per-user rate limit: no model call, a short note instead. */
  | { kind: 'over_limit' }
  /** Twilio WhatsApp: the 24 h session was closed (`code`, e.g. 63016). */
  | { kind: 'session_closed'; code: string }
  /** WhatsApp Cloud API: the 24 h window was closed; `code` when the template failed. */
  | { kind: 'window_closed'; outcome: WindowOutcome; code?: string }
  /** WhatsApp Cloud API: a send stopped (`code` is the Graph error code). */
  | { kind: 'send_stopped'; reason: SendStop; code: string }
  /** A stored string this version does not know (kept verbatim). */
  | { kind: 'other'; text: string };

/** The empty note. */
export const NO_NOTE: RecordNote = { kind: 'none' };

const SEND_STOPS: readonly SendStop[] = ['token_error', 'rate_limited', 'transient_error', 'undeliverable', 'failed'];
const WINDOW_OUTCOMES: readonly WindowOutcome[] = ['template_sent', 'no_template', 'template_failed'];

function isSendStop(v: string): v is SendStop {
  return SEND_STOPS.some((s) => s === v);
}

function isWindowOutcome(v: string): v is WindowOutcome {
  return WINDOW_OUTCOMES.some((s) => s === v);
}

/** The stored form of a note (the strings earlier versions wrote). */
export function formatNote(note: RecordNote): string {
  switch (note.kind) {
    case 'none':
      return '';
    case 'fetch':
    case 'push_quota':
    case 'apology':
    case 'interrupted':
    case 'cut':
    case 'length':
    case 'over_limit':
      return note.kind;
    case 'push_failed':
      return `push_failed:${note.code}${note.told ? ':told' : ''}`;
    case 'session_closed':
      return `session_closed:${note.code}`;
    case 'window_closed':
      return `window_closed:${note.outcome}${note.code !== undefined ? `:${note.code}` : ''}`;
    case 'send_stopped':
      return `${note.reason}:${note.code}`;
    case 'other':
      return note.text;
  }
}

/** Reads a stored note; tolerant of every string earlier versions wrote, and of unknown ones. */
export function parseNote(stored: string): RecordNote {
  if (stored === '') return NO_NOTE;
  const [head = '', ...rest] = stored.split(':');
  switch (head) {
    case 'fetch':
    case 'push_quota':
    case 'apology':
    case 'interrupted':
    case 'cut':
    case 'length':
    case 'over_limit':
      if (rest.length === 0) return { kind: head };
      break;
    case 'push_failed': {
      const told = rest.at(-1) === 'told';
      const codeParts = told ? rest.slice(0, -1) : rest;
      return { kind: 'push_failed', code: codeParts.join(':'), told };
    }
    case 'session_closed':
      return { kind: 'session_closed', code: rest.join(':') };
    case 'window_closed': {
      const [outcome = '', ...code] = rest;
      if (isWindowOutcome(outcome)) return code.length > 0 ? { kind: 'window_closed', outcome, code: code.join(':') } : { kind: 'window_closed', outcome };
      break;
    }
    default:
      if (isSendStop(head) && rest.length > 0) return { kind: 'send_stopped', reason: head, code: rest.join(':') };
  }
  return { kind: 'other', text: stored };
}
