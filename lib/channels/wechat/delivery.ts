/**
 * The WeChat delivery state of a message record, and the only code that changes it.
 *
 * One record per inbound message (see store/messages.ts). Its answer side moves through
 * `status` (written by the worker); its delivery side is what this module writes: the
 * page cursor `deliveredChars`, the customer-service `deliveredParts`, the delivery
 * owner, the typed `note`, and the reply each request was answered with.
 *
 * ```text
 *                    claim (ingress)                      claimFetch (ingress, "reply 1")
 *                          │                                         │
 *                          ▼                                         ▼
 *   ┌──────── QUEUED ──▶ STREAMING ──▶ DONE / FAILED          FETCH record: never pending;
 *   │  pending   │ (worker)  │  (worker)    │                 answered with a page of the
 *   │            │           │              │                 oldest pending answer
 *   │            │     showPage (full       │                 (`servedFrom` points there)
 *   │            │     pages while it       │                 or "still thinking"
 *   │            │     streams; partial     │                 (recordServed)
 *   │            │     at a last delivery)  │
 *   │            ▼           ▼              ▼
 *   │     passive mode: showPage … showPage(complete) ──────────────▶ SHOWN (out of `pending`)
 *   │     customer-service mode:
 *   │       claimDelivery('passive') → showPage(complete) ───────────▶ SHOWN
 *   │       claimDelivery('push') → markPushed ×≤5 ──────────────────▶ SHOWN
 *   │                            ├─ markPushFailed → PUSH_FAILED ─┐
 *   │                            └─ markPushQuota  → PUSH_QUOTA  ─┴─▶ showPage ("reply 1" or
 *   │                                                                the next message; the first
 *   │                                                                page after a refusal says
 *   │                                                                why: markFailureTold)
 *   └─ no progress for FAILED_JOB_HOLD_SEC (stale), or FAILED with nothing to show:
 *      skipped by the head selection (passive.ts), so later answers are not held.
 * ```
 *
 * Every transition is one conditional write; the conditions are named in {@link Condition}.
 * A page is recorded as served in the same write that moves the cursor (`showPage`), so a
 * failure can neither skip a page nor show one twice; the request that showed it finds
 * it again there when WeChat redelivers (it does so only when our reply came too late).
 *
 * @module
 */
import { GetCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { Job } from '../../types';
import { isConditionFailure } from '../../store/client';
import {
  messageItemKey,
  SERVED_FOR_PREFIX,
  toRecord,
  type ClaimResult,
  type DeliveryOwner,
  type MessageKey,
  type MessageRecord,
  type MessageStore,
} from '../../store/messages';
import { formatNote, type RecordNote } from '../../store/notes';

/** The DynamoDB conditions of the transitions, by what they guard. */
export const Condition = {
  /** The record exists (nothing is written to an expired-and-deleted record). */
  EXISTS: 'attribute_exists(pk)',
  /** Nobody has claimed the delivery of this answer yet (customer-service mode). */
  UNOWNED: 'attribute_exists(pk) AND attribute_not_exists(deliveryOwner)',
  /** The page cursor is where the writer read it: two live requests never show one page twice. */
  CURSOR_AT: 'deliveredChars = :from',
  /** The answer will not change any more, so its last page may close it. */
  FINISHED: '#s IN (:done, :failed)',
  /** This request has not been answered with a page yet (one reply per request). */
  NOT_SERVED: 'attribute_not_exists(#served)',
  /** The request's own record has no reply yet. */
  OWN_NOT_SERVED: '(attribute_not_exists(servedText) OR servedText = :empty)',
  /** The push owns the delivery. */
  PUSH_OWNS: 'deliveryOwner = :push',
} as const;

/** One page to show: where it comes from, what the user sees, and which request shows it. */
export interface PageShow {
  /** The answer record the page is cut from. */
  answer: MessageRecord;
  fromChars: number;
  toChars: number;
  /** The last page: the answer leaves the pending index. */
  complete: boolean;
  /** The inbound request whose reply carries the page. */
  request: MessageKey;
  /** The whole reply (page plus notes), as sent. */
  reply: string;
}

/** What passive and customer-service delivery read and write; in-memory fakes implement it in tests. */
export interface DeliveryStore {
  get(k: MessageKey, nowMs: number): Promise<MessageRecord | undefined>;
  /** An eventually consistent {@link get} for a poll that only watches for a change (half the read units). */
  peek(k: MessageKey, nowMs: number): Promise<MessageRecord | undefined>;
  listPending(channel: 'wechat', userId: string, nowMs: number, limit?: number): Promise<MessageRecord[]>;
  listPendingKeys(channel: 'wechat', userId: string, limit?: number): Promise<MessageKey[]>;
  claimFetch(job: Job, nowMs: number): Promise<ClaimResult>;
  claimDelivery(k: MessageKey, owner: DeliveryOwner, nowMs: number): Promise<boolean>;
  pointAt(request: MessageKey, answerMsgKey: string, nowMs: number): Promise<void>;
  showPage(show: PageShow, nowMs: number): Promise<boolean>;
  closeShown(answer: MessageRecord, nowMs: number): Promise<boolean>;
  recordServed(request: MessageKey, reply: string, nowMs: number): Promise<void>;
  servedReply(request: MessageRecord, nowMs: number): Promise<string | undefined>;
  markPushed(answer: MessageRecord, fromChars: number, toChars: number, complete: boolean, nowMs: number): Promise<boolean>;
  markPushFailed(k: MessageKey, code: string, nowMs: number): Promise<void>;
  markPushQuota(k: MessageKey, nowMs: number): Promise<void>;
  markFailureTold(k: MessageKey, note: Extract<RecordNote, { kind: 'push_failed' }>, nowMs: number): Promise<void>;
}

/** Whether a note says the push gave the answer back to "reply 1". */
export function pushGaveUp(note: RecordNote): boolean {
  return note.kind === 'push_failed' || note.kind === 'push_quota';
}

/** The attribute a request's page is stored in on the answer record. */
function servedAttribute(answer: MessageKey, request: MessageKey): string {
  return answer.msgKey === request.msgKey ? 'servedText' : `${SERVED_FOR_PREFIX}${request.msgKey}`;
}

/** The WeChat delivery transitions on the message table. */
export class WeChatDelivery implements DeliveryStore {
  constructor(
    private readonly messages: MessageStore,
    private readonly db: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  get(k: MessageKey, nowMs: number): Promise<MessageRecord | undefined> {
    return this.messages.get(k, nowMs);
  }

  peek(k: MessageKey, nowMs: number): Promise<MessageRecord | undefined> {
    return this.messages.peek(k, nowMs);
  }

  listPending(channel: 'wechat', userId: string, nowMs: number, limit?: number): Promise<MessageRecord[]> {
    return this.messages.listPending(channel, userId, nowMs, limit);
  }

  /** The keys only, from the index (each must be read consistently before use). */
  listPendingKeys(channel: 'wechat', userId: string, limit?: number): Promise<MessageKey[]> {
    return this.messages.listPendingKeys(channel, userId, limit);
  }

  /** Claims a "reply 1" request: deduped like any message, never queued, never pending. */
  claimFetch(job: Job, nowMs: number): Promise<ClaimResult> {
    return this.messages.claim(job, nowMs, { pending: false, note: { kind: 'fetch' } });
  }

  /** Claims the delivery of a finished answer for one path; exactly one wins ({@link Condition.UNOWNED}). */
  async claimDelivery(k: MessageKey, owner: DeliveryOwner, nowMs: number): Promise<boolean> {
    return this.conditional({
      Key: messageItemKey(k),
      UpdateExpression: 'SET deliveryOwner = :o, updatedAtMs = :now',
      ConditionExpression: Condition.UNOWNED,
      ExpressionAttributeValues: { ':o': owner, ':now': nowMs },
    });
  }

  /** Notes on a request which answer it is about to take a page of (so a redelivery finds the page). */
  async pointAt(request: MessageKey, answerMsgKey: string, nowMs: number): Promise<void> {
    await this.update({
      Key: messageItemKey(request),
      UpdateExpression: 'SET servedFrom = :a, updatedAtMs = :now',
      ConditionExpression: Condition.EXISTS,
      ExpressionAttributeValues: { ':a': answerMsgKey, ':now': nowMs },
    });
  }

  /**
   * Moves the page cursor and records the page as this request's reply, in one write
   * ({@link Condition.CURSOR_AT}, {@link Condition.NOT_SERVED}, and {@link Condition.FINISHED}
   * for the last page). False when another request moved the cursor first.
   */
  async showPage(show: PageShow, nowMs: number): Promise<boolean> {
    const served = servedAttribute(show.answer, show.request);
    const conditions: string[] = [Condition.CURSOR_AT, served === 'servedText' ? Condition.OWN_NOT_SERVED : Condition.NOT_SERVED];
    if (show.complete) conditions.push(Condition.FINISHED);
    return this.conditional({
      Key: messageItemKey(show.answer),
      UpdateExpression: `SET deliveredChars = :to, #served = :reply, updatedAtMs = :now${show.complete ? ' REMOVE pendingPk, pendingSk' : ''}`,
      ConditionExpression: conditions.join(' AND '),
      ExpressionAttributeNames: { '#served': served, ...(show.complete ? { '#s': 'status' } : {}) },
      ExpressionAttributeValues: {
        ':from': show.fromChars,
        ':to': show.toChars,
        ':reply': show.reply,
        ':now': nowMs,
        ...(served === 'servedText' ? { ':empty': '' } : {}),
        ...(show.complete ? { ':done': 'done', ':failed': 'failed' } : {}),
      },
    });
  }

  /** Takes a finished, fully shown (or empty) answer out of the pending index. */
  async closeShown(answer: MessageRecord, nowMs: number): Promise<boolean> {
    return this.conditional({
      Key: messageItemKey(answer),
      UpdateExpression: 'SET updatedAtMs = :now REMOVE pendingPk, pendingSk',
      ConditionExpression: `${Condition.CURSOR_AT} AND ${Condition.FINISHED}`,
      ExpressionAttributeNames: { '#s': 'status' },
      ExpressionAttributeValues: { ':from': answer.deliveredChars, ':now': nowMs, ':done': 'done', ':failed': 'failed' },
    });
  }

  /** Remembers a reply that is not a page ("still thinking"), so a redelivery resends it. */
  async recordServed(request: MessageKey, reply: string, nowMs: number): Promise<void> {
    await this.update({
      Key: messageItemKey(request),
      UpdateExpression: 'SET servedText = :t, updatedAtMs = :now',
      ConditionExpression: Condition.EXISTS,
      ExpressionAttributeValues: { ':t': reply, ':now': nowMs },
    });
  }

  /** The reply this request was already answered with, if any (its own, or a page stored on the answer it pointed at). */
  async servedReply(request: MessageRecord, nowMs: number): Promise<string | undefined> {
    if (request.servedText !== '') return request.servedText;
    if (request.servedFrom === '') return undefined;
    const res = await this.db.send(
      new GetCommand({ TableName: this.tableName, Key: messageItemKey({ ...request, msgKey: request.servedFrom }), ConsistentRead: true }),
    );
    return toRecord(res.Item, nowMs)?.servedFor[request.msgKey];
  }

  /** One customer-service message sent: cursor and part count move together ({@link Condition.PUSH_OWNS}, {@link Condition.CURSOR_AT}). */
  async markPushed(answer: MessageRecord, fromChars: number, toChars: number, complete: boolean, nowMs: number): Promise<boolean> {
    return this.conditional({
      Key: messageItemKey(answer),
      UpdateExpression: `SET deliveredChars = :to, updatedAtMs = :now ADD deliveredParts :one${complete ? ' REMOVE pendingPk, pendingSk' : ''}`,
      ConditionExpression: `${Condition.PUSH_OWNS} AND ${Condition.CURSOR_AT}`,
      ExpressionAttributeValues: { ':push': 'push', ':from': fromChars, ':to': toChars, ':one': 1, ':now': nowMs },
    });
  }

  /** The push was refused (45015, 45047, 48001, …): the answer waits for "reply 1". */
  async markPushFailed(k: MessageKey, code: string, nowMs: number): Promise<void> {
    await this.setNote(k, { kind: 'push_failed', code, told: false }, nowMs);
  }

  /** The push used its 5 messages: the rest waits for "reply 1". */
  async markPushQuota(k: MessageKey, nowMs: number): Promise<void> {
    await this.setNote(k, { kind: 'push_quota' }, nowMs);
  }

  /** The user has been told why a refused push's answer comes late (said once). */
  async markFailureTold(k: MessageKey, note: Extract<RecordNote, { kind: 'push_failed' }>, nowMs: number): Promise<void> {
    await this.setNote(k, { ...note, told: true }, nowMs);
  }

  private async setNote(k: MessageKey, note: RecordNote, nowMs: number): Promise<void> {
    await this.update({
      Key: messageItemKey(k),
      UpdateExpression: 'SET note = :note, updatedAtMs = :now',
      ConditionExpression: Condition.EXISTS,
      ExpressionAttributeValues: { ':note': formatNote(note), ':now': nowMs },
    });
  }

  private async update(input: Omit<ConstructorParameters<typeof UpdateCommand>[0], 'TableName'>): Promise<void> {
    await this.db.send(new UpdateCommand({ TableName: this.tableName, ...input }));
  }

  /** A conditional update: false when the condition did not hold (lost a race). */
  private async conditional(input: Omit<ConstructorParameters<typeof UpdateCommand>[0], 'TableName'>): Promise<boolean> {
    try {
      await this.update(input);
      return true;
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
  }
}
