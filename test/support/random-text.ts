/**
 * Reproducible random text for the splitter's property tests: a seeded PRNG and texts
 * mixing the scripts and code points that make cutting hard.
 */

/** A deterministic PRNG (mulberry32) so "random" tests are reproducible. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * `count` code points of Chinese mixed with emoji (surrogate pairs, some ZWJ/skin-tone
 * sequences), ASCII words, spaces, Latin and CJK punctuation and line breaks.
 */
export function mixedText(count: number, seed: number): string {
  const rnd = seededRandom(seed);
  const pick = (items: readonly string[]): string => items[Math.floor(rnd() * items.length)] ?? '';
  const out: string[] = [];
  for (let n = 0; n < count; n++) {
    const r = rnd();
    if (r < 0.5) out.push(String.fromCodePoint(0x4e00 + Math.floor(rnd() * 0x5000)));
    else if (r < 0.62) out.push(String.fromCodePoint(0x1f300 + Math.floor(rnd() * 0x300)));
    else if (r < 0.64) out.push(pick(['👨‍👩‍👧', '👍🏽', '🇨🇳', 'é', '❤️']));
    else if (r < 0.85) out.push(String.fromCharCode(0x61 + Math.floor(rnd() * 26)));
    else if (r < 0.9) out.push(' ');
    else if (r < 0.95) out.push(pick(['。', '！', '？', '，', '. ', '! ', '? ', '”', ')']));
    else if (r < 0.98) out.push('\n');
    else out.push(pick(['\n\n', 'ü', 'ß', '\t', '\u3000']));
  }
  return out.join('');
}

/**
 * `count` tokens of harder text than {@link mixedText}: runs of flags (regional-indicator
 * pairs), skin-tone and ZWJ emoji, combining marks (also stacked, also after spaces),
 * every sentence ender and closer of the rule, no-break spaces, `\r\n`, and now and then
 * a lone surrogate (which a model's output should never hold, but a splitter must survive).
 */
export function richText(count: number, seed: number): string {
  const rnd = seededRandom(seed);
  const pick = (items: readonly string[]): string => items[Math.floor(rnd() * items.length)] ?? '';
  const out: string[] = [];
  for (let n = 0; n < count; n++) {
    const r = rnd();
    if (r < 0.25) out.push(String.fromCodePoint(0x4e00 + Math.floor(rnd() * 0x5000)));
    else if (r < 0.5) out.push(String.fromCharCode(0x61 + Math.floor(rnd() * 26)));
    else if (r < 0.6) out.push(' ');
    else if (r < 0.66) out.push(pick(['🇨🇳', '🇺🇸🇯🇵', '🇩🇪'.repeat(5), '👍🏽', '👩🏿‍💻', '👨‍👩‍👧‍👦', '❤️', '1️⃣']));
    else if (r < 0.7) out.push(String.fromCodePoint(0x1f300 + Math.floor(rnd() * 0x300)));
    else if (r < 0.74) out.push(pick(['\u0301', '\u0308\u0323', 'e\u0301', 'a\u0300\u0301\u0302\u0303', '\u200d', '\ufe0f']));
    else if (r < 0.84) out.push(pick(['.', '!', '?', '…', '。', '！', '？', '；', '，', '3.14', '."', ".'", '.)', '.]', '.”', '.’', '!»', '。」', '！』', '？）', '。》', '！】', '。〕']));
    else if (r < 0.9) out.push(pick(['\n', '\n\n', '\r\n', '\r\n\r\n', ' \n \n ', '\t', '\u3000', '\u2028']));
    else if (r < 0.94) out.push(pick(['\u00a0', '\u202f', '\u2007', '\ufeff']));
    else if (r < 0.995) out.push(pick(['ü', 'ß', 'ñ', 'ж', 'ع', 'क्षि']));
    else out.push(pick(['\ud800', '\udfff']));
  }
  return out.join('');
}
