/**
 * The worker as Lambda runs it, fed by the SQS event-source emulator from the FIFO
 * queue: partial batch failures, per-user ordering, redrive to the DLQ, idempotence.
 */
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import type { Job } from '../../lib/types';
import { deduplicationId, messageGroupId, SqsJobQueue } from '../../lib/queue/jobs';
import { startFakeOpenAi, type FakeOpenAi } from '../fakes/fake-openai';
import { startGateway, type Gateway } from '../../local/gateway';
import { until } from '../support/until';

/** How often the tests look at the message records. */
const POLL_MS = 50;

function job(userId: string, msgKey: string, text: string): Job {
  return {
    v: 1,
    channel: 'wechat',
    userId,
    msgKey,
    conversationKey: `wechat#${userId}`,
    input: { kind: 'text', text },
    reply: { channel: 'wechat', accountId: 'gh_test' },
    arrivedAtMs: Date.now(),
  };
}

describe('worker on the FIFO queue', () => {
  let llm: FakeOpenAi;
  let gw: Gateway;
  let queue: SqsJobQueue;

  beforeAll(async () => {
    llm = await startFakeOpenAi();
    gw = await startGateway({
      env: { OPENAI_API_KEY: 'sk-test', OPENAI_BASE_URL: llm.baseUrl, WECHAT_TOKEN: 't' },
      visibilityTimeoutSec: 1,
      // What SQS redrives is looked at here; the dead-letter function has its own tests.
      deadLetterFunction: false,
    });
    queue = new SqsJobQueue(gw.stack.sqs, gw.stack.queueUrl);
  });

  afterAll(async () => {
    await gw.stop();
    await llm.close();
  });

  it('fails only the broken record and its group, and redrives it to the DLQ intact', async () => {
    // Arrange: a malformed job at the head of user A's group, a good job behind it, and user B.
    const bad = '{"v":1,"channel":"wechat" this is not json';
    await gw.stack.sqs.send(
      new SendMessageCommand({
        QueueUrl: gw.stack.queueUrl,
        MessageBody: bad,
        MessageGroupId: messageGroupId({ channel: 'wechat', userId: 'userA' }),
        MessageDeduplicationId: 'bad-1',
      }),
    );
    const a2 = job('userA', 'a2', 'second from A');
    const b1 = job('userB', 'b1', 'first from B');
    await queue.enqueue(a2);
    await queue.enqueue(b1);

    // Act
    await until(async () => (await gw.messages.get(b1, Date.now()))?.status === 'done', 5000, POLL_MS);
    const aWhileBlocked = await gw.messages.get(a2, Date.now());
    await until(async () => (await gw.messages.get(a2, Date.now()))?.status === 'done', 20000, POLL_MS);
    const dead = await gw.stack.receiveAll(gw.stack.deadLetterQueueUrl);

    // Assert: B was not held up; A's second job waited for the broken one to leave.
    expect(aWhileBlocked?.status ?? 'absent').not.toBe('done');
    expect(dead.map((m) => m.Body)).toEqual([bad]);
    expect(Number(dead[0]?.Attributes?.ApproximateReceiveCount)).toBeGreaterThanOrEqual(5);
    const failures = gw.batches.flatMap((batch) => batch.Records).filter((r) => r.body === bad);
    expect(failures.length).toBeGreaterThanOrEqual(5);
  }, 40000);

  it('does not call the LLM again when a finished job is redelivered', async () => {
    // Arrange
    const j = job('userC', 'c1', 'answer me once');
    await queue.enqueue(j);
    await until(async () => (await gw.messages.get(j, Date.now()))?.status === 'done', 5000, POLL_MS);
    const calls = llm.chatCalls;
    // Act: the same job again, past the FIFO dedup id (as after a visibility timeout).
    await gw.stack.sqs.send(
      new SendMessageCommand({
        QueueUrl: gw.stack.queueUrl,
        MessageBody: JSON.stringify(j),
        MessageGroupId: messageGroupId(j),
        MessageDeduplicationId: `${deduplicationId(j)}-again`,
      }),
    );
    await gw.idle();
    // Assert
    expect(llm.chatCalls).toBe(calls);
    expect((await gw.messages.get(j, Date.now()))?.answer).toBe('Echo: answer me once');
  });

  it('answers one user in order even when the first answer is slow', async () => {
    // Arrange
    llm.answer = (req) => `A:${req.lastUserText}`;
    llm.latencyMs = 300;
    const first = job('userD', 'd1', 'one');
    const second = job('userD', 'd2', 'two');
    // Act
    await queue.enqueue(first);
    await queue.enqueue(second);
    await until(async () => (await gw.messages.get(second, Date.now()))?.status === 'done', 10000, POLL_MS);
    llm.latencyMs = 0;
    // Assert: the model saw "one" before "two", and "two" had "one" in its history.
    const userD = llm.chatRequests.filter((r) => r.lastUserText === 'one' || r.lastUserText === 'two');
    expect(userD.map((r) => r.lastUserText)).toEqual(['one', 'two']);
    expect(userD[1]?.messages.map((m) => m.text)).toContain('A:one');
  });
});
