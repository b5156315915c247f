/**
 * Paging of long answers for WeChat passive replies (pure, no I/O).
 *
 * Vendor rule (https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Passive_user_reply_message.html):
 * a text message holds about
 * 2,047-2,048 UTF-8 bytes [unverified]; split at about 2,000 bytes and never inside a
 * multi-byte character. Pages here are measured in UTF-8 bytes, cut on code-point
 * boundaries (a surrogate pair is never split), and preferably on a paragraph, line,
 * sentence or word boundary near the end of the window.
 *
 * Positions (`fromChar`, `nextChar`) are UTF-16 indexes into the JavaScript string, so
 * a caller can store `nextChar` and resume later, even while the text still grows.
 * Concatenating the pages gives back the text exactly: separators stay at the end of
 * the page they follow.
 *
 * @module
 */

/** Options for {@link takePage}. */
export interface TakePageOptions {
  /**
   * `true` when the text is complete; `false` while the answer is still streaming.
   * A remaining text that fits in one page is returned whole either way; `final`
   * only decides whether that page is reported as the `last`.
   */
  final: boolean;
  /**
   * Fraction of the page, at its end, in which a natural break is looked for before
   * falling back to a hard cut. Default 0.4 (breaks in the last ~40%).
   */
  breakWindow?: number;
}

/** Result of {@link takePage}. */
export interface TakenPage {
  /** The page text; `''` only when nothing is left after `fromChar`. */
  page: string;
  /** UTF-16 index where the next page starts. */
  nextChar: number;
  /** `true` when `final` was set and this page reaches the end of the text. */
  last: boolean;
}

/** Smallest accepted page size: one code point takes up to 4 UTF-8 bytes. */
export const MIN_PAGE_BYTES = 4;

function isHighSurrogate(unit: number): boolean {
  return unit >= 0xd800 && unit <= 0xdbff;
}

function isLowSurrogate(unit: number): boolean {
  return unit >= 0xdc00 && unit <= 0xdfff;
}

/**
 * Size of the code point at `i`: `[UTF-16 units, UTF-8 bytes]`.
 * A lone surrogate counts as 3 bytes, as encoders replace it with U+FFFD.
 */
function codePointAt(text: string, i: number): readonly [units: number, bytes: number] {
  const unit = text.charCodeAt(i);
  if (unit < 0x80) return [1, 1];
  if (unit < 0x800) return [1, 2];
  if (isHighSurrogate(unit) && i + 1 < text.length && isLowSurrogate(text.charCodeAt(i + 1))) {
    return [2, 4];
  }
  return [1, 3];
}

/**
 * UTF-8 byte length of a string, without allocating (equal to
 * `Buffer.byteLength(s, 'utf8')`, lone surrogates counted as U+FFFD).
 *
 * @example
 * ```ts
 * utf8Length('a中😀'); // => 1 + 3 + 4 = 8
 * ```
 */
export function utf8Length(s: string): number {
  let bytes = 0;
  for (let i = 0; i < s.length; ) {
    const [units, b] = codePointAt(s, i);
    bytes += b;
    i += units;
  }
  return bytes;
}

/** Horizontal whitespace that ends a word (ASCII space, tab, ideographic space). */
const SPACE = new Set([' ', '\t', '\u3000']);
/** Any whitespace a page may end with. */
const WHITESPACE = new Set([' ', '\t', '\r', '\n', '\u3000']);
/** Sentence ends that need a following space (Latin script). */
const LATIN_SENTENCE_END = new Set(['.', '!', '?']);
/** Sentence ends that need no following space (CJK full-width punctuation). */
const CJK_SENTENCE_END = new Set(['。', '！', '？']);
/** Closing quotes and brackets that stay with the sentence they close. */
const CLOSERS = new Set(['"', "'", ')', ']', '”', '’', '」', '』', '）', '》', '】', '〕']);

/** Position just after a blank line (`\n`, optional spaces or `\r`, `\n`). */
function isParagraphBreak(text: string, p: number, from: number): boolean {
  if (text[p - 1] !== '\n') return false;
  for (let k = p - 2; k >= from; k--) {
    const c = text[k];
    if (c === '\n') return true;
    if (c !== ' ' && c !== '\t' && c !== '\r') return false;
  }
  return false;
}

/** Position just after a line end. */
function isLineBreak(text: string, p: number): boolean {
  return text[p - 1] === '\n';
}

/**
 * Position just after a sentence end: `. ! ?` followed by whitespace or the end of
 * the text, or `。！？` (no space needed in CJK text), each with optional closers.
 */
function isSentenceEnd(text: string, p: number, from: number): boolean {
  let q = p;
  while (q - 1 > from && CLOSERS.has(text[q - 1] ?? '')) q--;
  const c = text[q - 1] ?? '';
  if (CJK_SENTENCE_END.has(c)) return true;
  if (!LATIN_SENTENCE_END.has(c)) return false;
  return p >= text.length || WHITESPACE.has(text[p] ?? '');
}

/** Position just after a space. */
function isSpaceBreak(text: string, p: number): boolean {
  return SPACE.has(text[p - 1] ?? '');
}

/** Break kinds in order of preference. */
const BREAK_RULES: readonly ((text: string, p: number, from: number) => boolean)[] = [
  isParagraphBreak,
  isLineBreak,
  isSentenceEnd,
  isSpaceBreak,
];

/** Grapheme segmenter for the hard-cut fallback (locale does not affect graphemes). */
const graphemes = new Intl.Segmenter('en', { granularity: 'grapheme' });

/**
 * The last grapheme-cluster boundary in `(from, hardEnd]`, so a hard cut does not
 * separate an emoji from its modifier / ZWJ sequence or a letter from its combining
 * mark; `hardEnd` (a code-point boundary) when the cluster alone exceeds the page.
 */
function lastGraphemeBoundary(text: string, from: number, hardEnd: number): number {
  const lookahead = text.slice(from, Math.min(text.length, hardEnd + 32));
  let best = -1;
  for (const segment of graphemes.segment(lookahead)) {
    const start = from + segment.index;
    if (start > hardEnd) break;
    if (start > from) best = start;
  }
  return best > from ? best : hardEnd;
}

/**
 * Takes the next page of `text` starting at `fromChar`.
 *
 * The page is the longest prefix of `text.slice(fromChar)` whose UTF-8 length is at
 * most `maxBytes`, shortened to end at the best natural break found within the last
 * `breakWindow` (default 40%) of that prefix, by preference: a paragraph break, a line
 * end, a sentence end (`. ! ?` + space, or `。！？`), a space. Whitespace following the
 * break is kept on this page when it fits. Without any break the cut falls on a
 * grapheme boundary when possible, else on a code-point boundary; a surrogate pair is
 * never split.
 *
 * When the rest fits in one page it is returned whole, even if `final` is `false`
 * (the caller decides whether to send a page that may still grow).
 *
 * Invariants: pages are non-empty while text remains; `utf8Length(page) <= maxBytes`;
 * concatenating successive pages reproduces the text exactly.
 *
 * @param text - the whole answer so far.
 * @param fromChar - UTF-16 index to start from (a previous `nextChar`).
 * @param maxBytes - page size in UTF-8 bytes, at least {@link MIN_PAGE_BYTES}.
 * @param opts - `final` (text complete?) and optional `breakWindow`.
 * @throws `RangeError` for a bad `fromChar` (out of range or inside a surrogate pair),
 *   `maxBytes` or `breakWindow`.
 *
 * @example
 * ```ts
 * let at = 0;
 * const pages: string[] = [];
 * while (at < answer.length) {
 *   const { page, nextChar } = takePage(answer, at, 2000, { final: true });
 *   pages.push(page);
 *   at = nextChar;
 * }
 * ```
 */
export function takePage(text: string, fromChar: number, maxBytes: number, opts: TakePageOptions): TakenPage {
  if (!Number.isSafeInteger(maxBytes) || maxBytes < MIN_PAGE_BYTES) {
    throw new RangeError(`maxBytes must be an integer >= ${MIN_PAGE_BYTES}`);
  }
  if (!Number.isSafeInteger(fromChar) || fromChar < 0 || fromChar > text.length) {
    throw new RangeError('fromChar is outside the text');
  }
  if (
    fromChar > 0 &&
    isHighSurrogate(text.charCodeAt(fromChar - 1)) &&
    isLowSurrogate(text.charCodeAt(fromChar))
  ) {
    throw new RangeError('fromChar is inside a surrogate pair');
  }
  const breakWindow = opts.breakWindow ?? 0.4;
  if (!(breakWindow >= 0 && breakWindow <= 1)) {
    throw new RangeError('breakWindow must be within 0..1');
  }

  // Longest prefix that fits, on a code-point boundary.
  let hardEnd = fromChar;
  let hardBytes = 0;
  while (hardEnd < text.length) {
    const [units, bytes] = codePointAt(text, hardEnd);
    if (hardBytes + bytes > maxBytes) break;
    hardBytes += bytes;
    hardEnd += units;
  }
  if (hardEnd === text.length) {
    return { page: text.slice(fromChar), nextChar: hardEnd, last: opts.final };
  }

  // First position of the break window, in UTF-16 units.
  const minBytes = Math.ceil(hardBytes * (1 - breakWindow));
  let minIdx = fromChar;
  for (let bytes = 0; bytes < minBytes && minIdx < hardEnd; ) {
    const [units, b] = codePointAt(text, minIdx);
    bytes += b;
    minIdx += units;
  }
  minIdx = Math.max(minIdx, fromChar + 1);

  let cut = -1;
  for (const rule of BREAK_RULES) {
    for (let p = hardEnd; p >= minIdx; p--) {
      if (rule(text, p, fromChar)) {
        cut = p;
        break;
      }
    }
    if (cut !== -1) break;
  }

  if (cut === -1) {
    cut = lastGraphemeBoundary(text, fromChar, hardEnd);
  } else {
    // Keep the whitespace after the break on this page while it fits.
    let bytes = utf8Length(text.slice(fromChar, cut));
    while (cut < hardEnd && WHITESPACE.has(text[cut] ?? '')) {
      const [, b] = codePointAt(text, cut);
      if (bytes + b > maxBytes) break;
      bytes += b;
      cut += 1;
    }
  }
  return { page: text.slice(fromChar, cut), nextChar: cut, last: false };
}
