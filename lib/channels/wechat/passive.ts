/**
 * Passive-reply delivery for WeChat: every inbound request is one chance to show the
 * user one page (WeChat allows exactly one passive reply per request, about 2,048 UTF-8
 * bytes). Pages come from the user's oldest undelivered answer first, so a new question
 * never jumps ahead of an older answer, and the page cursor is advanced with a
 * conditional write so two live requests never show the same page twice.
 */
import type { Clock } from '../../core/types';
import type { MessageKey, MessageRecord, MessageStore } from '../../store/messages';
import { takePage, utf8Length } from './pages';

/** What page delivery needs. */
export interface PageDeps {
  messages: MessageStore;
  clock: Clock;
  /** Page budget in UTF-8 bytes, including the trailing note. */
  pageBytes: number;
  /** The "reply 1" keyword. */
  fetchKeyword: string;
  /** How often a waiting request re-reads the store. */
  pollMs: number;
}

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

/**
 * `ready`: only a page that will not change: from a finished answer, or a full page
 * of an answer still streaming. `partial`: whatever unseen text exists (last chance).
 */
export type PageMode = 'ready' | 'partial';

/** Outcome of one attempt to take a page. */
export type PageOutcome =
  | { kind: 'page'; text: string; record: MessageRecord; complete: boolean }
  | { kind: 'wait'; head: MessageRecord }
  | { kind: 'raced' }
  | { kind: 'nothing-pending' };

function isFinished(rec: MessageRecord): boolean {
  return rec.status === 'done' || rec.status === 'failed';
}

/**
 * Takes the next page of the user's oldest pending answer, if one is available in
 * `mode`. Only the head of the queue is ever shown, to keep answers in order.
 */
export async function takeNextPage(
  deps: PageDeps,
  channel: MessageRecord['channel'],
  userId: string,
  mode: PageMode,
  opts: { reserveBytes?: number; own?: MessageKey } = {},
): Promise<PageOutcome> {
  const now = deps.clock.nowMs();
  const pageBytes = deps.pageBytes - (opts.reserveBytes ?? 0);
  const listed: MessageKey[] = await deps.messages.listPending(channel, userId, now);
  // The index is eventually consistent: a message claimed a moment ago may be missing
  // from it, so the request's own message is always considered (it is the newest).
  if (opts.own && !listed.some((k) => k.msgKey === opts.own?.msgKey)) listed.push(opts.own);
  for (const key of listed) {
    // Confirm with a consistent read.
    const rec = await deps.messages.get(key, now);
    if (!rec?.pending) continue;
    // An answer the customer-service push owns is being sent that way, until the push
    // failed (`push_failed:…`) or used up its 5 messages (`push_quota`): then "1" takes over.
    if (rec.deliveryOwner === 'push' && !rec.note.startsWith('push_')) continue;
    const from = rec.deliveredChars;
    const unseen = rec.answer.slice(from);
    if (isFinished(rec)) {
      if (unseen === '') {
        // Fully shown already (or an empty answer): take it out of the pending queue.
        await deps.messages.advanceCursor(rec, from, from, true, now);
        continue;
      }
      const whole = utf8Length(unseen) <= pageBytes;
      const note = whole ? '' : moreNote(deps.fetchKeyword);
      const page = whole
        ? { page: unseen, nextChar: rec.answer.length }
        : takePage(rec.answer, from, pageBytes - utf8Length(note), { final: true });
      const complete = page.nextChar >= rec.answer.length;
      const won = await deps.messages.advanceCursor(rec, from, page.nextChar, complete, now);
      if (!won) return { kind: 'raced' };
      return { kind: 'page', text: page.page + note, record: rec, complete };
    }
    const note = writingNote(deps.fetchKeyword);
    const budget = pageBytes - utf8Length(note);
    const fullPageReady = utf8Length(unseen) > budget;
    if (!fullPageReady && !(mode === 'partial' && unseen.trim() !== '')) return { kind: 'wait', head: rec };
    const page = takePage(rec.answer, from, budget, { final: false });
    if (page.nextChar <= from) return { kind: 'wait', head: rec };
    const won = await deps.messages.advanceCursor(rec, from, page.nextChar, false, now);
    if (!won) return { kind: 'raced' };
    return { kind: 'page', text: page.page + note, record: rec, complete: false };
  }
  return { kind: 'nothing-pending' };
}

/**
 * Waits until `deadlineMs` for a ready page; at the deadline, with `partialAtDeadline`,
 * settles for what has streamed so far. Returns undefined when there is nothing to show.
 */
export async function waitForPage(
  deps: PageDeps,
  channel: MessageRecord['channel'],
  userId: string,
  deadlineMs: number,
  partialAtDeadline: boolean,
  own?: MessageKey,
): Promise<Extract<PageOutcome, { kind: 'page' }> | undefined> {
  wait: for (;;) {
    const outcome = await takeNextPage(deps, channel, userId, 'ready', { own });
    if (outcome.kind === 'page') return outcome;
    if (outcome.kind === 'raced') continue;
    if (outcome.kind === 'nothing-pending') return undefined;
    // Waiting on the head answer: re-read just that record (one GetItem per poll) until
    // it grows, finishes or moves on, then look at the whole queue again.
    const seen = outcome.head;
    for (;;) {
      const left = deadlineMs - deps.clock.nowMs();
      if (left <= 0) break wait;
      await deps.clock.sleep(Math.min(deps.pollMs, left));
      const now = await deps.messages.get(seen, deps.clock.nowMs());
      if (!now?.pending || now.status !== seen.status || now.answer.length !== seen.answer.length || now.deliveredChars !== seen.deliveredChars) break;
    }
  }
  if (!partialAtDeadline) return undefined;
  for (let tries = 0; tries < 3; tries++) {
    const outcome = await takeNextPage(deps, channel, userId, 'partial', { own });
    if (outcome.kind === 'page') return outcome;
    if (outcome.kind !== 'raced') return undefined;
  }
  return undefined;
}
