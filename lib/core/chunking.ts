/**
 * Splitting a long answer into the messages of an outbound channel (pure, no I/O), on the
 * one splitter in ./split.ts: parts are measured in UTF-16 code units and cut by its rule
 * (paragraph, line, sentence, word, grapheme, never inside a surrogate pair).
 *
 * @module
 */
import { takePiece, UTF16 } from './split';

/** WhatsApp Cloud API: `text.body` holds at most 4,096 characters (https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages). */
export const WHATSAPP_MAX_CHARS = 4096;
/** Twilio Programmable Messaging: `Body` holds at most 1,600 characters (https://www.twilio.com/docs/messaging/api/message-resource). */
export const TWILIO_MAX_CHARS = 1600;

/**
 * A break is only used when the part before it fills at least this share of the limit
 * (see ./split.ts). Every extra message costs a pair-rate slot (about 6 s on WhatsApp),
 * so parts are allowed to be shorter than on WeChat's pages only down to half.
 */
const MIN_FILL = 0.5;

/** The white space at the start of a part, which is dropped (what `trimStart` drops). */
const LEADING_SPACE = /\s*/y;

/**
 * Splits `text` into parts of at most `maxChars` UTF-16 code units, cutting on the
 * coarsest boundary available: paragraph, then line, then sentence, then word, then
 * grapheme (and never inside a surrogate pair).
 *
 * Whitespace at a cut is dropped, as is leading and trailing whitespace of the whole
 * text; nothing else is added or removed, so the parts joined back with the dropped
 * whitespace give the original text. The result is deterministic: a resumed delivery
 * recomputes exactly the same parts and can skip the ones already sent.
 *
 * @param text - the answer.
 * @param maxChars - the channel's per-message limit, at least 2 (room for one surrogate pair).
 * @returns the parts in order; `[]` for an empty or white-space-only text.
 * @throws RangeError when `maxChars` is below 2 or not an integer.
 *
 * @example
 * ```ts
 * splitForChannel(answer, WHATSAPP_MAX_CHARS); // parts of ≤ 4,096 characters
 * splitForChannel('One. Two. Three.', 10);       // ['One. Two.', 'Three.']
 * ```
 */
export function splitForChannel(text: string, maxChars: number): string[] {
  if (!Number.isInteger(maxChars) || maxChars < 2) throw new RangeError(`maxChars must be an integer ≥ 2, got ${maxChars}`);
  const body = text.trim();
  const parts: string[] = [];
  for (let from = 0; from < body.length; ) {
    const cut = takePiece(body, from, { measure: UTF16, limit: maxChars, minFill: MIN_FILL });
    // A hard cut may still end in white space the rule does not break at (a no-break space).
    const part = body.slice(from, cut.end).trimEnd();
    if (part !== '') parts.push(part);
    LEADING_SPACE.lastIndex = cut.end;
    LEADING_SPACE.exec(body);
    from = LEADING_SPACE.lastIndex;
  }
  return parts;
}
