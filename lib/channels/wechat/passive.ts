/**
 * Passive-reply delivery for WeChat: every inbound request is one chance to show the
 * user one page (WeChat allows exactly one passive reply per request, about 2,048 UTF-8
 * bytes). Pages come from the user's oldest undelivered answer first, so a new question
 * never jumps ahead of an older answer, and the page cursor is advanced with a
 * conditional write so two live requests never show the same page twice.
 *
 * A head that cannot move does not hold the user: a `failed` answer is shown like a
 * finished one (its text is the worker's note to the user) or closed when empty, and a
 * job with no progress for `failedJobHoldMs` is passed over, so later answers proceed.
 */
import type { Clock } from '../../types';
import type { MessageKey, MessageRecord } from '../../store/messages';
import { pushGaveUp, type DeliveryStore } from './delivery';
import { takePage, utf8Length } from './pages';
import { moreNote, writingNote } from './texts';

/** What page delivery needs. */
export interface PageDeps {
  delivery: DeliveryStore;
  clock: Clock;
  /** Page budget in UTF-8 bytes, including the trailing note. */
  pageBytes: number;
  /** The "reply 1" keyword. */
  fetchKeyword: string;
  /** How often a waiting request re-reads the store (at first; see {@link pollDelayMs}). */
  pollMs: number;
  /** An unfinished answer with no progress for this long no longer holds later ones (FAILED_JOB_HOLD_SEC). */
  failedJobHoldMs: number;
}

/**
 * `ready`: only a page that will not change: from a finished answer, or a full page
 * of an answer still streaming. `partial`: whatever unseen text exists (last chance).
 */
export type PageMode = 'ready' | 'partial';

/** Outcome of one attempt to take a page. */
export type PageOutcome =
  | { kind: 'page'; reply: string; record: MessageRecord; complete: boolean }
  | { kind: 'wait'; head: MessageRecord }
  | { kind: 'raced' }
  | { kind: 'nothing-pending' };

/** Options of {@link takeNextPage}. */
export interface TakeOptions {
  /** The inbound request whose reply carries the page (recorded with the cursor move). */
  request: MessageKey;
  /** The request's own answer record, considered even when the index has not caught up. */
  own?: MessageKey;
  /** Text put before the page (counted in the page budget). */
  lead?: string;
}

/** How long a waiting request polls at the full pace before it slows down (see {@link pollDelayMs}). */
export const FULL_PACE_POLL_MS = 2_000;

/**
 * The pause before a waiting request's next poll: `pollMs` for its first
 * {@link FULL_PACE_POLL_MS}, so a quick answer shows at once, then 4 × `pollMs`. A later
 * answer shows up to that much later (600 ms in production, while the user has already
 * waited seconds), for about half the reads of a 5 s hold: each poll is a billed read and
 * load on the table that the worker's writes queue behind.
 */
export function pollDelayMs(pollMs: number, waitedMs: number): number {
  return waitedMs < FULL_PACE_POLL_MS ? pollMs : 4 * pollMs;
}

function isFinished(rec: MessageRecord): boolean {
  return rec.status === 'done' || rec.status === 'failed';
}

/** An unfinished answer whose job has not moved for the hold time: it must not block the user. */
export function isStale(rec: MessageRecord, nowMs: number, holdMs: number): boolean {
  return !isFinished(rec) && nowMs - rec.updatedAtMs > holdMs;
}

/**
 * Takes the next page of the user's oldest pending answer, if one is available in
 * `mode`. Only the head of the queue is ever shown, to keep answers in order.
 */
export async function takeNextPage(deps: PageDeps, userId: string, mode: PageMode, opts: TakeOptions): Promise<PageOutcome> {
  const now = deps.clock.nowMs();
  const lead = opts.lead ?? '';
  const pageBytes = deps.pageBytes - utf8Length(lead);
  const listed: MessageKey[] = await deps.delivery.listPendingKeys('wechat', userId);
  // The index is eventually consistent: a message claimed a moment ago may be missing
  // from it, so the request's own message is always considered (it is the newest).
  if (opts.own && !listed.some((k) => k.msgKey === opts.own?.msgKey)) listed.push(opts.own);
  const show = async (rec: MessageRecord, from: number, to: number, complete: boolean, reply: string): Promise<PageOutcome> => {
    if (rec.msgKey !== opts.request.msgKey) await deps.delivery.pointAt(opts.request, rec.msgKey, now);
    const won = await deps.delivery.showPage({ answer: rec, fromChars: from, toChars: to, complete, request: opts.request, reply }, now);
    return won ? { kind: 'page', reply, record: rec, complete } : { kind: 'raced' };
  };
  for (const key of listed) {
    // Confirm with a consistent read.
    const rec = await deps.delivery.get(key, now);
    if (!rec?.pending) continue;
    // An answer the customer-service push owns is being sent that way, until the push
    // failed or used up its 5 messages: then "1" takes over.
    if (rec.deliveryOwner === 'push' && !pushGaveUp(rec.note)) continue;
    const from = rec.deliveredChars;
    const unseen = rec.answer.slice(from);
    if (isFinished(rec)) {
      if (unseen === '') {
        // Fully shown already (or an empty answer, e.g. a failed job with nothing to say).
        await deps.delivery.closeShown(rec, now);
        continue;
      }
      const whole = utf8Length(unseen) <= pageBytes;
      const note = whole ? '' : moreNote(deps.fetchKeyword);
      const page = whole
        ? { page: unseen, nextChar: rec.answer.length }
        : takePage(rec.answer, from, pageBytes - utf8Length(note), { final: true });
      return show(rec, from, page.nextChar, page.nextChar >= rec.answer.length, lead + page.page + note);
    }
    // A job that stopped moving (failing, parked in the dead-letter queue) is passed over.
    if (isStale(rec, now, deps.failedJobHoldMs)) continue;
    const note = writingNote(deps.fetchKeyword);
    const budget = pageBytes - utf8Length(note);
    const fullPageReady = utf8Length(unseen) > budget;
    if (!fullPageReady && !(mode === 'partial' && unseen.trim() !== '')) return { kind: 'wait', head: rec };
    const page = takePage(rec.answer, from, budget, { final: false });
    if (page.nextChar <= from) return { kind: 'wait', head: rec };
    return show(rec, from, page.nextChar, false, lead + page.page + note);
  }
  return { kind: 'nothing-pending' };
}

/**
 * Waits until `deadlineMs` for a ready page; at the deadline, with `partialAtDeadline`,
 * settles for what has streamed so far. Returns the reply, or undefined when there is
 * nothing to show.
 */
export async function waitForPage(deps: PageDeps, userId: string, deadlineMs: number, partialAtDeadline: boolean, opts: TakeOptions): Promise<string | undefined> {
  /** After a lost race: a concurrent copy of this very request may have been answered. */
  const alreadyServed = async (): Promise<string | undefined> => {
    const req = await deps.delivery.get(opts.request, deps.clock.nowMs());
    return req ? deps.delivery.servedReply(req, deps.clock.nowMs()) : undefined;
  };
  const startedMs = deps.clock.nowMs();
  wait: for (;;) {
    const outcome = await takeNextPage(deps, userId, 'ready', opts);
    if (outcome.kind === 'page') return outcome.reply;
    if (outcome.kind === 'raced') {
      const served = await alreadyServed();
      if (served !== undefined) return served;
      continue;
    }
    if (outcome.kind === 'nothing-pending') return undefined;
    // Waiting on the head answer: re-read just that record (one eventually consistent GetItem
    // per poll: only a change is looked for here) until it grows, finishes, moves on or goes
    // stale, then look at the whole queue again with consistent reads.
    const seen = outcome.head;
    for (;;) {
      const left = deadlineMs - deps.clock.nowMs();
      if (left <= 0) break wait;
      await deps.clock.sleep(Math.min(pollDelayMs(deps.pollMs, deps.clock.nowMs() - startedMs), left));
      const now = await deps.delivery.peek(seen, deps.clock.nowMs());
      if (!now?.pending || now.status !== seen.status || now.answer.length !== seen.answer.length || now.deliveredChars !== seen.deliveredChars) break;
      if (isStale(now, deps.clock.nowMs(), deps.failedJobHoldMs)) break;
    }
  }
  if (!partialAtDeadline) return undefined;
  for (let tries = 0; tries < 3; tries++) {
    const outcome = await takeNextPage(deps, userId, 'partial', opts);
    if (outcome.kind === 'page') return outcome.reply;
    if (outcome.kind !== 'raced') return undefined;
    const served = await alreadyServed();
    if (served !== undefined) return served;
  }
  return undefined;
}
