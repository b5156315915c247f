/**
 * What the gateway itself says to a WeChat user around an answer, shared by passive replies
 * (passive.ts) and customer-service pushes (adapter.ts). Bilingual: most Official Account
 * users read Chinese.
 *
 * @module
 */

/** Bilingual notes: most Official Account users read Chinese. */
export function moreNote(keyword: string): string {
  return `\n\n（回复 ${keyword} 查看后续 · reply ${keyword} for more）`;
}

/** Appended to a page cut from an answer that is still being written. */
export function writingNote(keyword: string): string {
  return `\n\n（还在生成中，回复 ${keyword} 查看后续 · still writing, reply ${keyword} for the rest）`;
}

/** Sent when nothing has been written yet by the time the reply must go. */
export function thinkingText(keyword: string): string {
  return `正在思考，请稍后回复 ${keyword} 获取回答。\nStill thinking – reply ${keyword} in a few seconds to get the answer.`;
}
