/**
 * Short notes the worker adds to or sends instead of an answer, in the user's language.
 *
 * The language is guessed from what the user wrote: Chinese characters mean Chinese, Latin
 * letters mean English; anything else (digits, emoji, voice, images) falls back to the
 * channel's usual audience (WeChat: Chinese, the others: English). One language per note keeps
 * SMS in the cheaper GSM-7 encoding for English users (Chinese forces UCS-2, 70 characters per
 * segment: https://www.twilio.com/docs/glossary/what-is-ucs-2-character-encoding).
 */
import type { Job } from '../types';

/** The languages notes are written in. */
export type Language = 'zh' | 'en';

/** One note in each language. */
export type Localised = Readonly<Record<Language, string>>;

const HAN = /[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]/;
const LATIN = /[A-Za-z]/;

/** The language to answer `job`'s user in. */
export function languageOf(job: Job): Language {
  const text = job.input.kind === 'text' ? job.input.text : job.input.kind === 'image' ? job.input.caption : '';
  if (HAN.test(text)) return 'zh';
  if (LATIN.test(text)) return 'en';
  return job.channel === 'wechat' ? 'zh' : 'en';
}

/** `note` in `job`'s user's language. */
export function localise(job: Job, note: Localised): string {
  return note[languageOf(job)];
}

/** Appended to an answer a time limit cut short (the text so far is kept). */
export const CUT_NOTE: Localised = {
  zh: '\n\n（回答因模型响应超时被截断）',
  en: '\n\n(answer cut short: the model took too long)',
};

/** Sent when a time limit ended the call before any text arrived. */
export const TOO_SLOW_TEXT: Localised = {
  zh: '抱歉，模型响应超时，请稍后再问一次。',
  en: 'Sorry, the model took too long to answer. Please ask again in a moment.',
};

/** Appended to an answer that reached the `LLM_MAX_TOKENS` cap. */
export const LENGTH_NOTE: Localised = {
  zh: '\n\n（回答已达长度上限）',
  en: '\n\n(answer shortened: length limit reached)',
};

/** Sent for the first message over the per-user rate limit; `minutes` until the window resets. */
export function rateLimitedText(minutes: number): Localised {
  const m = Math.max(1, Math.ceil(minutes));
  return {
    zh: `您发送的消息有点多，请 ${m} 分钟后再试。`,
    en: `You have sent a lot of messages in a short time. Please try again in ${m} minute${m === 1 ? '' : 's'}.`,
  };
}
