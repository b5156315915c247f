import { measureText, takePiece, utf8Length, UTF16, UTF8 } from '../../lib/core/split';
import type { Cut, Measure, PieceOptions } from '../../lib/core/split';
import { richText, mixedText } from '../support/random-text';

/** Independent oracles for the two measures. */
const sizeIn = (measure: Measure, s: string): number => (measure === UTF8 ? Buffer.byteLength(s, 'utf8') : s.length);

const isHigh = (unit: number): boolean => unit >= 0xd800 && unit <= 0xdbff;
const isLow = (unit: number): boolean => unit >= 0xdc00 && unit <= 0xdfff;
/** True when a cut at `at` falls between the halves of a surrogate pair. */
const splitsPair = (text: string, at: number): boolean => at > 0 && at < text.length && isHigh(text.charCodeAt(at - 1)) && isLow(text.charCodeAt(at));

const graphemes = new Intl.Segmenter('und', { granularity: 'grapheme' });
function graphemeBoundaries(text: string): Set<number> {
  const out = new Set<number>([text.length]);
  for (const s of graphemes.segment(text)) out.add(s.index);
  return out;
}

const opts = (measure: Measure, limit: number, minFill = 0.5): PieceOptions => ({ measure, limit, minFill });
const both = [
  ['UTF-16', UTF16],
  ['UTF-8', UTF8],
] as const;

describe('measureText', () => {
  it('counts UTF-16 code units and UTF-8 bytes', () => {
    expect(measureText('a中😀', UTF16)).toBe(4);
    expect(measureText('a中😀', UTF8)).toBe(8);
    expect(utf8Length('a中😀')).toBe(8);
  });

  it('measures a slice without copying it', () => {
    expect(measureText('a中😀b', UTF8, 1, 4)).toBe(7);
    expect(measureText('a中😀b', UTF16, 2)).toBe(3);
  });

  it.each([1, 2, 3, 4, 5])('equals Buffer.byteLength and .length on rich text with lone surrogates (seed %i)', (seed) => {
    const text = richText(3000, seed);
    expect(measureText(text, UTF8)).toBe(Buffer.byteLength(text, 'utf8'));
    expect(measureText(text, UTF16)).toBe(text.length);
  });
});

describe('takePiece: the rule', () => {
  it.each(both)('returns the rest whole when it fits (%s)', (_name, measure) => {
    expect(takePiece('hello world', 0, opts(measure, 11))).toEqual({ end: 11, spaceEnd: 11, kind: 'rest' });
    expect(takePiece('hello world', 6, opts(measure, 5))).toEqual({ end: 11, spaceEnd: 11, kind: 'rest' });
    expect(takePiece('abc', 3, opts(measure, 4))).toEqual({ end: 3, spaceEnd: 3, kind: 'rest' });
  });

  it.each(both)('prefers a paragraph, then a line, then a sentence, then a word, each the last of its kind (%s)', (_name, measure) => {
    const a = 'a'.repeat(60);
    expect(takePiece(`${a}\n \n${'b'.repeat(15)}\nMore. Words ${'c'.repeat(40)}`, 0, opts(measure, 100))).toEqual({ end: 60, spaceEnd: 63, kind: 'paragraph' });
    expect(takePiece(`${a}\nx\n${'b'.repeat(15)}. More words ${'c'.repeat(40)}`, 0, opts(measure, 100))).toEqual({ end: 62, spaceEnd: 63, kind: 'line' });
    expect(takePiece(`${a}. Yes. ${'b'.repeat(10)} words ${'c'.repeat(40)}`, 0, opts(measure, 100))).toEqual({ end: 66, spaceEnd: 67, kind: 'sentence' });
    expect(takePiece(`${a} x ${'b'.repeat(10)} words ${'c'.repeat(40)}`, 0, opts(measure, 100))).toEqual({ end: 79, spaceEnd: 80, kind: 'word' });
  });

  it.each(['.', '!', '?', '…', '?!', '...'])('ends a Latin sentence at %j followed by white space', (ender) => {
    const text = `${'a'.repeat(70)}${ender} next words ${'c'.repeat(40)}`;
    expect(takePiece(text, 0, opts(UTF16, 100))).toEqual({ end: 70 + ender.length, spaceEnd: 71 + ender.length, kind: 'sentence' });
  });

  it('does not end a sentence at Latin punctuation without white space after it', () => {
    const text = `${'a'.repeat(70)} pi is 3.14159 e.g.x ${'c'.repeat(40)}`;
    expect(takePiece(text, 0, opts(UTF16, 100))).toMatchObject({ end: 90, kind: 'word' });
  });

  it.each(['。', '！', '？', '；', '！！', '？！'])('ends a CJK sentence at %j without white space', (ender) => {
    const text = `${'你'.repeat(20)}${ender}${'好'.repeat(20)}`;
    expect(takePiece(text, 0, opts(UTF8, 90, 0.6))).toEqual({ end: 20 + ender.length, spaceEnd: 20 + ender.length, kind: 'sentence' });
  });

  it.each(['"', "'", ')', ']', '”', '’', '»', '」', '』', '）', '》', '】', '〕'])('keeps the closer %j with its sentence, Latin and CJK, in both measures', (closer) => {
    const latin = `${'a'.repeat(70)}.${closer} ${'b'.repeat(40)}`;
    const cjk = `${'你'.repeat(20)}！${closer}${'好'.repeat(20)}`;
    for (const [, measure] of both) {
      expect(takePiece(latin, 0, opts(measure, 100, 0.6))).toEqual({ end: 72, spaceEnd: 73, kind: 'sentence' });
      expect(takePiece(cjk, 0, opts(measure, measure === UTF8 ? 90 : 30, 0.6))).toEqual({ end: 22, spaceEnd: 22, kind: 'sentence' });
    }
  });

  it('does not cut between a CJK ender and its closer, or inside a run of enders, when the rest does not fit', () => {
    // 20 + 。 = 63 bytes; 4 more + ！ = 78; the closer (or second ！) would end at 81 > 80.
    for (const tail of ['！”', '！！']) {
      const text = `${'你'.repeat(20)}。${'你'.repeat(4)}${tail}${'好'.repeat(20)}`;
      expect(takePiece(text, 0, opts(UTF8, 80, 0.6))).toEqual({ end: 21, spaceEnd: 21, kind: 'sentence' });
    }
  });

  it.each(['\u0301', '\ufe0f', '\u200d'])('does not break after a CJK ender that a mark or joiner (%j) extends', (mark) => {
    const text = `${'你'.repeat(20)}。${mark}${'好'.repeat(20)}`;
    expect(takePiece(text, 0, opts(UTF16, 30)).kind).toBe('grapheme');
  });

  it.each(['\u00a0', '\u2007', '\u202f', '\ufeff'])('does not break at the no-break space %j', (nbsp) => {
    const text = `${'a'.repeat(90)} 10${nbsp}000 km`;
    expect(takePiece(text, 0, opts(UTF16, 96))).toEqual({ end: 90, spaceEnd: 91, kind: 'word' });
  });

  it.each(['\t', '\u3000', '\u2003', '\u2028', '\r'])('breaks at the white space %j', (space) => {
    const text = `${'a'.repeat(60)}${space}${'b'.repeat(60)}`;
    expect(takePiece(text, 0, opts(UTF16, 100))).toEqual({ end: 60, spaceEnd: 61, kind: 'word' });
  });

  it('counts CRLF blank lines as paragraphs and CRLF as lines', () => {
    expect(takePiece(`${'a'.repeat(60)}\r\n\r\n${'b'.repeat(60)}`, 0, opts(UTF16, 100))).toMatchObject({ end: 60, spaceEnd: 64, kind: 'paragraph' });
    expect(takePiece(`${'a'.repeat(60)}\r\n${'b'.repeat(60)}`, 0, opts(UTF16, 100))).toMatchObject({ end: 60, spaceEnd: 62, kind: 'line' });
  });

  it('keeps as much of the white space after a break as fits; the rest opens the next piece', () => {
    expect(takePiece(`${'a'.repeat(98)}\n\n\n\nb`, 0, opts(UTF16, 100))).toEqual({ end: 98, spaceEnd: 100, kind: 'paragraph' });
    // Only the first line feed is within the window, so this is a line break.
    expect(takePiece(`${'a'.repeat(100)}\n\nb`, 0, opts(UTF16, 100))).toEqual({ end: 100, spaceEnd: 100, kind: 'line' });
  });

  it('uses a break only past the minimum fill', () => {
    const text = `Hi. ${'x'.repeat(200)}`;
    expect(takePiece(text, 0, opts(UTF16, 100, 0.6))).toEqual({ end: 100, spaceEnd: 100, kind: 'grapheme' });
    expect(takePiece(text, 0, opts(UTF16, 100, 0))).toEqual({ end: 3, spaceEnd: 4, kind: 'sentence' });
    // minFill 1: only a break whose text alone fills the limit.
    expect(takePiece(`${'a'.repeat(100)} ${'b'.repeat(50)}`, 0, opts(UTF16, 100, 1))).toEqual({ end: 100, spaceEnd: 100, kind: 'word' });
    expect(takePiece(`${'a'.repeat(99)} ${'b'.repeat(50)}`, 0, opts(UTF16, 100, 1)).kind).toBe('grapheme');
  });

  it('ignores white space at the very start of the piece', () => {
    expect(takePiece(`\n\n${'x'.repeat(200)}`, 0, opts(UTF16, 100, 0)).kind).toBe('grapheme');
  });
});

describe('takePiece: hard cuts', () => {
  it.each(both)('keeps a skin-tone emoji whole when its modifier starts right at the limit (%s)', (_name, measure) => {
    // 👍 ends exactly at the limit; 🏽 (a surrogate pair) extends it.
    const pad = measure === UTF8 ? 96 : 98;
    const text = `${'x'.repeat(pad)}👍🏽${'y'.repeat(50)}`;
    expect(takePiece(text, 0, opts(measure, 100))).toEqual({ end: pad, spaceEnd: pad, kind: 'grapheme' });
  });

  it.each(['', 'x', 'xx', 'xxx'])('keeps flags paired after the prefix %j', (prefix) => {
    const text = `${prefix}${'🇨🇳'.repeat(1100)}`;
    const { end } = takePiece(text, 0, opts(UTF16, 4096));
    expect((end - prefix.length) % 4).toBe(0);
  });

  it.each(both)('keeps ZWJ sequences and combining marks whole (%s)', (_name, measure) => {
    const family = '👨‍👩‍👧‍👦';
    const size = sizeIn(measure, family);
    expect(takePiece(family.repeat(10), 0, opts(measure, 3 * size - 1)).end).toBe(2 * family.length);
    expect(takePiece('e\u0301'.repeat(60), 0, opts(measure, 101)).end % 2).toBe(0);
    // The family ends at 18 UTF-16 units or 28 bytes.
    expect(takePiece(`${'a'.repeat(10)}👨‍👩‍👧${'b'.repeat(10)}`, 0, opts(measure, measure === UTF8 ? 20 : 15)).end).toBe(10);
  });

  it.each(both)('cuts inside a cluster only when it alone exceeds the limit, never inside a pair (%s)', (_name, measure) => {
    const zalgo = `a${'\u0301'.repeat(200)}`;
    const limit = measure === UTF8 ? 51 : 50;
    expect(takePiece(zalgo, 0, opts(measure, limit))).toEqual({ end: measure === UTF8 ? 26 : 50, spaceEnd: measure === UTF8 ? 26 : 50, kind: 'code point' });
    const family = '👨‍👩‍👧';
    const min = measure.maxCodePointSize;
    for (let limit2 = min; limit2 < sizeIn(measure, family); limit2++) {
      const { end } = takePiece(family, 0, opts(measure, limit2));
      expect(splitsPair(family, end)).toBe(false);
      expect(sizeIn(measure, family.slice(0, end))).toBeLessThanOrEqual(limit2);
      expect(end).toBeGreaterThan(0);
    }
  });

  it('never splits a surrogate pair at an odd UTF-16 limit', () => {
    expect(takePiece('😀'.repeat(100), 0, opts(UTF16, 51))).toEqual({ end: 50, spaceEnd: 50, kind: 'grapheme' });
  });
});

describe('takePiece: bad input', () => {
  it.each([
    ['a UTF-16 limit below one pair', UTF16, 1, 0.5],
    ['a UTF-8 limit below 4 bytes', UTF8, 3, 0.5],
    ['a fractional limit', UTF16, 2.5, 0.5],
    ['a NaN limit', UTF8, Number.NaN, 0.5],
    ['a negative minFill', UTF16, 10, -0.1],
    ['a minFill above 1', UTF16, 10, 1.1],
    ['a NaN minFill', UTF16, 10, Number.NaN],
  ])('refuses %s', (_label, measure, limit, minFill) => {
    expect(() => takePiece('some text', 0, { measure, limit, minFill })).toThrow(RangeError);
  });

  it.each([
    ['a negative position', -1],
    ['a position past the end', 4],
    ['a fractional position', 0.5],
    ['a position inside a surrogate pair', 2],
  ])('refuses %s', (_label, from) => {
    expect(() => takePiece('a😀', from, opts(UTF16, 10))).toThrow(RangeError);
  });

  it('names the limit, the unit and the value in the error', () => {
    expect(() => takePiece('abc', 0, opts(UTF8, 3))).toThrow('limit must be an integer ≥ 4 UTF-8 bytes, got 3');
  });
});

/** Size of the longest run of whole code points from `from` within the limit. */
function fitted(text: string, from: number, o: PieceOptions): number {
  let size = 0;
  for (const cp of text.slice(from)) {
    if (size + sizeIn(o.measure, cp) > o.limit) break;
    size += sizeIn(o.measure, cp);
  }
  return size;
}

/**
 * Walks `text` piece by piece (separators kept) and returns the pieces, after checking
 * the invariants on every step (collected into one assertion: thousands of `expect`
 * calls would dominate the run time).
 */
function walk(text: string, o: PieceOptions): string[] {
  const boundaries = graphemeBoundaries(text);
  const minSize = Math.ceil(o.limit * o.minFill);
  const pieces: string[] = [];
  const problems: string[] = [];
  const report = (from: number, what: string, cut: Cut): void => {
    problems.push(`at ${from}: ${what} (${JSON.stringify(cut)})`);
  };
  for (let from = 0; from < text.length; ) {
    const cut = takePiece(text, from, o);
    const piece = text.slice(from, cut.spaceEnd);
    if (cut.kind === 'rest' && (cut.end !== text.length || cut.spaceEnd !== text.length)) report(from, 'rest does not reach the end', cut);
    if (!(from < cut.end && cut.end <= cut.spaceEnd)) report(from, 'no progress', cut);
    if (sizeIn(o.measure, piece) > o.limit) report(from, `measures ${sizeIn(o.measure, piece)}`, cut);
    if (splitsPair(text, cut.end) || splitsPair(text, cut.spaceEnd)) report(from, 'splits a surrogate pair', cut);
    if (!/^\s*$/.test(text.slice(cut.end, cut.spaceEnd))) report(from, 'keeps more than white space after the end', cut);
    const isBreak = cut.kind === 'paragraph' || cut.kind === 'line' || cut.kind === 'sentence' || cut.kind === 'word';
    // The minimum fill, capped by what fits (a wide code point may leave it out of reach).
    if (isBreak && sizeIn(o.measure, text.slice(from, cut.end)) < Math.min(minSize, fitted(text, from, o))) report(from, 'break below the minimum fill', cut);
    if (boundaries.has(from) && (isBreak || cut.kind === 'grapheme') && !boundaries.has(cut.end)) report(from, 'tears a grapheme cluster', cut);
    if (boundaries.has(from) && cut.kind === 'code point') {
      const next = Math.min(...[...boundaries].filter((b) => b > from));
      if (sizeIn(o.measure, text.slice(from, next)) <= o.limit) report(from, 'cuts a cluster that fits', cut);
    }
    if (cut.kind !== 'rest') {
      // Decided from the text up to the limit plus one code point: more text changes nothing.
      const prefix = text.slice(0, from + o.limit + 2);
      if (JSON.stringify(takePiece(prefix, from, o)) !== JSON.stringify(cut)) report(from, 'depends on text past the window', cut);
    }
    if (problems.length > 0) break;
    pieces.push(piece);
    from = cut.spaceEnd;
  }
  expect(problems).toEqual([]);
  return pieces;
}

describe('takePiece: property tests', () => {
  const cases: [string, number, number, Measure][] = [];
  for (const [name, measure, limits] of [
    ['UTF-16', UTF16, [2, 3, 7, 40, 160, 1600, 4096]],
    ['UTF-8', UTF8, [4, 5, 7, 16, 64, 301, 2000, 2048]],
  ] as const) {
    for (const limit of limits) for (const minFill of [0, 0.5, 0.6, 1]) cases.push([name, limit, minFill, measure]);
  }

  it.each(cases)('%s, limit %i, minFill %d: bounded, lossless, whole pairs and clusters, window-local', (_name, limit, minFill, measure) => {
    // Arrange: a fresh text per case, rich in the code points that make cutting hard.
    const text = richText(limit < 100 ? 1500 : 6000, Math.round(limit * 10 + minFill * 7));
    // Act
    const pieces = walk(text, opts(measure, limit, minFill));
    // Assert: nothing lost or repeated, and the same pieces every time.
    expect(pieces.join('')).toBe(text);
    expect(walk(text, opts(measure, limit, minFill))).toEqual(pieces);
  });

  it('cuts mixed text into full pieces: each but the last fills at least minFill of the limit', () => {
    const text = mixedText(5000, 77);
    for (const [, measure] of both) {
      const pieces = walk(text, opts(measure, 1000, 0.5));
      for (const piece of pieces.slice(0, -1)) expect(sizeIn(measure, piece)).toBeGreaterThanOrEqual(500);
    }
  });
});
