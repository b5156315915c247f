/**
 * What a claimed WeChat request is answered with. One signature ({@link Respond}), three
 * policies: passive mode, customer-service mode, and the "reply 1" fetch (both modes).
 * They only read and write through a {@link DeliveryStore} and wait on an injected clock,
 * so they are unit-tested with an in-memory store and a fake clock.
 *
 * WeChat waits 5 s for a response and delivers the same message three times in all,
 * about 5 s apart; a request answered with nothing in time is retried
 * (https://developers.weixin.qq.com/doc/offiaccount/en/Message_Management/Receiving_standard_messages.html).
 * In passive mode each delivery waits for the answer; a non-final delivery with nothing
 * ready lets the 5 s pass on purpose so WeChat retries; the final one answers before
 * its deadline with what has streamed so far and a note to send "1".
 *
 * @module
 */
import type { WeChatConfig } from '../../config';
import type { Job, Log } from '../../types';
import type { MessageKey, MessageRecord } from '../../store/messages';
import type { DeliveryStore } from './delivery';
import { takeNextPage, waitForPage, type PageDeps } from './passive';
import { thinkingText } from './texts';

/** What the policies need. */
export interface RespondDeps extends PageDeps {
  config: WeChatConfig;
  log: Log;
  /** How long a non-final delivery holds the line (past WeChat's 5 s) so WeChat retries. */
  holdMs: number;
}

/** A request whose message is claimed (and, unless it is a fetch, enqueued). */
export interface ClaimedRequest {
  job: Job;
  /** The request's record as the claim returned it (`deliveries` counts this delivery). */
  record: MessageRecord;
  /** Whether this delivery created the record (false: WeChat redelivered it). */
  created: boolean;
  receivedAtMs: number;
}

/** The answer to a request: a text reply, or WeChat's "success" (nothing to show, no retry). */
export type Reply = { kind: 'text'; content: string } | { kind: 'none' };

/** A reply policy. */
export type Respond = (deps: RespondDeps, req: ClaimedRequest) => Promise<Reply>;

/** Put before an answer the customer-service push could not deliver. */
export const PUSH_FAILED_LEAD = '（上一条回答未能及时送达，现补上 · Your previous answer could not be sent earlier; here it is:）\n\n';

const NONE: Reply = { kind: 'none' };
const textReply = (content: string): Reply => ({ kind: 'text', content });

function keyOf(job: Job): MessageKey {
  return { channel: job.channel, userId: job.userId, msgKey: job.msgKey };
}

/** A redelivery proves our earlier reply arrived too late: send the very same reply again. */
async function previousReply(deps: RespondDeps, req: ClaimedRequest): Promise<Reply | undefined> {
  if (req.created) return undefined;
  const served = await deps.delivery.servedReply(req.record, deps.clock.nowMs());
  return served === undefined ? undefined : textReply(served);
}

/** Whether a "1" is a fetch: a redelivery of a fetch, or a new "1" while an answer is pending. */
export async function isFetch(delivery: DeliveryStore, job: Job, nowMs: number): Promise<boolean> {
  const existing = await delivery.get(keyOf(job), nowMs);
  if (existing) return existing.note.kind === 'fetch';
  return (await delivery.listPendingKeys('wechat', job.userId, 1)).length > 0;
}

/**
 * "Reply 1": the next page of the oldest undelivered answer. The "1" is claimed like any
 * message (not queued), so a WeChat retry of it resends the same page instead of skipping one.
 */
export const respondFetch: Respond = async (deps, req) => {
  const again = await previousReply(deps, req);
  if (again) return again;
  const own = keyOf(req.job);
  const page = await waitForPage(deps, req.job.userId, req.receivedAtMs + deps.config.replyWaitMs, true, { request: own });
  if (page !== undefined) return textReply(page);
  const thinking = thinkingText(deps.config.fetchKeyword);
  await deps.delivery.recordServed(own, thinking, deps.clock.nowMs());
  return textReply(thinking);
};

/** Passive mode: wait for a page of the oldest pending answer; hold the line for a retry, or say "still thinking" on the last delivery. */
export const respondPassive: Respond = async (deps, req) => {
  if (req.job.input.kind === 'forget') return NONE;
  const again = await previousReply(deps, req);
  if (again) return again;
  const own = keyOf(req.job);
  const attempt = req.record.deliveries;
  const last = attempt >= deps.config.deliveries;
  const page = await waitForPage(deps, req.job.userId, req.receivedAtMs + deps.config.replyWaitMs, last, { request: own, own });
  if (page !== undefined) return textReply(page);
  // Its answer was already shown through another request (a "1" or a later message).
  if (!(await deps.delivery.get(own, deps.clock.nowMs()))?.pending) return NONE;
  if (last) {
    const thinking = thinkingText(deps.config.fetchKeyword);
    await deps.delivery.recordServed(own, thinking, deps.clock.nowMs());
    return textReply(thinking);
  }
  // Not the last delivery and nothing ready: hold the line past WeChat's 5 s so it
  // retries; this response is never read. Nothing was shown, so nothing is lost.
  await deps.clock.sleep(req.receivedAtMs + deps.holdMs - deps.clock.nowMs());
  deps.log.info('wechat delivery held for a retry', { msgKey: req.job.msgKey, attempt });
  return NONE;
};

/**
 * Customer-service mode: answer passively if the whole answer is ready within
 * `csPassiveWaitMs` (it costs no quota), else acknowledge and let the worker push it.
 * The delivery is claimed with a conditional write, so exactly one path sends it.
 */
export const respondCustomerService: Respond = async (deps, req) => {
  if (req.job.input.kind === 'forget') return NONE;
  const again = await previousReply(deps, req);
  if (again) return again;
  const own = keyOf(req.job);
  // An older answer the push could not deliver (45015/45047/48001) goes first, passively,
  // and the user is told once why it comes now.
  const older = await deps.delivery.listPending('wechat', req.job.userId, deps.clock.nowMs());
  const failed = older.find((rec) => rec.msgKey !== own.msgKey && rec.note.kind === 'push_failed');
  if (failed && failed.note.kind === 'push_failed') {
    const note = failed.note;
    const lead = note.told ? '' : PUSH_FAILED_LEAD;
    const page = await takeNextPage(deps, req.job.userId, 'ready', { request: own, lead });
    if (page.kind === 'page') {
      if (lead !== '' && !page.complete && page.record.msgKey === failed.msgKey) await deps.delivery.markFailureTold(failed, note, deps.clock.nowMs());
      return textReply(page.reply);
    }
  }
  const deadline = req.receivedAtMs + deps.config.csPassiveWaitMs;
  for (;;) {
    const rec = await deps.delivery.get(own, deps.clock.nowMs());
    if (!rec) return NONE;
    if (rec.status === 'done' || rec.status === 'failed') {
      const fits = Buffer.byteLength(rec.answer, 'utf8') <= deps.pageBytes;
      if (fits && rec.deliveryOwner === undefined && (await deps.delivery.claimDelivery(own, 'passive', deps.clock.nowMs()))) {
        const shown = await deps.delivery.showPage(
          { answer: rec, fromChars: rec.deliveredChars, toChars: rec.answer.length, complete: true, request: own, reply: rec.answer },
          deps.clock.nowMs(),
        );
        if (shown) return textReply(rec.answer);
      }
      return NONE;
    }
    const left = deadline - deps.clock.nowMs();
    if (left <= 0) return NONE;
    await deps.clock.sleep(Math.min(deps.pollMs, left));
  }
};
