/**
 * The message record's shape in the table: its types, keys (item, `pending` and `dead`
 * index keys) and the strict reading of a stored item back into a {@link MessageRecord}.
 * lib/store/messages.ts reads and writes it.
 *
 * @module
 */
import type { ChannelName, Job } from '../types';
import { parseNote, type RecordNote } from './notes';
import { isJsonObject } from '../json';

/** Lifecycle of an answer. */
export type AnswerStatus = 'queued' | 'streaming' | 'done' | 'failed';

/** Which path delivers a finished answer; claimed once with a conditional write. */
export type DeliveryOwner = 'passive' | 'push' | 'fetch';

/** Identifies one message record. */
export interface MessageKey {
  channel: ChannelName;
  userId: string;
  msgKey: string;
}

/** A stored message and its (possibly partial) answer. */
export interface MessageRecord extends MessageKey {
  conversationKey: string;
  arrivedAtMs: number;
  status: AnswerStatus;
  /** The answer so far; grows while `status` is `streaming`. */
  answer: string;
  /** Characters of `answer` already shown to the user (WeChat pages). */
  deliveredChars: number;
  /** Parts already sent by an outbound API (resume point after a failure). */
  deliveredParts: number;
  deliveryOwner: DeliveryOwner | undefined;
  /** Webhook deliveries seen for this message (WeChat retries the same MsgId). */
  deliveries: number;
  /** Set when `npm run dlq -- replay` re-enqueued the job; webhooks do not write it (they enqueue on every delivery of a queued record, lib/core/ingress.ts). */
  enqueued: boolean;
  /** True while the record is in the `pending` index (answer not fully delivered). */
  pending: boolean;
  /** The job, kept so a failed message can be replayed from the record. */
  job: Job;
  /** Why the answer is (not) delivered, or what kind of record this is (see notes.ts). */
  note: RecordNote;
  /**
   * The reply this inbound request was answered with (WeChat passive page). A redelivery
   * of the same message proves that reply never arrived, so it is sent again.
   */
  servedText: string;
  /**
   * WeChat: the answer record (its `msgKey`) this request last tried to take a page of,
   * when that is another record; the page itself is stored there (see {@link servedFor}).
   */
  servedFrom: string;
  /**
   * WeChat: pages of this answer shown as the reply to other requests, by their `msgKey`;
   * written in the same update that moved the page cursor.
   */
  servedFor: Readonly<Record<string, string>>;
  /** Why the job was given up (`status: 'failed'`); '' otherwise. */
  failure: string;
  /** True while the record is in the `dead` index (a parked job waiting for replay). */
  parked: boolean;
  updatedAtMs: number;
}

/** Days a message record (and so its dedupe key) lives: Meta retries for 7 days. */
export const MESSAGE_TTL_DAYS = 8;

export const pkOf = (k: Pick<MessageKey, 'channel' | 'userId'>): string => `user#${k.channel}#${k.userId}`;
export const skOf = (msgKey: string): string => `msg#${msgKey}`;

/** The table key of a message record (for channel modules that write their own conditional updates). */
export function messageItemKey(k: MessageKey): { pk: string; sk: string } {
  return { pk: pkOf(k), sk: skOf(k.msgKey) };
}

/** Prefix of the attributes that hold pages served for other requests (see {@link MessageRecord.servedFor}). */
export const SERVED_FOR_PREFIX = 'servedFor#';
/** Arrival order, then key, so two messages in the same millisecond still sort stably. */
export const pendingSkOf = (arrivedAtMs: number, msgKey: string): string => `${String(arrivedAtMs).padStart(15, '0')}#${msgKey}`;
/** The one partition of the sparse `dead` index: parked jobs are rare, so one partition holds them all. */
export const DEAD_PK = 'dead';
export const deadSkOf = (k: MessageKey, arrivedAtMs: number): string => `${String(arrivedAtMs).padStart(15, '0')}#${k.channel}#${k.userId}#${k.msgKey}`;

export function strField(item: Record<string, unknown>, name: string): string {
  const v = item[name];
  return typeof v === 'string' ? v : '';
}

function numField(item: Record<string, unknown>, name: string): number {
  const v = item[name];
  return typeof v === 'number' ? v : 0;
}

function isStatus(v: unknown): v is AnswerStatus {
  return v === 'queued' || v === 'streaming' || v === 'done' || v === 'failed';
}

function isOwner(v: unknown): v is DeliveryOwner {
  return v === 'passive' || v === 'push' || v === 'fetch';
}

function isChannel(v: unknown): v is ChannelName {
  return v === 'wechat' || v === 'whatsapp' || v === 'twilio';
}

/** Narrows a stored job; records are written only by this module, so this guards against drift. */
export function isJob(value: unknown): value is Job {
  return (
    isJsonObject(value) &&
    value.v === 1 &&
    isChannel(value.channel) &&
    typeof value.userId === 'string' &&
    typeof value.msgKey === 'string' &&
    typeof value.conversationKey === 'string' &&
    isJsonObject(value.input) &&
    typeof value.input.kind === 'string' &&
    isJsonObject(value.reply) &&
    typeof value.reply.channel === 'string' &&
    typeof value.arrivedAtMs === 'number' &&
    (value.replayedAtMs === undefined || typeof value.replayedAtMs === 'number')
  );
}

function servedForOf(item: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(item)) {
    if (name.startsWith(SERVED_FOR_PREFIX) && typeof value === 'string') out[name.slice(SERVED_FOR_PREFIX.length)] = value;
  }
  return out;
}

/** Reads a stored item as a record; undefined when missing, expired or malformed. */
export function toRecord(item: Record<string, unknown> | undefined, nowMs: number): MessageRecord | undefined {
  if (!item) return undefined;
  // TTL deletion lags up to ~2 days: treat expired items as gone
  // (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/howitworks-ttl.html).
  const expires = numField(item, 'expiresAtSec');
  if (expires > 0 && expires * 1000 < nowMs) return undefined;
  const channel = item.channel;
  const status = item.status;
  const job = item.job;
  if (!isChannel(channel) || !isStatus(status) || !isJob(job)) return undefined;
  const owner = item.deliveryOwner;
  return {
    channel,
    userId: strField(item, 'userId'),
    msgKey: strField(item, 'msgKey'),
    conversationKey: strField(item, 'conversationKey'),
    arrivedAtMs: numField(item, 'arrivedAtMs'),
    status,
    answer: strField(item, 'answer'),
    deliveredChars: numField(item, 'deliveredChars'),
    deliveredParts: numField(item, 'deliveredParts'),
    deliveryOwner: isOwner(owner) ? owner : undefined,
    deliveries: numField(item, 'deliveries'),
    enqueued: item.enqueued === true,
    pending: typeof item.pendingPk === 'string',
    job,
    note: parseNote(strField(item, 'note')),
    servedText: strField(item, 'servedText'),
    servedFrom: strField(item, 'servedFrom'),
    servedFor: servedForOf(item),
    failure: strField(item, 'failure'),
    parked: typeof item.deadPk === 'string',
    updatedAtMs: numField(item, 'updatedAtMs'),
  };
}
