/**
 * Message records: one item per inbound user message, claimed by the ingress with a
 * conditional put (the dedupe key) and grown by the worker as the answer streams.
 *
 * Keys: pk = `user#{channel}#{userId}`, sk = `msg#{msgKey}`. While an answer is not fully
 * delivered the item carries `pendingPk`/`pendingSk`, which puts it in the sparse GSI
 * `pending`, ordered by arrival: the "reply 1" fetch and "older answers first" read it.
 *
 * A job that kept failing is parked on its record: `status: 'failed'`, the reason in
 * `failure`, and `deadPk`/`deadSk` put it in the sparse GSI `dead`, where
 * `npm run dlq -- list|replay` finds it (lib/core/dead-letters.ts owns that lifecycle).
 */
import { GetCommand, PutCommand, QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { ChannelName, Job } from '../types';
import { isConditionFailure, ttlSec } from './client';
import { formatNote, NO_NOTE, type RecordNote } from './notes';
import { DEAD_PK, deadSkOf, MESSAGE_TTL_DAYS, pendingSkOf, pkOf, skOf, strField, toRecord, type MessageKey, type MessageRecord } from './message-record';

export { MESSAGE_TTL_DAYS, messageItemKey, SERVED_FOR_PREFIX, isJob, toRecord, type AnswerStatus, type DeliveryOwner, type MessageKey, type MessageRecord } from './message-record';

/** Result of claiming an inbound message's dedupe key. */
export type ClaimResult = { created: true; record: MessageRecord } | { created: false; record: MessageRecord };

/**
 * DynamoDB access for message records. All writes that could race (claim, delivery,
 * page cursor) are conditional, so at-least-once callers stay exactly-once for the user.
 */
export class MessageStore {
  constructor(
    private readonly db: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  private key(k: MessageKey): { pk: string; sk: string } {
    return { pk: pkOf(k), sk: skOf(k.msgKey) };
  }

  /**
   * Claims the message's dedupe key. The first delivery creates the record; a redelivery
   * (same key, any instance) gets the stored record back with `deliveries` counted up.
   */
  async claim(job: Job, nowMs: number, opts: { pending?: boolean; note?: RecordNote } = {}): Promise<ClaimResult> {
    const k: MessageKey = { channel: job.channel, userId: job.userId, msgKey: job.msgKey };
    const pending = opts.pending ?? true;
    const item = {
      ...this.key(k),
      channel: job.channel,
      userId: job.userId,
      msgKey: job.msgKey,
      conversationKey: job.conversationKey,
      arrivedAtMs: job.arrivedAtMs,
      status: 'queued',
      answer: '',
      deliveredChars: 0,
      deliveredParts: 0,
      deliveries: 1,
      enqueued: false,
      job,
      note: formatNote(opts.note ?? NO_NOTE),
      servedText: '',
      updatedAtMs: nowMs,
      expiresAtSec: ttlSec(nowMs, MESSAGE_TTL_DAYS),
      ...(pending ? { pendingPk: pkOf(k), pendingSk: pendingSkOf(job.arrivedAtMs, job.msgKey) } : {}),
    };
    try {
      await this.db.send(
        new PutCommand({
          TableName: this.tableName,
          Item: item,
          // An expired-but-not-yet-deleted record may be claimed again.
          ConditionExpression: 'attribute_not_exists(pk) OR expiresAtSec < :nowSec',
          ExpressionAttributeValues: { ':nowSec': Math.floor(nowMs / 1000) },
        }),
      );
      const record = toRecord(item, nowMs);
      if (!record) throw new Error('claimed record failed validation');
      return { created: true, record };
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
    }
    const res = await this.db.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: this.key(k),
        UpdateExpression: 'ADD deliveries :one',
        ConditionExpression: 'attribute_exists(pk)',
        ExpressionAttributeValues: { ':one': 1 },
        ReturnValues: 'ALL_NEW',
      }),
    );
    const record = toRecord(res.Attributes, nowMs);
    if (!record) throw new Error(`message record ${k.msgKey} is unreadable`);
    return { created: false, record };
  }

  /** Reads a record with a strongly consistent read. */
  get(k: MessageKey, nowMs: number): Promise<MessageRecord | undefined> {
    return this.read(k, nowMs, true);
  }

  /**
   * Reads a record with an eventually consistent read, for polls that only watch for a change
   * and decide on a consistent read afterwards. It costs half a read unit per 4 KB instead of
   * one (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html)
   * and may miss a write of the last moments, which the next poll sees.
   */
  peek(k: MessageKey, nowMs: number): Promise<MessageRecord | undefined> {
    return this.read(k, nowMs, false);
  }

  private async read(k: MessageKey, nowMs: number, consistent: boolean): Promise<MessageRecord | undefined> {
    const res = await this.db.send(new GetCommand({ TableName: this.tableName, Key: this.key(k), ConsistentRead: consistent }));
    return toRecord(res.Item, nowMs);
  }

  /** Notes that the job is on the queue. */
  async markEnqueued(k: MessageKey): Promise<void> {
    await this.db.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: this.key(k),
        UpdateExpression: 'SET enqueued = :t',
        ConditionExpression: 'attribute_exists(pk)',
        ExpressionAttributeValues: { ':t': true },
      }),
    );
  }

  /**
   * Claims the generation of the answer: from `queued`, or from a `streaming` record whose
   * worker has gone quiet for `leaseMs` (it died; SQS redelivered the job). Returns false
   * while another worker is still streaming it, so two invocations never write one answer.
   */
  async startAnswer(k: MessageKey, nowMs: number, leaseMs: number): Promise<boolean> {
    try {
      await this.db.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: this.key(k),
          UpdateExpression: 'SET #s = :streaming, answer = :empty, updatedAtMs = :now',
          // A stale takeover only while nothing was shown: resetting shown text would skip or repeat pages.
          ConditionExpression: 'attribute_exists(pk) AND (#s = :queued OR (#s = :streaming AND updatedAtMs < :stale AND deliveredChars = :zero))',
          ExpressionAttributeNames: { '#s': 'status' },
          ExpressionAttributeValues: { ':streaming': 'streaming', ':empty': '', ':now': nowMs, ':queued': 'queued', ':stale': nowMs - leaseMs, ':zero': 0 },
        }),
      );
      return true;
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
  }

  /** Keeps a generation's lease alive while the model has not sent text yet. */
  async touch(k: MessageKey, nowMs: number): Promise<void> {
    await this.db.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: this.key(k),
        UpdateExpression: 'SET updatedAtMs = :now',
        ConditionExpression: 'attribute_exists(pk) AND #s = :streaming',
        ExpressionAttributeNames: { '#s': 'status' },
        ExpressionAttributeValues: { ':now': nowMs, ':streaming': 'streaming' },
      }),
    );
  }

  /** Stores the answer so far while streaming (a waiting ingress or "reply 1" can show it). */
  async saveProgress(k: MessageKey, answer: string, nowMs: number): Promise<void> {
    await this.db.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: this.key(k),
        UpdateExpression: 'SET answer = :a, updatedAtMs = :now',
        ConditionExpression: 'attribute_exists(pk) AND #s = :streaming',
        ExpressionAttributeNames: { '#s': 'status' },
        ExpressionAttributeValues: { ':a': answer, ':now': nowMs, ':streaming': 'streaming' },
      }),
    );
  }

  /**
   * Stores the final answer. `pending` false takes the record out of the pending index
   * at once (answers that need no delivery, e.g. `forget`).
   */
  async finish(k: MessageKey, answer: string, status: 'done' | 'failed', nowMs: number, note: RecordNote = NO_NOTE): Promise<MessageRecord> {
    const res = await this.db.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: this.key(k),
        // A replayed job that is answered leaves the dead-letter index.
        UpdateExpression: `SET #s = :status, answer = :a, updatedAtMs = :now, note = :note${status === 'done' ? ' REMOVE deadPk, deadSk' : ''}`,
        ConditionExpression: 'attribute_exists(pk)',
        ExpressionAttributeNames: { '#s': 'status' },
        ExpressionAttributeValues: { ':status': status, ':a': answer, ':now': nowMs, ':note': formatNote(note) },
        ReturnValues: 'ALL_NEW',
      }),
    );
    const record = toRecord(res.Attributes, nowMs);
    if (!record) throw new Error(`message record ${k.msgKey} is unreadable`);
    return record;
  }

  /** Records that `parts` parts of a multi-part outbound answer are delivered. */
  async recordParts(k: MessageKey, parts: number, complete: boolean, nowMs: number, note: RecordNote = NO_NOTE): Promise<void> {
    await this.db.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: this.key(k),
        UpdateExpression: complete
          ? 'SET deliveredParts = :p, updatedAtMs = :now, note = :note REMOVE pendingPk, pendingSk'
          : 'SET deliveredParts = :p, updatedAtMs = :now, note = :note',
        ConditionExpression: 'attribute_exists(pk)',
        ExpressionAttributeValues: { ':p': parts, ':now': nowMs, ':note': formatNote(note) },
      }),
    );
  }

  /** Takes a record out of the pending index without delivering (e.g. unsubscribe). */
  async dropPending(k: MessageKey, nowMs: number): Promise<void> {
    await this.db.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: this.key(k),
        UpdateExpression: 'SET updatedAtMs = :now REMOVE pendingPk, pendingSk',
        ConditionExpression: 'attribute_exists(pk)',
        ExpressionAttributeValues: { ':now': nowMs },
      }),
    );
  }

  /**
   * Gives up a generation this invocation holds (it failed): the lease is dated back so
   * the next receive of the job takes over at once instead of waiting out `leaseMs`.
   */
  async releaseAnswer(k: MessageKey): Promise<void> {
    try {
      await this.db.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: this.key(k),
          UpdateExpression: 'SET updatedAtMs = :zero',
          ConditionExpression: 'attribute_exists(pk) AND #s = :streaming',
          ExpressionAttributeNames: { '#s': 'status' },
          ExpressionAttributeValues: { ':zero': 0, ':streaming': 'streaming' },
        }),
      );
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
    }
  }

  /**
   * Parks a job that kept failing: `status: 'failed'` with `text` as the answer (what the
   * user is told), the reason in `failure`, and the record in the `dead` index for replay.
   * Conditional on the record being as `seen` (same `updatedAtMs`), so a worker that is
   * still streaming it (fresh lease) or wrote since is never overwritten: that throws
   * and the caller retries later.
   */
  async park(seen: MessageRecord, text: string, reason: string, nowMs: number): Promise<MessageRecord> {
    const res = await this.db.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: this.key(seen),
        UpdateExpression: 'SET #s = :failed, answer = :a, failure = :reason, deadPk = :deadPk, deadSk = :deadSk, updatedAtMs = :now',
        ConditionExpression: 'attribute_exists(pk) AND updatedAtMs = :seen',
        ExpressionAttributeNames: { '#s': 'status' },
        ExpressionAttributeValues: {
          ':failed': 'failed',
          ':a': text,
          ':reason': reason,
          ':deadPk': DEAD_PK,
          ':deadSk': deadSkOf(seen, seen.arrivedAtMs),
          ':now': nowMs,
          ':seen': seen.updatedAtMs,
        },
        ReturnValues: 'ALL_NEW',
      }),
    );
    const record = toRecord(res.Attributes, nowMs);
    if (!record) throw new Error(`message record ${seen.msgKey} is unreadable`);
    return record;
  }

  /** Every parked job (the `dead` index), oldest arrival first. */
  async listParked(nowMs: number): Promise<MessageRecord[]> {
    const out: MessageRecord[] = [];
    let startKey: Record<string, unknown> | undefined;
    do {
      const res = await this.db.send(
        new QueryCommand({
          TableName: this.tableName,
          IndexName: 'dead',
          KeyConditionExpression: 'deadPk = :pk',
          ExpressionAttributeValues: { ':pk': DEAD_PK },
          ...(startKey ? { ExclusiveStartKey: startKey } : {}),
        }),
      );
      for (const item of res.Items ?? []) {
        const rec = toRecord(item, nowMs);
        if (rec) out.push(rec);
      }
      startKey = res.LastEvaluatedKey;
    } while (startKey);
    return out;
  }

  /**
   * Makes a parked record answerable again (replay): back to `queued` with nothing
   * generated or delivered, in the pending index, TTL renewed. It stays in the `dead`
   * index until {@link unpark}, so a replay that fails to enqueue is still listed.
   */
  async resetForReplay(parked: MessageRecord, nowMs: number): Promise<MessageRecord> {
    const res = await this.db.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: this.key(parked),
        UpdateExpression:
          'SET #s = :queued, answer = :empty, deliveredChars = :zero, deliveredParts = :zero, enqueued = :false, servedText = :empty, note = :empty, failure = :empty, ' +
          'pendingPk = :pendingPk, pendingSk = :pendingSk, updatedAtMs = :now, expiresAtSec = :exp REMOVE deliveryOwner',
        ConditionExpression: 'attribute_exists(pk) AND attribute_exists(deadPk)',
        ExpressionAttributeNames: { '#s': 'status' },
        ExpressionAttributeValues: {
          ':queued': 'queued',
          ':empty': '',
          ':zero': 0,
          ':false': false,
          ':pendingPk': pkOf(parked),
          ':pendingSk': pendingSkOf(parked.arrivedAtMs, parked.msgKey),
          ':now': nowMs,
          ':exp': ttlSec(nowMs, MESSAGE_TTL_DAYS),
        },
        ReturnValues: 'ALL_NEW',
      }),
    );
    const record = toRecord(res.Attributes, nowMs);
    if (!record) throw new Error(`message record ${parked.msgKey} is unreadable`);
    return record;
  }

  /** Takes a record out of the `dead` index (its replay is on the queue). */
  async unpark(k: MessageKey): Promise<void> {
    await this.db.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: this.key(k),
        UpdateExpression: 'REMOVE deadPk, deadSk',
        ConditionExpression: 'attribute_exists(pk)',
      }),
    );
  }

  /**
   * The keys of the user's answers that are not fully delivered, oldest first, from the
   * `pending` index. The index projects keys only (lib/infra/table.json): every write of a
   * pending message (the growing answer, each delivery step) is copied into the index, and a
   * copy of the keys costs one write unit where a copy of the whole item costs one per KB
   * (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/GSI.html#GSI.Projections).
   * The index is eventually consistent: read each record consistently before use.
   */
  async listPendingKeys(channel: ChannelName, userId: string, limit = 20): Promise<MessageKey[]> {
    const res = await this.db.send(
      new QueryCommand({
        TableName: this.tableName,
        IndexName: 'pending',
        KeyConditionExpression: 'pendingPk = :pk',
        ExpressionAttributeValues: { ':pk': pkOf({ channel, userId }) },
        ScanIndexForward: true,
        Limit: limit,
      }),
    );
    const out: MessageKey[] = [];
    for (const item of res.Items ?? []) {
      // pendingSk is `<arrivedAtMs>#<msgKey>` (pendingSkOf).
      const sk = strField(item, 'pendingSk');
      const hash = sk.indexOf('#');
      if (hash > 0) out.push({ channel, userId, msgKey: sk.slice(hash + 1) });
    }
    return out;
  }

  /**
   * The user's answers that are not fully delivered, oldest first: the keys from the index,
   * each record read consistently (those delivered meanwhile are left out).
   */
  async listPending(channel: ChannelName, userId: string, nowMs: number, limit = 20): Promise<MessageRecord[]> {
    const keys = await this.listPendingKeys(channel, userId, limit);
    const records = await Promise.all(keys.map((k) => this.get(k, nowMs)));
    return records.filter((rec): rec is MessageRecord => rec !== undefined && rec.pending);
  }
}
