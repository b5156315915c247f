/**
 * When the worker writes a WeChat answer that is still streaming (pure, no I/O).
 *
 * WeChat is the one channel where a partial answer is read: a held passive delivery sends a
 * page as soon as a whole one has streamed, the last of WeChat's three deliveries answers at
 * its deadline with what has streamed so far, and a "1" shows the next page, or what there
 * is at its own deadline. Every progress write rewrites the whole growing item (a write unit
 * per KB, plus the pending index's copy), so the worker writes only when one of those
 * readers can use it:
 *
 * ```text
 *  arrival            final deadline − nearMs     final deadline (+ slack)
 *     │ page growth only        │ every flush (≥ 1 s)      │ every idleMs: a "1" may come
 *     ▼                         ▼                          ▼
 *  ───┼─────────────────────────┼──────────────────────────┼─────────────────────────────►
 * ```
 *
 * - **Page growth** (always): a quarter page more than the record holds, so a held delivery
 *   sees a whole page at most a quarter page after it has streamed.
 * - **Near the last passive deadline**: WeChat delivers a message up to three times, each
 *   retry about 5 s after the previous one when the previous response did not come in time
 *   (https://developers.weixin.qq.com/doc/offiaccount/en/Message_Management/Receiving_standard_messages.html);
 *   the last delivery answers after `replyWaitMs` with the partial answer, so from a little
 *   before that moment the worker writes at its usual pace (at most once a second).
 * - **After the passive window**: only a "1" (or a later message's last delivery) reads it, at
 *   its own deadline `replyWaitMs` after it arrived, so a write every few seconds keeps what
 *   it shows at most that old.
 *
 * Between those, nothing reads a partial answer: the earlier deliveries wait for a whole
 * page or the end. What is shown is cut from what the record holds, so a late write only
 * shows less text, never wrong or repeated text.
 *
 * @module
 */
import type { WeChatConfig } from '../../config';
import type { ProgressPolicy } from '../../core/channel';
import { utf8Length } from './pages';

/** Timings of {@link wechatProgressPolicy}; production defaults in {@link WECHAT_PROGRESS_TIMING}. */
export interface WeChatProgressTiming {
  /** Time between WeChat's deliveries of one message (it retries after 5 s without an answer). */
  retryIntervalMs: number;
  /** How long before the last delivery's deadline the worker starts writing at its usual pace. */
  nearDeadlineMs: number;
  /** After the deadline, how long the usual pace goes on (WeChat's retries drift by network time). */
  slackMs: number;
  /**
   * After the passive window: the longest time between writes. 0 writes at every flush
   * whatever the time (the local stack's scaled-clock tests, whose WeChat retries are not 5 s apart).
   */
  idleMs: number;
}

/** Production timings. */
export const WECHAT_PROGRESS_TIMING: Readonly<WeChatProgressTiming> = {
  retryIntervalMs: 5_000,
  nearDeadlineMs: 2_000,
  slackMs: 1_000,
  idleMs: 3_000,
};

/**
 * The WeChat adapter's progress policy (see the module comment).
 *
 * @param cfg - `pageBytes`, `deliveries` and `replyWaitMs` of the account.
 * @param timing - WeChat's retry spacing and the write pacing.
 */
export function wechatProgressPolicy(cfg: Pick<WeChatConfig, 'pageBytes' | 'deliveries' | 'replyWaitMs'>, timing: WeChatProgressTiming = WECHAT_PROGRESS_TIMING): ProgressPolicy {
  const growthBytes = Math.max(1, Math.floor(cfg.pageBytes / 4));
  // The last delivery arrives (deliveries − 1) retries after the first and answers replyWaitMs later.
  const lastDeadlineMs = (cfg.deliveries - 1) * timing.retryIntervalMs + cfg.replyWaitMs;
  return {
    due({ arrivedAtMs, answer, written, writtenAtMs, nowMs }) {
      if (timing.idleMs === 0) return true;
      // The answer grows by appending, so only the new text is measured (this runs on every
      // streamed chunk once the flush interval has passed); a replaced answer is measured whole.
      const grownBytes = answer.startsWith(written) ? utf8Length(answer.slice(written.length)) : utf8Length(answer) - utf8Length(written);
      if (grownBytes >= growthBytes) return true;
      const sinceArrivalMs = nowMs - arrivedAtMs;
      if (sinceArrivalMs >= lastDeadlineMs - timing.nearDeadlineMs && sinceArrivalMs <= lastDeadlineMs + timing.slackMs) return true;
      return sinceArrivalMs > lastDeadlineMs && nowMs - writtenAtMs >= timing.idleMs;
    },
  };
}
