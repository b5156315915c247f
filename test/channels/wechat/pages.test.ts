import { MIN_PAGE_BYTES, takePage, utf8Length } from '../../../lib/channels/wechat/pages';
import { mixedText, richText } from '../../support/random-text';

/**
 * Pages the whole text and checks the per-page invariants on the way (collected into
 * one assertion: thousands of `expect` calls would dominate the run time).
 */
function pageAll(text: string, maxBytes: number, final = true): string[] {
  const pages: string[] = [];
  const problems: string[] = [];
  let at = 0;
  while (at < text.length) {
    const { page, nextChar, last } = takePage(text, at, maxBytes, { final });
    if (page.length === 0) problems.push(`empty page at ${at}`);
    if (nextChar !== at + page.length) problems.push(`nextChar ${nextChar} does not follow page at ${at}`);
    if (utf8Length(page) > maxBytes) problems.push(`page at ${at} has ${utf8Length(page)} bytes`);
    if (last !== (final && nextChar === text.length)) problems.push(`wrong last flag at ${at}`);
    if (problems.length > 0 || page.length === 0) break;
    pages.push(page);
    at = nextChar;
  }
  expect(problems).toEqual([]);
  return pages;
}

function isHigh(unit: number): boolean {
  return unit >= 0xd800 && unit <= 0xdbff;
}
function isLow(unit: number): boolean {
  return unit >= 0xdc00 && unit <= 0xdfff;
}

describe('utf8Length', () => {
  it.each(['', 'abc', 'ü', '中文', '😀', 'a中😀é', '\u0000', '👨‍👩‍👧', 'x'.repeat(1000)])('equals Buffer.byteLength for %j', (s) => {
    expect(utf8Length(s)).toBe(Buffer.byteLength(s, 'utf8'));
  });

  it('counts lone surrogates as U+FFFD (3 bytes), like the encoder', () => {
    expect(utf8Length('\uD800')).toBe(3);
    expect(utf8Length('a\uDC00b')).toBe(5);
    expect(utf8Length('\uD83D')).toBe(Buffer.byteLength('\uD83D', 'utf8'));
  });

  it('has the documented example', () => {
    expect(utf8Length('a中😀')).toBe(8);
  });
});

describe('takePage: basics', () => {
  it('returns the rest whole when it fits, final or not', () => {
    expect(takePage('hello world', 0, 2000, { final: true })).toEqual({ page: 'hello world', nextChar: 11, last: true });
    expect(takePage('hello world', 6, 2000, { final: false })).toEqual({ page: 'world', nextChar: 11, last: false });
  });

  it('returns an empty page at the end of the text', () => {
    expect(takePage('abc', 3, 10, { final: true })).toEqual({ page: '', nextChar: 3, last: true });
    expect(takePage('', 0, 10, { final: false })).toEqual({ page: '', nextChar: 0, last: false });
  });

  it('fits exactly maxBytes when the text is exactly that long', () => {
    const text = '中'.repeat(10); // 30 bytes
    expect(takePage(text, 0, 30, { final: true }).page).toBe(text);
    expect(takePage(text, 0, 29, { final: true }).page).toBe('中'.repeat(9));
  });

  it('measures bytes, not characters (3-byte CJK)', () => {
    const { page, nextChar } = takePage('一二三四五六七八九十', 0, 10, { final: true });
    expect(page).toBe('一二三');
    expect(nextChar).toBe(3);
  });

  it('never splits a surrogate pair', () => {
    const text = '😀'.repeat(10); // 40 bytes, 20 UTF-16 units
    for (const maxBytes of [4, 5, 6, 7, 9, 15]) {
      const { page, nextChar } = takePage(text, 0, maxBytes, { final: true });
      expect(nextChar % 2).toBe(0);
      expect(page).toBe('😀'.repeat(Math.floor(maxBytes / 4)));
    }
  });

  it('keeps an emoji ZWJ sequence together on a hard cut when it can', () => {
    const family = '👨‍👩‍👧'; // 18 bytes, one grapheme
    const text = `${'a'.repeat(10)}${family}${'b'.repeat(10)}`;
    const { page } = takePage(text, 0, 20, { final: true });
    expect(page).toBe('a'.repeat(10));
  });

  it('cuts inside a grapheme only when it alone exceeds the page', () => {
    const family = '👨‍👩‍👧';
    const { page } = takePage(family, 0, 8, { final: true });
    expect(page).toBe('👨\u200D');
    expect(pageAll(family, 8).join('')).toBe(family);
  });

  it.each([
    ['maxBytes below 4', 'abc', 0, 3],
    ['fractional maxBytes', 'abc', 0, 10.5],
    ['negative fromChar', 'abc', -1, 10],
    ['fromChar beyond the end', 'abc', 4, 10],
    ['fractional fromChar', 'abc', 0.5, 10],
    ['fromChar inside a surrogate pair', 'a😀b', 2, 10],
  ])('refuses %s', (_label, text, from, max) => {
    expect(() => takePage(text, from, max, { final: true })).toThrow(RangeError);
  });

  it('refuses a breakWindow outside 0..1', () => {
    expect(() => takePage('abc', 0, 10, { final: true, breakWindow: 1.5 })).toThrow(RangeError);
    expect(() => takePage('abc', 0, 10, { final: true, breakWindow: Number.NaN })).toThrow(RangeError);
  });

  it('exposes the minimum page size', () => {
    expect(MIN_PAGE_BYTES).toBe(4);
    expect(takePage('😀😀', 0, MIN_PAGE_BYTES, { final: true }).page).toBe('😀');
  });
});

describe('takePage: preferred breaks', () => {
  it('prefers a paragraph break over a later line end', () => {
    const text = `${'a'.repeat(60)}\n\n${'b'.repeat(15)}\n${'c'.repeat(40)}`;
    const { page } = takePage(text, 0, 100, { final: true });
    expect(page).toBe(`${'a'.repeat(60)}\n\n`);
  });

  it('prefers a line end over a later sentence end', () => {
    const text = `${'a'.repeat(70)}\nSome words. More ${'c'.repeat(40)}`;
    expect(takePage(text, 0, 100, { final: true }).page).toBe(`${'a'.repeat(70)}\n`);
  });

  it('prefers a sentence end over a later space and keeps the space on this page', () => {
    const text = `${'a'.repeat(70)}. Next words here ${'c'.repeat(40)}`;
    expect(takePage(text, 0, 100, { final: true }).page).toBe(`${'a'.repeat(70)}. `);
  });

  it('does not treat a decimal point as a sentence end', () => {
    const text = `${'a'.repeat(70)} pi is 3.14159 ${'c'.repeat(40)}`;
    expect(takePage(text, 0, 100, { final: true }).page).toBe(`${'a'.repeat(70)} pi is 3.14159 `);
  });

  it('cuts after CJK sentence ends without a following space', () => {
    const text = `${'你'.repeat(20)}。${'好'.repeat(20)}`;
    const { page } = takePage(text, 0, 90, { final: true });
    expect(page).toBe(`${'你'.repeat(20)}。`);
  });

  it('does not leave a closer or a second ender for the next page when it does not fit', () => {
    // 20 + 。 = 63 bytes; 4 more + ！ = 78; the closer or the second ！ would end at 81.
    for (const tail of ['！”', '！！']) {
      const text = `${'你'.repeat(20)}。${'你'.repeat(4)}${tail}${'好'.repeat(20)}`;
      expect(takePage(text, 0, 80, { final: true }).page).toBe(`${'你'.repeat(20)}。`);
    }
  });

  it('keeps a closing quote with its sentence', () => {
    const text = `${'你'.repeat(20)}！”${'好'.repeat(20)}`;
    expect(takePage(text, 0, 90, { final: true }).page).toBe(`${'你'.repeat(20)}！”`);
    const latin = `${'a'.repeat(70)}." ${'b'.repeat(40)}`;
    expect(takePage(latin, 0, 100, { final: true }).page).toBe(`${'a'.repeat(70)}." `);
  });

  it('falls back to the last space', () => {
    const text = 'word '.repeat(30);
    const { page } = takePage(text, 0, 52, { final: true });
    expect(page).toBe('word '.repeat(10));
  });

  it('ignores breaks outside the last 40% of the window and cuts hard', () => {
    const text = `Hi. ${'x'.repeat(200)}`;
    const { page } = takePage(text, 0, 100, { final: true });
    expect(page).toBe(`Hi. ${'x'.repeat(96)}`);
  });

  it('honours a custom breakWindow', () => {
    const text = `Hi. ${'x'.repeat(200)}`;
    expect(takePage(text, 0, 100, { final: true, breakWindow: 1 }).page).toBe('Hi. ');
    const spaced = `${'a'.repeat(90)} ${'b'.repeat(50)}`;
    expect(takePage(spaced, 0, 100, { final: true, breakWindow: 0 }).page).toBe(`${'a'.repeat(90)} ${'b'.repeat(9)}`);
  });

  it('resumes from nextChar with the following text', () => {
    const text = `${'a'.repeat(70)}. ${'b'.repeat(70)}. ${'c'.repeat(10)}`;
    const first = takePage(text, 0, 100, { final: true });
    const second = takePage(text, first.nextChar, 100, { final: true });
    expect(first.page).toBe(`${'a'.repeat(70)}. `);
    expect(second.page).toBe(`${'b'.repeat(70)}. ${'c'.repeat(10)}`);
    expect(second.last).toBe(true);
  });
});

describe('takePage: property tests', () => {
  it.each([
    [4, 1],
    [5, 2],
    [7, 3],
    [16, 4],
    [64, 5],
    [301, 6],
    [2000, 7],
    [2048, 8],
  ])('5,000 mixed code points, maxBytes %i (seed %i): lossless, bounded, no split pair', (maxBytes, seed) => {
    // Arrange
    const text = mixedText(5000, seed);
    expect(text.match(/[\s\S]/gu)?.length).toBeGreaterThanOrEqual(5000); // code points
    // Act
    const pages = pageAll(text, maxBytes);
    // Assert: nothing lost or repeated
    expect(pages.join('')).toBe(text);
    const split = pages.filter(
      (page) =>
        // A page starting with a low surrogate or ending with a high one split a pair.
        isLow(page.charCodeAt(0)) ||
        isHigh(page.charCodeAt(page.length - 1)) ||
        Buffer.from(page, 'utf8').toString('utf8') !== page ||
        Buffer.byteLength(page, 'utf8') > maxBytes,
    );
    expect(split).toEqual([]);
  });

  it('fills pages reasonably: every page but the last uses most of the window', () => {
    const text = mixedText(5000, 42);
    const pages = pageAll(text, 2000);
    for (const page of pages.slice(0, -1)) {
      expect(utf8Length(page)).toBeGreaterThanOrEqual(Math.floor(0.6 * (2000 - 3)));
    }
  });

  it.each([
    ['mixed', mixedText(5000, 9)],
    ['rich', richText(8000, 10)],
  ])('gives the same pages whether the %s text was complete or still streaming', (_kind, text) => {
    const streamed: string[] = [];
    let at = 0;
    // Simulate streaming: the text grows in chunks; a page is taken only when the
    // remainder no longer fits (or at the end), as a caller would do.
    for (let end = 137; ; end += 137) {
      const final = end >= text.length;
      let visible = final ? text : text.slice(0, end);
      // never expose half a surrogate pair as "text so far"
      if (!final && isHigh(visible.charCodeAt(visible.length - 1))) visible = visible.slice(0, -1);
      while (at < visible.length && (final || utf8Length(visible.slice(at)) > 2000)) {
        const { page, nextChar } = takePage(visible, at, 2000, { final });
        streamed.push(page);
        at = nextChar;
      }
      if (final) break;
    }
    expect(streamed.join('')).toBe(text);
    expect(streamed).toEqual(pageAll(text, 2000));
  });
});
