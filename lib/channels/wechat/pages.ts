/**
 * Paging of long answers for WeChat passive replies and customer-service messages (pure,
 * no I/O), on the one splitter in lib/core/split.ts: pages are measured in UTF-8 bytes and
 * cut by its rule (paragraph, line, sentence, word, grapheme, never inside a code point).
 *
 * Vendor rule (https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Passive_user_reply_message.html):
 * a text message holds about 2,047-2,048 UTF-8 bytes [unverified]; split at about 2,000
 * bytes and never inside a multi-byte character.
 *
 * Unlike a channel's parts, pages are taken one at a time from a text that may still be
 * growing: positions (`fromChar`, `nextChar`) are UTF-16 indexes into the JavaScript
 * string, so a caller can store `nextChar` and resume later. Concatenating the pages gives
 * back the text exactly: separators stay at the end of the page they follow, as far as
 * they fit.
 *
 * @module
 */
import { takePiece, UTF8 } from '../../core/split';

export { utf8Length } from '../../core/split';

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
export const MIN_PAGE_BYTES = UTF8.maxCodePointSize;

/**
 * A page with a break in its last 40% reads better than a full one cut mid-word, and the
 * answer is shown one page per "reply 1" (each a round trip for the user), so pages fill
 * at least 60%: fuller than a channel's parts.
 */
const DEFAULT_BREAK_WINDOW = 0.4;

/**
 * Takes the next page of `text` starting at `fromChar`.
 *
 * The page is the longest prefix of `text.slice(fromChar)` whose UTF-8 length is at most
 * `maxBytes`, shortened to end at the best natural break found within the last
 * `breakWindow` (default 40%) of the page size, by preference: a paragraph break, a line
 * end, a sentence end, a space (the rule in lib/core/split.ts). White space following the
 * break is kept on this page as far as it fits. Without any break the cut falls on a
 * grapheme boundary when possible, else on a code-point boundary; a surrogate pair is
 * never split. The cut depends only on the text up to the page size, so a page taken
 * from a still-growing text is the page the complete text gives.
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
  const breakWindow = opts.breakWindow ?? DEFAULT_BREAK_WINDOW;
  if (!(breakWindow >= 0 && breakWindow <= 1)) throw new RangeError(`breakWindow must be within 0..1, got ${breakWindow}`);
  const cut = takePiece(text, fromChar, { measure: UTF8, limit: maxBytes, minFill: 1 - breakWindow });
  return { page: text.slice(fromChar, cut.spaceEnd), nextChar: cut.spaceEnd, last: cut.kind === 'rest' && opts.final };
}
