/**
 * Splitting a long answer into the messages of an outbound channel (pure, no I/O).
 *
 * Channels cap one message's text: WhatsApp Cloud API at 4,096 characters
 * (`text.body`, https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages),
 * Twilio at 1,600 (`Body`, https://www.twilio.com/docs/messaging/api/message-resource). An answer
 * longer than that goes out as several messages, and each should read as a whole:
 * cut between paragraphs if possible, else between lines, sentences, words, and only as
 * a last resort inside a word. A cut never falls inside a surrogate pair (half an emoji
 * is an invalid string and Meta rejects it) and, when avoidable, never inside a grapheme
 * cluster (a flag or a ZWJ family emoji would be torn in two).
 *
 * Length is counted in UTF-16 code units (`string.length`). That is what JavaScript and
 * Meta's Graph API (a UTF-16 platform) count; it never undercounts code points, so a part
 * within the limit here is within the limit for a service that counts code points too.
 *
 * @module
 */

/** WhatsApp Cloud API: `text.body` holds at most 4,096 characters (https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages). */
export const WHATSAPP_MAX_CHARS = 4096;
/** Twilio Programmable Messaging: `Body` holds at most 1,600 characters (https://www.twilio.com/docs/messaging/api/message-resource). */
export const TWILIO_MAX_CHARS = 1600;

/**
 * A boundary is only used when the part before it fills at least this share of the
 * limit; otherwise the next, finer kind of boundary is tried. Without it one early blank
 * line would produce a tiny first message, and every extra message costs a pair-rate
 * slot (about 6 s on WhatsApp).
 */
const MIN_FILL = 0.5;

/** A place to cut: the part ends at `end`, the next part starts at `next` (whitespace between is dropped). */
interface Cut {
  end: number;
  next: number;
}

/**
 * Boundary finders from coarsest to finest. Each regex is run over the window (limit + 1
 * characters, so look-aheads see what follows the limit) and yields candidate cuts.
 */
const BOUNDARIES: readonly ((window: string) => Iterable<Cut>)[] = [
  // Paragraphs: a blank line (possibly with spaces on it).
  (w) => cutsAt(w, /\n[^\S\n]*\n\s*/g, 'before'),
  // Lines.
  (w) => cutsAt(w, /\n\s*/g, 'before'),
  // Sentences: Latin enders followed by white space (so "3.14" and "e.g.x" stay whole),
  // optionally closed by quotes or brackets; CJK enders need no space after them.
  (w) => cutsAt(w, /[.!?…]+["'”’»)\]]*(?=\s)\s*|[。！？；]+[」』”’）]*\s*/g, 'after'),
  // Words.
  (w) => cutsAt(w, /\s+/g, 'before'),
];

/** Turns regex matches into cuts: `before` cuts where the match starts, `after` where the punctuation ends. */
function* cutsAt(window: string, re: RegExp, side: 'before' | 'after'): Iterable<Cut> {
  for (const m of window.matchAll(re)) {
    const start = m.index;
    const matched = m[0];
    if (side === 'before') {
      yield { end: start, next: start + matched.length };
    } else {
      const punctuation = matched.trimEnd();
      yield { end: start + punctuation.length, next: start + matched.length };
    }
  }
}

/** True when `code` is the first (high) half of a surrogate pair. */
function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

let graphemes: Intl.Segmenter | undefined;

/**
 * The last safe hard cut at or before `limit`: a grapheme boundary if one exists past
 * the minimum fill, else at least a code-point boundary (never between the halves of a
 * surrogate pair).
 */
function hardCut(text: string, limit: number, minEnd: number): number {
  graphemes ??= new Intl.Segmenter('und', { granularity: 'grapheme' });
  let best = 0;
  // Only the stretch near the limit matters; segmenting the whole answer would be wasteful.
  const from = Math.max(0, minEnd - 64);
  for (const seg of graphemes.segment(text.slice(from, limit + 1))) {
    const boundary = from + seg.index;
    if (boundary > limit) break;
    if (boundary > best) best = boundary;
  }
  if (best >= minEnd && best > 0) return best;
  // A single grapheme longer than the budget (e.g. a long run of combining marks):
  // fall back to code points.
  return isHighSurrogate(text.charCodeAt(limit - 1)) ? limit - 1 : limit;
}

/** Finds where to end the first part of `text` (which is longer than `limit`). */
function findCut(text: string, limit: number): Cut {
  const window = text.slice(0, limit + 1);
  const minEnd = Math.max(1, Math.floor(limit * MIN_FILL));
  for (const finder of BOUNDARIES) {
    let best: Cut | undefined;
    for (const cut of finder(window)) {
      if (cut.end <= limit && cut.end >= minEnd) best = cut;
    }
    if (best) return best;
  }
  const end = hardCut(text, limit, minEnd);
  return { end, next: end };
}

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
  const parts: string[] = [];
  let rest = text.trim();
  while (rest.length > maxChars) {
    const cut = findCut(rest, maxChars);
    const part = rest.slice(0, cut.end).trimEnd();
    if (part !== '') parts.push(part);
    rest = rest.slice(cut.next).trimStart();
  }
  if (rest !== '') parts.push(rest);
  return parts;
}
