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
