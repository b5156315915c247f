/**
 * An in-memory {@link DeliveryStore} with the same conditions as the DynamoDB one
 * (lib/channels/wechat/delivery.ts), for unit tests of the reply policies. Records are
 * copied in and out, so a policy never sees a later write through an old reference.
 */
import type { DeliveryStore, PageShow } from '../../lib/channels/wechat/delivery';
import type { Job } from '../../lib/types';
import type { ClaimResult, DeliveryOwner, MessageKey, MessageRecord } from '../../lib/store/messages';
import { NO_NOTE, type RecordNote } from '../../lib/store/notes';

function copy(rec: MessageRecord): MessageRecord {
  return { ...rec, servedFor: { ...rec.servedFor } };
}

export class FakeDeliveryStore implements DeliveryStore {
  readonly records = new Map<string, MessageRecord>();
  /** Names of the writes made, in order (for asserting what changed). */
  readonly writes: string[] = [];

  /** Claims like `MessageStore.claim`: creates the record, or counts a redelivery. */
  claim(job: Job, nowMs: number, opts: { pending?: boolean; note?: RecordNote } = {}): ClaimResult {
    const existing = this.records.get(job.msgKey);
    if (existing) {
      existing.deliveries += 1;
      return { created: false, record: copy(existing) };
    }
    const rec: MessageRecord = {
      channel: job.channel,
      userId: job.userId,
      msgKey: job.msgKey,
      conversationKey: job.conversationKey,
      arrivedAtMs: job.arrivedAtMs,
      status: 'queued',
      answer: '',
      deliveredChars: 0,
      deliveredParts: 0,
      deliveryOwner: undefined,
      deliveries: 1,
      enqueued: true,
      pending: opts.pending ?? true,
      job,
      note: opts.note ?? NO_NOTE,
      servedText: '',
      servedFrom: '',
      servedFor: {},
      failure: '',
      parked: false,
      updatedAtMs: nowMs,
    };
    this.records.set(job.msgKey, rec);
    return { created: true, record: copy(rec) };
  }

  /** What the worker does: changes the answer side of a record. */
  answer(msgKey: string, change: Partial<Pick<MessageRecord, 'status' | 'answer' | 'updatedAtMs' | 'note'>>): void {
    const rec = this.records.get(msgKey);
    if (!rec) throw new Error(`no record ${msgKey}`);
    Object.assign(rec, change);
  }

  /** The stored record (a copy). */
  stored(msgKey: string): MessageRecord {
    const rec = this.records.get(msgKey);
    if (!rec) throw new Error(`no record ${msgKey}`);
    return copy(rec);
  }

  async get(k: MessageKey): Promise<MessageRecord | undefined> {
    const rec = this.records.get(k.msgKey);
    return rec ? copy(rec) : undefined;
  }

  /** How many times a poll peeked (each is a billed read in DynamoDB). */
  peeks = 0;

  /** Reads are consistent in memory: a peek is a get. */
  async peek(k: MessageKey): Promise<MessageRecord | undefined> {
    this.peeks += 1;
    return this.get(k);
  }

  async listPending(_channel: 'wechat', userId: string, _nowMs: number, limit = 20): Promise<MessageRecord[]> {
    return [...this.records.values()]
      .filter((r) => r.pending && r.userId === userId)
      .sort((a, b) => a.arrivedAtMs - b.arrivedAtMs || a.msgKey.localeCompare(b.msgKey))
      .slice(0, limit)
      .map(copy);
  }

  async listPendingKeys(channel: 'wechat', userId: string, limit = 20): Promise<MessageKey[]> {
    return (await this.listPending(channel, userId, 0, limit)).map((r) => ({ channel: r.channel, userId: r.userId, msgKey: r.msgKey }));
  }

  async claimFetch(job: Job, nowMs: number): Promise<ClaimResult> {
    this.writes.push('claimFetch');
    return this.claim(job, nowMs, { pending: false, note: { kind: 'fetch' } });
  }

  async claimDelivery(k: MessageKey, owner: DeliveryOwner, _nowMs?: number): Promise<boolean> {
    const rec = this.records.get(k.msgKey);
    if (!rec || rec.deliveryOwner !== undefined) return false;
    rec.deliveryOwner = owner;
    this.writes.push(`claimDelivery:${owner}`);
    return true;
  }

  async pointAt(request: MessageKey, answerMsgKey: string): Promise<void> {
    const rec = this.records.get(request.msgKey);
    if (!rec) throw new Error('conditional check failed');
    rec.servedFrom = answerMsgKey;
    this.writes.push('pointAt');
  }

  async showPage(show: PageShow): Promise<boolean> {
    const rec = this.records.get(show.answer.msgKey);
    if (!rec || rec.deliveredChars !== show.fromChars) return false;
    const own = rec.msgKey === show.request.msgKey;
    if (own ? rec.servedText !== '' : rec.servedFor[show.request.msgKey] !== undefined) return false;
    if (show.complete && rec.status !== 'done' && rec.status !== 'failed') return false;
    rec.deliveredChars = show.toChars;
    if (own) rec.servedText = show.reply;
    else rec.servedFor = { ...rec.servedFor, [show.request.msgKey]: show.reply };
    if (show.complete) rec.pending = false;
    this.writes.push('showPage');
    return true;
  }

  async closeShown(answer: MessageRecord): Promise<boolean> {
    const rec = this.records.get(answer.msgKey);
    if (!rec || rec.deliveredChars !== answer.deliveredChars || (rec.status !== 'done' && rec.status !== 'failed')) return false;
    rec.pending = false;
    this.writes.push('closeShown');
    return true;
  }

  async recordServed(request: MessageKey, reply: string): Promise<void> {
    const rec = this.records.get(request.msgKey);
    if (!rec) throw new Error('conditional check failed');
    rec.servedText = reply;
    this.writes.push('recordServed');
  }

  async servedReply(request: MessageRecord): Promise<string | undefined> {
    if (request.servedText !== '') return request.servedText;
    if (request.servedFrom === '') return undefined;
    return this.records.get(request.servedFrom)?.servedFor[request.msgKey];
  }

  async markPushed(answer: MessageRecord, fromChars: number, toChars: number, complete: boolean): Promise<boolean> {
    const rec = this.records.get(answer.msgKey);
    if (!rec || rec.deliveryOwner !== 'push' || rec.deliveredChars !== fromChars) return false;
    rec.deliveredChars = toChars;
    rec.deliveredParts += 1;
    if (complete) rec.pending = false;
    this.writes.push('markPushed');
    return true;
  }

  async markPushFailed(k: MessageKey, code: string): Promise<void> {
    this.setNote(k, { kind: 'push_failed', code, told: false });
  }

  async markPushQuota(k: MessageKey): Promise<void> {
    this.setNote(k, { kind: 'push_quota' });
  }

  async markFailureTold(k: MessageKey, note: Extract<RecordNote, { kind: 'push_failed' }>): Promise<void> {
    this.setNote(k, { ...note, told: true });
  }

  private setNote(k: MessageKey, note: RecordNote): void {
    const rec = this.records.get(k.msgKey);
    if (!rec) throw new Error('conditional check failed');
    rec.note = note;
    this.writes.push(`note:${note.kind}`);
  }
}
