/**
 * The WeChat progress policy: when the worker writes a streaming answer (page growth; near
 * the last passive deadline; every few seconds after the passive window; never otherwise).
 */
import { WECHAT_PROGRESS_TIMING, wechatProgressPolicy } from '../../../lib/channels/wechat/progress';
import type { ProgressState } from '../../../lib/core/channel';

const CFG = { pageBytes: 2000, deliveries: 3, replyWaitMs: 4500 };
/** The last delivery arrives 2 × 5 s after the first and answers 4.5 s later. */
const LAST_DEADLINE_MS = 14_500;
const ARRIVED = 1_000_000;

function state(over: Partial<ProgressState>): ProgressState {
  return { arrivedAtMs: ARRIVED, answer: 'a'.repeat(100), written: '', writtenAtMs: ARRIVED, nowMs: ARRIVED + 3_000, ...over };
}

describe('wechatProgressPolicy', () => {
  const policy = wechatProgressPolicy(CFG);

  it('does not write a short partial answer early in the window, when only a whole page can be shown', () => {
    const due = policy.due(state({ answer: 'a'.repeat(499), nowMs: ARRIVED + 8_000, writtenAtMs: ARRIVED + 1_000 }));

    expect(due).toBe(false);
  });

  it('writes once a quarter page (500 of 2,000 bytes) more than the record holds has streamed', () => {
    const written = 'a'.repeat(300);

    expect(policy.due(state({ written, answer: written + 'a'.repeat(499) }))).toBe(false);
    expect(policy.due(state({ written, answer: written + 'a'.repeat(500) }))).toBe(true);
  });

  it('measures the growth in UTF-8 bytes, as WeChat pages are (167 CJK characters are 501 bytes)', () => {
    expect(policy.due(state({ answer: '中'.repeat(166) }))).toBe(false);
    expect(policy.due(state({ answer: '中'.repeat(167) }))).toBe(true);
  });

  it('measures a replaced answer (not an extension of what was written) against the written length', () => {
    const written = 'a'.repeat(600);

    expect(policy.due(state({ written, answer: 'b'.repeat(1099) }))).toBe(false);
    expect(policy.due(state({ written, answer: 'b'.repeat(1100) }))).toBe(true);
  });

  it('writes at every flush from 2 s before the last delivery answers to 1 s after', () => {
    const at = (ms: number): boolean => policy.due(state({ nowMs: ARRIVED + ms, writtenAtMs: ARRIVED + ms - 1_000 }));

    expect(at(LAST_DEADLINE_MS - 2_001)).toBe(false);
    expect(at(LAST_DEADLINE_MS - 2_000)).toBe(true);
    expect(at(LAST_DEADLINE_MS)).toBe(true);
    expect(at(LAST_DEADLINE_MS + 1_000)).toBe(true);
  });

  it('after the passive window writes every 3 s, so a "1" shows text at most that old', () => {
    const now = ARRIVED + LAST_DEADLINE_MS + 5_000;

    expect(policy.due(state({ nowMs: now, writtenAtMs: now - 2_999 }))).toBe(false);
    expect(policy.due(state({ nowMs: now, writtenAtMs: now - 3_000 }))).toBe(true);
  });

  it('follows the account: with 2 deliveries and a 3 s wait the deadline is at 8 s', () => {
    const short = wechatProgressPolicy({ pageBytes: 2000, deliveries: 2, replyWaitMs: 3000 });

    expect(short.due(state({ nowMs: ARRIVED + 5_999 }))).toBe(false);
    expect(short.due(state({ nowMs: ARRIVED + 6_000 }))).toBe(true);
  });

  it('writes at every flush with idleMs 0 (a scaled clock whose retries are not 5 s apart)', () => {
    const always = wechatProgressPolicy(CFG, { ...WECHAT_PROGRESS_TIMING, idleMs: 0 });

    expect(always.due(state({ answer: 'a', nowMs: ARRIVED + 10 }))).toBe(true);
  });
});
