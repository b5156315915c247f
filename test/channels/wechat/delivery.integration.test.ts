/**
 * The WeChat delivery transitions and the signature bindings on the embedded DynamoDB:
 * each named condition holds or refuses as documented, and records written by earlier
 * versions (free-text notes) still read as typed notes.
 */
import { PutCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { loadConfig } from '../../../lib/config';
import { WeChatDelivery } from '../../../lib/channels/wechat/delivery';
import { DynamoSignatureBindings } from '../../../lib/channels/wechat/replay';
import type { Job } from '../../../lib/types';
import { createDocumentClient } from '../../../lib/store/client';
import { MessageStore, type MessageKey } from '../../../lib/store/messages';
import { startTestStack, type TestStack } from '../../../local/stack';

const T0 = Date.now();
let seq = 0;

function job(userId: string, arrivedAtMs = T0): Job {
  seq += 1;
  return {
    v: 1,
    channel: 'wechat',
    userId,
    msgKey: `m${seq}`,
    conversationKey: `wechat#${userId}`,
    input: { kind: 'text', text: 'q' },
    reply: { channel: 'wechat', accountId: 'gh_x' },
    arrivedAtMs,
  };
}

describe('WeChatDelivery on DynamoDB', () => {
  let stack: TestStack;
  let db: DynamoDBDocumentClient;
  let tableName: string;
  let messages: MessageStore;
  let delivery: WeChatDelivery;

  beforeAll(async () => {
    stack = await startTestStack();
    const cfg = loadConfig(stack.env);
    db = createDocumentClient(cfg.aws);
    tableName = cfg.aws.tableName;
    messages = new MessageStore(db, tableName);
    delivery = new WeChatDelivery(messages, db, tableName);
  });

  afterAll(async () => {
    await stack.stop();
  });

  /** A claimed message whose answer is `answer` (`done`). */
  async function answered(userId: string, answer: string): Promise<MessageKey> {
    const j = job(userId);
    await messages.claim(j, T0);
    await messages.startAnswer(j, T0, 1000);
    await messages.finish(j, answer, 'done', T0);
    return j;
  }

  it('moves the cursor and records the page in one write; a second request racing from the same cursor loses', async () => {
    // Arrange
    const answer = await answered('o-race', 'first page|second page');
    const rec = await messages.get(answer, T0);
    if (!rec) throw new Error('no record');
    const a = job('o-race');
    const b = job('o-race');
    await messages.claim(a, T0);
    await messages.claim(b, T0);
    // Act
    const wonA = await delivery.showPage({ answer: rec, fromChars: 0, toChars: 11, complete: false, request: a, reply: 'first page' }, T0);
    const wonB = await delivery.showPage({ answer: rec, fromChars: 0, toChars: 11, complete: false, request: b, reply: 'first page' }, T0);
    // Assert
    expect([wonA, wonB]).toEqual([true, false]);
    expect(await messages.get(answer, T0)).toMatchObject({ deliveredChars: 11, pending: true, servedFor: { [a.msgKey]: 'first page' } });
  });

  it('finds a request\'s page on the answer it pointed at (the redelivery path)', async () => {
    const answer = await answered('o-point', 'Whole answer.');
    const rec = await messages.get(answer, T0);
    const req = job('o-point');
    await messages.claim(req, T0);
    if (!rec) throw new Error('no record');
    await delivery.pointAt(req, answer.msgKey, T0);
    await delivery.showPage({ answer: rec, fromChars: 0, toChars: rec.answer.length, complete: true, request: req, reply: 'Whole answer.' }, T0);
    const reqRec = await messages.get(req, T0);
    if (!reqRec) throw new Error('no request record');
    expect(await delivery.servedReply(reqRec, T0)).toBe('Whole answer.');
    expect((await messages.get(answer, T0))?.pending).toBe(false);
  });

  it('finds no earlier reply for a request that pointed at an answer but never moved its cursor', async () => {
    const answer = await answered('o-nopage', 'Answer.');
    const req = job('o-nopage');
    await messages.claim(req, T0);
    await delivery.pointAt(req, answer.msgKey, T0);
    const reqRec = await messages.get(req, T0);
    if (!reqRec) throw new Error('no request record');
    expect(await delivery.servedReply(reqRec, T0)).toBeUndefined();
  });

  it('serves one request only once, even from a moved cursor (NOT_SERVED)', async () => {
    const answer = await answered('o-once', 'aaaa|bbbb');
    const req = job('o-once');
    await messages.claim(req, T0);
    const rec0 = await messages.get(answer, T0);
    if (!rec0) throw new Error('no record');
    expect(await delivery.showPage({ answer: rec0, fromChars: 0, toChars: 5, complete: false, request: req, reply: 'aaaa' }, T0)).toBe(true);
    expect(await delivery.showPage({ answer: rec0, fromChars: 5, toChars: 9, complete: true, request: req, reply: 'bbbb' }, T0)).toBe(false);
  });

  it('closes an answer with its last page only once it is finished (FINISHED)', async () => {
    const j = job('o-unfinished');
    await messages.claim(j, T0);
    await messages.startAnswer(j, T0, 1000);
    await messages.saveProgress(j, 'partial', T0);
    const rec = await messages.get(j, T0);
    if (!rec) throw new Error('no record');
    expect(await delivery.showPage({ answer: rec, fromChars: 0, toChars: 7, complete: true, request: j, reply: 'partial' }, T0)).toBe(false);
    expect(await delivery.showPage({ answer: rec, fromChars: 0, toChars: 7, complete: false, request: j, reply: 'partial' }, T0)).toBe(true);
    expect(await messages.get(j, T0)).toMatchObject({ deliveredChars: 7, servedText: 'partial', pending: true });
  });

  it('closes a failed answer too, so a failed head never loops', async () => {
    const j = job('o-failed');
    await messages.claim(j, T0);
    await messages.finish(j, '', 'failed', T0);
    const rec = await messages.get(j, T0);
    if (!rec) throw new Error('no record');
    expect(await delivery.closeShown(rec, T0)).toBe(true);
    expect((await messages.get(j, T0))?.pending).toBe(false);
  });

  it('lets exactly one path claim the delivery (UNOWNED), and only the push owner move the cursor by pushing', async () => {
    const answer = await answered('o-owner', 'Pushed answer.');
    expect(await delivery.claimDelivery(answer, 'passive', T0)).toBe(true);
    expect(await delivery.claimDelivery(answer, 'push', T0)).toBe(false);
    const rec = await messages.get(answer, T0);
    if (!rec) throw new Error('no record');
    expect(await delivery.markPushed(rec, 0, rec.answer.length, true, T0)).toBe(false);
  });

  it('counts pushed parts with the cursor and records a refused push as a typed note', async () => {
    const answer = await answered('o-push', 'part one part two');
    await delivery.claimDelivery(answer, 'push', T0);
    const rec = await messages.get(answer, T0);
    if (!rec) throw new Error('no record');
    expect(await delivery.markPushed(rec, 0, 9, false, T0)).toBe(true);
    await delivery.markPushFailed(answer, '45047', T0);
    const after = await messages.get(answer, T0);
    expect(after).toMatchObject({ deliveredChars: 9, deliveredParts: 1, note: { kind: 'push_failed', code: '45047', told: false } });
    if (after?.note.kind !== 'push_failed') throw new Error('no note');
    await delivery.markFailureTold(answer, after.note, T0);
    expect((await messages.get(answer, T0))?.note).toEqual({ kind: 'push_failed', code: '45047', told: true });
  });

  it('reads a record written by an earlier version with a free-text note', async () => {
    // Arrange: an item as the previous release stored it (note string, no servedFrom).
    const j = job('o-legacy');
    await messages.claim(j, T0);
    await messages.finish(j, 'old answer', 'done', T0);
    const stored = await messages.get(j, T0);
    if (!stored) throw new Error('no record');
    await db.send(
      new PutCommand({
        TableName: tableName,
        Item: {
          pk: `user#wechat#o-legacy`,
          sk: `msg#${j.msgKey}`,
          channel: 'wechat',
          userId: 'o-legacy',
          msgKey: j.msgKey,
          conversationKey: j.conversationKey,
          arrivedAtMs: T0,
          status: 'done',
          answer: 'old answer',
          deliveredChars: 0,
          deliveredParts: 2,
          deliveryOwner: 'push',
          deliveries: 1,
          enqueued: true,
          job: j,
          note: 'push_failed:48001:told',
          servedText: '',
          updatedAtMs: T0,
          expiresAtSec: Math.floor(T0 / 1000) + 86_400,
          pendingPk: 'user#wechat#o-legacy',
          pendingSk: `${String(T0).padStart(15, '0')}#${j.msgKey}`,
        },
      }),
    );
    // Act
    const rec = await messages.get(j, T0);
    // Assert
    expect(rec).toMatchObject({ note: { kind: 'push_failed', code: '48001', told: true }, servedFrom: '', servedFor: {}, pending: true });
  });
});

describe('DynamoSignatureBindings', () => {
  let stack: TestStack;
  let bindings: DynamoSignatureBindings;

  beforeAll(async () => {
    stack = await startTestStack();
    const cfg = loadConfig(stack.env);
    bindings = new DynamoSignatureBindings(createDocumentClient(cfg.aws), cfg.aws.tableName, 300);
  });

  afterAll(async () => {
    await stack.stop();
  });

  it('binds a (timestamp, nonce) to its first message: the same message again is a redelivery, another is a conflict', async () => {
    const timestampSec = Math.floor(T0 / 1000);
    const binding = { timestamp: String(timestampSec), nonce: '111', timestampSec, messageHash: 'a'.repeat(64) };
    expect(await bindings.bind(binding, T0)).toBe('first');
    expect(await bindings.bind(binding, T0 + 1000)).toBe('same');
    expect(await bindings.bind({ ...binding, messageHash: 'b'.repeat(64) }, T0 + 2000)).toBe('conflict');
    expect(await bindings.bind({ ...binding, nonce: '112', messageHash: 'b'.repeat(64) }, T0 + 2000)).toBe('first');
  });

  it('forgets a binding once its timestamp has left the accepted window', async () => {
    const timestampSec = Math.floor(T0 / 1000) - 1000;
    const binding = { timestamp: String(timestampSec), nonce: '222', timestampSec, messageHash: 'c'.repeat(64) };
    await bindings.bind(binding, timestampSec * 1000);
    expect(await bindings.bind({ ...binding, messageHash: 'd'.repeat(64) }, T0)).toBe('first');
  });
});
