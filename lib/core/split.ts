/**
 * The one text splitter (pure, no I/O): cuts a long answer into pieces that each fit a
 * vendor's per-message limit and each read as a whole. Two thin APIs sit on it:
 * `splitForChannel` (./chunking.ts: WhatsApp and Twilio parts) and WeChat's `takePage`
 * (lib/channels/wechat/pages.ts: passive-reply and customer-service pages).
 *
 * How length is counted is a parameter, a {@link Measure}, because vendors count differently:
 * - WhatsApp Cloud API caps `text.body` at 4,096 characters
 *   (https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages) and Twilio
 *   caps `Body` at 1,600 (https://www.twilio.com/docs/messaging/api/message-resource): counted
 *   in UTF-16 code units ({@link UTF16}), what JavaScript and Meta's Graph API count, which
 *   never undercounts code points, so a piece within the limit here is within it for a
 *   service that counts code points too.
 * - WeChat caps a text reply at about 2,048 UTF-8 bytes (the exact figure is unverified;
 *   https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Passive_user_reply_message.html):
 *   counted in UTF-8 bytes ({@link UTF8}), a lone surrogate as 3 (encoders write U+FFFD).
 *
 * Where a piece ends (the rule, stated once). Of the text that fits the limit, the piece
 * ends at the coarsest kind of break available, and at the last break of that kind:
 * 1. paragraph: a white-space run holding two or more line feeds (a blank line);
 * 2. line: a white-space run holding one line feed;
 * 3. sentence: after `. ! ? …` followed by white space (so "3.14" and "e.g.x" stay whole),
 *    or after the CJK enders `。 ！ ？ ；`, which need no space; either may be closed by quotes
 *    or brackets (`" ' ) ] ” ’ » 」 』 ） 》 】 〕`), which stay with their sentence;
 * 4. word: any other white-space run;
 * 5. grapheme: with no break, the last grapheme-cluster boundary (a flag or a ZWJ family
 *    emoji is not torn in two; Unicode UAX #29, https://unicode.org/reports/tr29/);
 * 6. code point: when a single cluster is longer than the limit. A cut never falls
 *    between the halves of a surrogate pair (half an emoji is an invalid string).
 * A break (1-4) only counts when the text before it fills at least `minFill` of the limit
 * (or reaches the end of what fits, when a wide code point leaves that share out of reach);
 * otherwise the next, finer kind is tried. Without that, one early blank line would make a
 * tiny piece, and every extra message costs a send (about 6 s of pair rate on WhatsApp).
 * No-break spaces (U+00A0, U+2007, U+202F, U+FEFF) are not breaks: they forbid a line
 * break by definition (UAX #14 class GL, https://unicode.org/reports/tr14/), e.g. in
 * "10 000" or French "Oui !".
 *
 * A cut is decided from the text up to the limit plus one code point and nothing beyond,
 * so it comes out the same whether the rest of the text exists yet or is still streaming.
 *
 * @module
 */

/** How the length of a text is counted. */
export interface Measure {
  /** The unit, for error messages ("UTF-8 bytes"). */
  readonly unit: string;
  /** Size of one code point (a lone surrogate is passed as its own value). */
  readonly sizeOf: (codePoint: number) => number;
  /** The largest size of one code point, so the smallest usable limit. */
  readonly maxCodePointSize: number;
}

/** UTF-16 code units (`string.length`): WhatsApp and Twilio. */
export const UTF16: Measure = {
  unit: 'UTF-16 code units',
  sizeOf: (cp) => (cp > 0xffff ? 2 : 1),
  maxCodePointSize: 2,
};

/** UTF-8 bytes (`Buffer.byteLength`), a lone surrogate as 3 (U+FFFD): WeChat. */
export const UTF8: Measure = {
  unit: 'UTF-8 bytes',
  sizeOf: (cp) => (cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4),
  maxCodePointSize: 4,
};

/** Options of {@link takePiece}. */
export interface PieceOptions {
  /** How length is counted. */
  measure: Measure;
  /** The most a piece may measure; an integer ≥ `measure.maxCodePointSize`. */
  limit: number;
  /** Share of the limit (0..1) a piece must fill before a natural break may end it. */
  minFill: number;
}

/** The kind of place a piece ends at, coarsest first; `rest` when the whole rest fits. */
export type CutKind = 'rest' | 'paragraph' | 'line' | 'sentence' | 'word' | 'grapheme' | 'code point';

/** Where the piece starting at `from` ends. Positions are UTF-16 indexes into the text. */
export interface Cut {
  /** End of the piece's text; after a break, where the white space between the pieces begins. */
  end: number;
  /**
   * End of the white space after `end` that still fits within the limit (`end` itself
   * after a hard cut). A piece that keeps separators ends here; the rest of that white
   * space, if any, opens the next piece.
   */
  spaceEnd: number;
  /** Which rule chose the cut. */
  kind: CutKind;
}

/** The code point at `i` (a lone surrogate as itself) and its length in UTF-16 units. */
function codePointAt(text: string, i: number): { cp: number; units: 1 | 2 } {
  const cp = text.codePointAt(i) ?? 0;
  return { cp, units: cp > 0xffff ? 2 : 1 };
}

/**
 * Length of `text.slice(from, to)` in `measure`, without allocating.
 *
 * @example
 * ```ts
 * measureText('a中😀', UTF8);  // => 1 + 3 + 4 = 8
 * measureText('a中😀', UTF16); // => 4
 * ```
 */
export function measureText(text: string, measure: Measure, from = 0, to = text.length): number {
  let size = 0;
  for (let i = from; i < to; ) {
    const { cp, units } = codePointAt(text, i);
    size += measure.sizeOf(cp);
    i += units;
  }
  return size;
}

/** UTF-8 byte length of a string (equal to `Buffer.byteLength(s, 'utf8')`). */
export function utf8Length(s: string): number {
  return measureText(s, UTF8);
}

/** True when the code unit is white space a piece may break at (JS `\s` but the no-break spaces). */
function isBreakSpace(unit: number): boolean {
  if (unit === 0x20 || unit === 0x0a) return true;
  if (unit < 0x80) return unit >= 0x09 && unit <= 0x0d;
  // The rest of JS `\s`, without U+00A0, U+2007, U+202F and U+FEFF.
  return unit === 0x1680 || (unit >= 0x2000 && unit <= 0x200a && unit !== 0x2007) || unit === 0x2028 || unit === 0x2029 || unit === 0x205f || unit === 0x3000;
}

/** Sentence enders that need white space after them (Latin script). */
const LATIN_ENDERS = new Set(['.', '!', '?', '…']);
/** Sentence enders that need none (CJK full-width punctuation). */
const CJK_ENDERS = new Set(['。', '！', '？', '；']);
/** Closing quotes and brackets that stay with the sentence they close. */
const CLOSERS = new Set(['"', "'", ')', ']', '”', '’', '»', '」', '』', '）', '》', '】', '〕']);
/** A combining mark or joiner: a cut before it would tear a grapheme cluster. */
const EXTENDS = /^[\p{M}\u200d]/u;

/** True when `text[from..at)` ends with a sentence ender, optionally followed by closers. */
function endsSentence(text: string, from: number, at: number): boolean {
  let q = at;
  while (q > from && CLOSERS.has(text.charAt(q - 1))) q--;
  const c = text.charAt(q - 1);
  return q > from && (LATIN_ENDERS.has(c) || CJK_ENDERS.has(c));
}

/** Break kinds by rank (index = preference, 0 best). */
const BREAK_KINDS = ['paragraph', 'line', 'sentence', 'word'] as const;
type BreakKind = (typeof BREAK_KINDS)[number];

interface Found {
  end: number;
  spaceEnd: number;
}

/**
 * The preferred break in the window `text[from..windowEnd)`: the last one of the coarsest
 * kind whose `end` lies in `[minEnd, hardEnd]` (and past `from`).
 */
function findBreak(text: string, from: number, minEnd: number, hardEnd: number, windowEnd: number): { kind: BreakKind; at: Found } | undefined {
  const best = new Map<BreakKind, Found>();
  const consider = (kind: BreakKind, end: number, spaceEnd: number): void => {
    if (end > from && end >= minEnd && end <= hardEnd) best.set(kind, { end, spaceEnd: Math.min(spaceEnd, hardEnd) });
  };
  for (let i = from; i < windowEnd; ) {
    const c = text.charAt(i);
    if (isBreakSpace(text.charCodeAt(i))) {
      let j = i;
      let lineFeeds = 0;
      for (; j < windowEnd && isBreakSpace(text.charCodeAt(j)); j++) if (text.charAt(j) === '\n') lineFeeds++;
      const kind = lineFeeds >= 2 ? 'paragraph' : lineFeeds === 1 ? 'line' : endsSentence(text, from, i) ? 'sentence' : 'word';
      consider(kind, i, j);
      i = j;
    } else if (CJK_ENDERS.has(c)) {
      let j = i + 1;
      while (j < windowEnd && CJK_ENDERS.has(text.charAt(j))) j++;
      while (j < windowEnd && CLOSERS.has(text.charAt(j))) j++;
      // Followed by white space, the run above rates it (a sentence, or a line/paragraph).
      if (j < windowEnd && !isBreakSpace(text.charCodeAt(j)) && !EXTENDS.test(text.slice(j, j + 2))) consider('sentence', j, j);
      i = j;
    } else {
      i++;
    }
  }
  for (const kind of BREAK_KINDS) {
    const at = best.get(kind);
    if (at) return { kind, at };
  }
  return undefined;
}

let graphemes: Intl.Segmenter | undefined;

/**
 * The last grapheme-cluster boundary in `(from, hardEnd]`, or undefined when one cluster
 * spans the whole stretch. A boundary depends only on the text before it and the code
 * point after it (UAX #29 rules), so segmenting up to `windowEnd` suffices.
 */
function lastGraphemeBoundary(text: string, from: number, hardEnd: number, windowEnd: number): number | undefined {
  graphemes ??= new Intl.Segmenter('und', { granularity: 'grapheme' });
  let best: number | undefined;
  for (const segment of graphemes.segment(text.slice(from, windowEnd))) {
    const start = from + segment.index;
    if (start > hardEnd) break;
    if (start > from) best = start;
  }
  return best;
}

/** Throws a RangeError unless `from` is a code-point boundary of `text` and the options are usable. */
function check(text: string, from: number, opts: PieceOptions): void {
  const { measure, limit, minFill } = opts;
  if (!Number.isSafeInteger(limit) || limit < measure.maxCodePointSize) {
    throw new RangeError(`limit must be an integer ≥ ${measure.maxCodePointSize} ${measure.unit}, got ${limit}`);
  }
  if (!(minFill >= 0 && minFill <= 1)) throw new RangeError(`minFill must be within 0..1, got ${minFill}`);
  if (!Number.isSafeInteger(from) || from < 0 || from > text.length) throw new RangeError(`position ${from} is outside the text`);
  if (from > 0 && from < text.length && codePointAt(text, from - 1).units === 2) {
    throw new RangeError(`position ${from} is inside a surrogate pair`);
  }
}

/**
 * The step both splitters share: where the piece of `text` that starts at `from` ends,
 * by the rule in this module's documentation.
 *
 * @param text - the text (the whole answer, or as much of it as has streamed).
 * @param from - UTF-16 index where the piece starts; a code-point boundary.
 * @param opts - measure, limit and minimum fill.
 * @returns the cut; `kind: 'rest'` with `end === text.length` when the rest fits.
 *   Otherwise `from < end <= spaceEnd` and `text.slice(from, spaceEnd)` fits the limit.
 * @throws RangeError for a limit below one code point's size, a `minFill` outside 0..1, or
 *   a `from` outside the text or inside a surrogate pair.
 *
 * @example
 * ```ts
 * takePiece('One. Two. Three.', 0, { measure: UTF16, limit: 10, minFill: 0.5 });
 * // => { end: 9, spaceEnd: 10, kind: 'sentence' }: "One. Two." then "Three."
 * ```
 */
export function takePiece(text: string, from: number, opts: PieceOptions): Cut {
  check(text, from, opts);
  const { measure, limit } = opts;
  // The longest prefix that fits, on a code-point boundary, and where it reaches the
  // minimum fill.
  const minSize = Math.ceil(limit * opts.minFill);
  let hardEnd = from;
  let minEnd = -1;
  for (let size = 0; hardEnd < text.length; ) {
    if (minEnd < 0 && size >= minSize) minEnd = hardEnd;
    const { cp, units } = codePointAt(text, hardEnd);
    if (size + measure.sizeOf(cp) > limit) break;
    size += measure.sizeOf(cp);
    hardEnd += units;
  }
  if (hardEnd === text.length) return { end: hardEnd, spaceEnd: hardEnd, kind: 'rest' };
  // The fill is capped by what fits (a wide code point may leave the limit unreachable).
  if (minEnd < 0) minEnd = hardEnd;
  // The window: what fits plus the code point after it, which decides whether the last
  // position that fits is a break (white space follows) or a cluster boundary.
  const windowEnd = hardEnd + codePointAt(text, hardEnd).units;
  const found = findBreak(text, from, minEnd, hardEnd, windowEnd);
  if (found) return { ...found.at, kind: found.kind };
  const grapheme = lastGraphemeBoundary(text, from, hardEnd, windowEnd);
  if (grapheme !== undefined) return { end: grapheme, spaceEnd: grapheme, kind: 'grapheme' };
  return { end: hardEnd, spaceEnd: hardEnd, kind: 'code point' };
}
