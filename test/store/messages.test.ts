/**
 * The message store's failure-path operations on the embedded DynamoDB: lease release,
 * park (conditional on what was read), the `dead` index, replay reset.
 */
import { loadConfig } from '../../lib/config';
import type { Job } from '../../lib/types';
import { createDocumentClient } from '../../lib/store/client';
import { MessageStore } from '../../lib/store/messages';
import { caught } from '../support/caught';
import { startTestStack, type TestStack } from '../../local/stack';

let seq = 0;
function job(arrivedAtMs: number): Job {
  seq += 1;
  return {
    v: 1,
    channel: 'wechat',
    userId: `oStoreUser${seq}`,
    msgKey: `9000${seq}`,
    conversationKey: `wechat#oStoreUser${seq}`,
    input: { kind: 'text', text: 'q' },
    reply: { channel: 'wechat', accountId: 'gh_x' },
    arrivedAtMs,
  };
}

describe('MessageStore failure paths', () => {
  let stack: TestStack;
  let store: MessageStore;
  const now = Date.now();

  beforeAll(async () => {
    stack = await startTestStack();
    store = new MessageStore(createDocumentClient(loadConfig(stack.env).aws), stack.tableName);
  });

  afterAll(async () => {
    await stack.stop();
  });

  it('peek reads the record with an eventually consistent read, half the units of get', async () => {
    // Arrange: a record, and a client that reports consumed capacity.
    const j = job(now);
    await store.claim(j, now);
    await store.startAnswer(j, now, 120_000);
    await store.saveProgress(j, 'partial answer', now + 1);
    const units: number[] = [];
    const db = createDocumentClient(loadConfig(stack.env).aws);
    db.middlewareStack.add(
      (next) => async (args) => {
        const input: unknown = args.input;
        if (typeof input === 'object' && input !== null) Object.assign(input, { ReturnConsumedCapacity: 'TOTAL' });
        const out = await next(args);
        const body: unknown = out.output;
        if (typeof body === 'object' && body !== null && 'ConsumedCapacity' in body) {
          const cc: unknown = body.ConsumedCapacity;
          if (typeof cc === 'object' && cc !== null && 'CapacityUnits' in cc && typeof cc.CapacityUnits === 'number') units.push(cc.CapacityUnits);
        }
        return out;
      },
      { step: 'initialize', name: 'capacity' },
    );
    const metered = new MessageStore(db, stack.tableName);
    // Act
    const peeked = await metered.peek(j, now + 2);
    const got = await metered.get(j, now + 2);
    // Assert
    expect(peeked).toEqual(got);
    expect(peeked?.answer).toBe('partial answer');
    expect(units).toEqual([0.5, 1]);
  });

  it('releaseAnswer lets the next worker take over at once, and leaves a record that is not streaming alone', async () => {
    // Arrange
    const j = job(now);
    await store.claim(j, now);
    expect(await store.startAnswer(j, now, 120_000)).toBe(true);
    expect(await store.startAnswer(j, now + 1, 120_000)).toBe(false);
    // Act
    await store.releaseAnswer(j);
    // Assert
    expect(await store.startAnswer(j, now + 2, 120_000)).toBe(true);
    await store.finish(j, 'done', 'done', now + 3);
    await store.releaseAnswer(j);
    expect((await store.get(j, now + 4))?.updatedAtMs).toBe(now + 3);
  });

  it('park refuses a record that changed since it was read', async () => {
    const j = job(now);
    const { record } = await store.claim(j, now);
    await store.recordParts(j, 0, false, now + 5);
    const err = await caught(store.park(record, 'note', 'reason', now + 6));
    expect(err).toMatchObject({ name: 'ConditionalCheckFailedException' });
    expect((await store.get(j, now + 7))?.parked).toBe(false);
  });

  it('lists parked records oldest first; a reset makes one answerable and unpark takes it off the list', async () => {
    // Arrange
    const older = job(now - 2_000);
    const newer = job(now - 1_000);
    for (const j of [newer, older]) {
      const { record } = await store.claim(j, now);
      await store.park(record, 'note', `failed ${j.msgKey}`, now);
    }
    const never = job(now);
    await store.claim(never, now);
    // Act
    const listed = (await store.listParked(now)).map((r) => r.msgKey);
    const reset = await store.resetForReplay((await store.get(older, now)) ?? (await store.claim(older, now)).record, now + 10);
    const stillListed = (await store.listParked(now)).map((r) => r.msgKey);
    await store.unpark(older);
    // Assert
    expect(listed.indexOf(older.msgKey)).toBeLessThan(listed.indexOf(newer.msgKey));
    expect(listed).not.toContain(never.msgKey);
    expect(reset).toMatchObject({ status: 'queued', answer: '', failure: '', pending: true, enqueued: false, deliveredChars: 0 });
    expect(stillListed).toContain(older.msgKey);
    expect((await store.listParked(now)).map((r) => r.msgKey)).not.toContain(older.msgKey);
    const notParked = await store.get(never, now);
    if (!notParked) throw new Error('missing');
    expect(await caught(store.resetForReplay(notParked, now))).toMatchObject({ name: 'ConditionalCheckFailedException' });
  });
});
