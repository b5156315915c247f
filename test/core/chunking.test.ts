import { splitForChannel, TWILIO_MAX_CHARS, WHATSAPP_MAX_CHARS } from '../../lib/core/chunking';
import { richText } from '../support/random-text';

/** Everything but white space, to check that nothing was lost or repeated. */
const ink = (s: string): string => s.replace(/\s+/g, '');

/** True when the string has a lone surrogate (half of a pair). */
function hasLoneSurrogate(s: string): boolean {
  return /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s);
}

function expectWellFormed(parts: string[], text: string, max: number): void {
  for (const part of parts) {
    expect(part.length).toBeLessThanOrEqual(max);
    expect(part.length).toBeGreaterThan(0);
    expect(part).toBe(part.trim());
    expect(hasLoneSurrogate(part)).toBe(false);
  }
  expect(ink(parts.join(''))).toBe(ink(text));
}

describe('splitForChannel', () => {
  it('keeps a short text whole (trimmed)', () => {
    expect(splitForChannel('  hello  ', 10)).toEqual(['hello']);
  });

  it('returns nothing for empty or white-space-only text', () => {
    expect(splitForChannel('', 10)).toEqual([]);
    expect(splitForChannel(' \n\t ', 10)).toEqual([]);
  });

  it('keeps a text of exactly the limit in one part', () => {
    const text = 'x'.repeat(WHATSAPP_MAX_CHARS);
    expect(splitForChannel(text, WHATSAPP_MAX_CHARS)).toEqual([text]);
  });

  it('prefers paragraph boundaries', () => {
    // Arrange: three paragraphs of 30 characters, limit 70.
    const p = (c: string): string => `${c.repeat(14)} ${c.repeat(15)}.`;
    const text = `${p('a')}\n\n${p('b')}\n\n${p('c')}`;
    // Act
    const parts = splitForChannel(text, 70);
    // Assert: the cut is between paragraphs 2 and 3, not inside one.
    expect(parts).toEqual([`${p('a')}\n\n${p('b')}`, p('c')]);
  });

  it('falls back to sentences when the paragraph break is too early', () => {
    // Arrange: a short paragraph, then one long paragraph of sentences.
    const text = `Intro.\n\n${'This is one sentence. '.repeat(10).trim()}`;
    // Act
    const parts = splitForChannel(text, 100);
    // Assert
    expectWellFormed(parts, text, 100);
    expect(parts[0]?.endsWith('.')).toBe(true);
    expect(parts[0]?.length).toBeGreaterThanOrEqual(50);
  });

  it('does not treat a decimal point as a sentence end', () => {
    const text = `${'word '.repeat(9)}pi is 3.14159 and more words follow here`;
    const parts = splitForChannel(text, 60);
    expectWellFormed(parts, text, 60);
    expect(parts.some((p) => p.includes('3.14159'))).toBe(true);
  });

  it('splits on CJK sentence punctuation without spaces', () => {
    // Arrange: Chinese has no spaces; 。 ends sentences.
    const sentence = '这是一个很长的回答，用来测试分页功能是否正确。';
    const text = sentence.repeat(20);
    // Act
    const parts = splitForChannel(text, 100);
    // Assert: every part ends a sentence.
    expectWellFormed(parts, text, 100);
    for (const part of parts) expect(part.endsWith('。')).toBe(true);
  });

  it('falls back to words, then to a hard cut', () => {
    const words = 'alpha beta gamma delta epsilon '.repeat(10);
    const wordParts = splitForChannel(words, 40);
    expectWellFormed(wordParts, words, 40);
    for (const part of wordParts) expect(part).toMatch(/^(alpha|beta|gamma|delta|epsilon)( |$)/);

    const noSpaces = 'x'.repeat(250);
    expect(splitForChannel(noSpaces, 100).map((p) => p.length)).toEqual([100, 100, 50]);
  });

  it('never splits a surrogate pair', () => {
    // Arrange: emoji are two UTF-16 code units each; an odd limit forces the question.
    const text = '😀'.repeat(100);
    // Act
    const parts = splitForChannel(text, 51);
    // Assert
    expectWellFormed(parts, text, 51);
    expect(parts[0]).toBe('😀'.repeat(25));
    expect(parts.join('')).toBe(text);
  });

  it('keeps grapheme clusters (ZWJ sequences, flags) whole when it has to cut inside a word', () => {
    const family = '👨‍👩‍👧‍👦'; // 11 code units
    const text = family.repeat(10);
    const parts = splitForChannel(text, 30);
    expectWellFormed(parts, text, 30);
    for (const part of parts) expect(part.length % family.length).toBe(0);
  });

  it('handles the WhatsApp and Twilio limits on a long mixed answer', () => {
    // Arrange: ~12,000 characters of paragraphs, sentences, emoji and CJK.
    const para = (i: number): string =>
      `Paragraph ${i}: ${'Some words here, then a sentence ends. '.repeat(8)}Emoji 🎉🚀 and 中文句子。还有一句！`;
    const text = Array.from({ length: 30 }, (_, i) => para(i)).join('\n\n');
    for (const max of [WHATSAPP_MAX_CHARS, TWILIO_MAX_CHARS]) {
      // Act
      const parts = splitForChannel(text, max);
      // Assert
      expectWellFormed(parts, text, max);
      // Each part but the last is at least half full, so the count stays near the minimum.
      expect(parts.length).toBeLessThanOrEqual(Math.ceil(text.length / (max / 2)));
      // Paragraph cuts: every part but possibly the last ends a paragraph.
      for (const part of parts.slice(0, -1)) expect(part.endsWith('还有一句！')).toBe(true);
    }
  });

  it('is deterministic (a resumed delivery recomputes the same parts)', () => {
    const text = 'Lorem ipsum dolor sit amet. '.repeat(500);
    expect(splitForChannel(text, 4096)).toEqual(splitForChannel(text, 4096));
  });

  it('rejects a limit too small for a surrogate pair', () => {
    expect(() => splitForChannel('abc', 1)).toThrow(RangeError);
    expect(() => splitForChannel('abc', 2.5)).toThrow(RangeError);
  });

  it('does not break at a no-break space (a number or French punctuation stays whole)', () => {
    const text = `${'a'.repeat(90)} 10\u00a0000 km, oui\u202f!`;
    expect(splitForChannel(text, 96)).toEqual(['a'.repeat(90), '10\u00a0000 km, oui\u202f!']);
  });

  it('keeps a skin-tone emoji whole when the modifier starts right at the limit', () => {
    const text = `${'x'.repeat(98)}👍🏽${'y'.repeat(50)}`;
    expect(splitForChannel(text, 100)).toEqual(['x'.repeat(98), `👍🏽${'y'.repeat(50)}`]);
  });
});

/** The positions of `parts` in `body`, checking that only white space lies between them. */
function positions(body: string, parts: string[]): [number, number][] | undefined {
  const out: [number, number][] = [];
  let at = 0;
  for (const part of parts) {
    const start = at + (/^\s*/.exec(body.slice(at))?.[0].length ?? 0);
    if (!body.startsWith(part, start)) return undefined;
    out.push([start, start + part.length]);
    at = start + part.length;
  }
  return /^\s*$/.test(body.slice(at)) ? out : undefined;
}

describe('splitForChannel: property tests', () => {
  const isHigh = (unit: number): boolean => unit >= 0xd800 && unit <= 0xdbff;
  const isLow = (unit: number): boolean => unit >= 0xdc00 && unit <= 0xdfff;
  const splitsPair = (s: string, at: number): boolean => at > 0 && at < s.length && isHigh(s.charCodeAt(at - 1)) && isLow(s.charCodeAt(at));

  it.each([2, 3, 5, 16, 70, 160, TWILIO_MAX_CHARS, WHATSAPP_MAX_CHARS])('rich text, limit %i: trimmed parts within the limit, only white space dropped, no pair split, deterministic', (max) => {
    // Arrange: emoji, flags, ZWJ, combining marks, CJK, every ender and closer, odd spaces.
    const text = `  \n${richText(max < 100 ? 1500 : 8000, max)}\n `;
    // Act
    const parts = splitForChannel(text, max);
    // Assert
    const problems = parts.filter((p) => p.length === 0 || p.length > max || p !== p.trim());
    expect(problems).toEqual([]);
    const body = text.trim();
    const at = positions(body, parts);
    expect(at).toBeDefined();
    expect((at ?? []).filter(([start, end]) => splitsPair(body, start) || splitsPair(body, end))).toEqual([]);
    expect(splitForChannel(text, max)).toEqual(parts);
  });
});
