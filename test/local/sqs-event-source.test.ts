/**
 * The local SQS event source against fauxqs: Lambda's record shape, ReportBatchItemFailures,
 * redrive to the DLQ, FIFO group order, prompt stop.
 */
import { createHash } from 'node:crypto';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { SendMessageCommand, type MessageAttributeValue } from '@aws-sdk/client-sqs';
import { splitByGroup, startEventSource, type EventSource, type SqsBatchHandler } from '../../local/sqs-event-source';
import { startTestStack, type TestStack } from '../../local/stack';

let stack: TestStack;
let sources: EventSource[] = [];

beforeAll(async () => {
  // 1 s visibility: failed records come back within a second, as they would after 30 min in AWS.
  stack = await startTestStack({ visibilityTimeoutSec: 1 });
});

afterEach(async () => {
  await Promise.all(sources.map((source) => source.stop()));
  sources = [];
  // Leave nothing behind for the next test (a stopped source may leave records in flight).
  await new Promise((resolve) => setTimeout(resolve, 1100));
  await stack.receiveAll(stack.queueUrl);
  await stack.receiveAll(stack.deadLetterQueueUrl);
});

afterAll(async () => {
  await stack.stop();
});

function start(handler: SqsBatchHandler, extra: { batchSize?: number; maxConcurrency?: number; log?: (line: string) => void } = {}): EventSource {
  const source = startEventSource({
    sqs: stack.sqs,
    queueUrl: stack.queueUrl,
    queueArn: stack.queueArn,
    region: stack.region,
    waitTimeSec: 1,
    handler,
    ...extra,
  });
  sources.push(source);
  return source;
}

let sequence = 0;
async function send(group: string, body: string, attributes?: Record<string, MessageAttributeValue>): Promise<string> {
  sequence += 1;
  const sent = await stack.sqs.send(
    new SendMessageCommand({
      QueueUrl: stack.queueUrl,
      MessageBody: body,
      MessageGroupId: group,
      MessageDeduplicationId: `dedup-${sequence}-${Date.now()}`,
      ...(attributes ? { MessageAttributes: attributes } : {}),
    }),
  );
  if (sent.MessageId === undefined) throw new Error('no MessageId');
  return sent.MessageId;
}

/** Records every invocation; `decide` returns the ids to fail (or throws). */
function recorder(decide: (event: SQSEvent) => string[] = () => []): { calls: SQSRecord[][]; handler: SqsBatchHandler } {
  const calls: SQSRecord[][] = [];
  return {
    calls,
    handler: async (event: SQSEvent): Promise<SQSBatchResponse> => {
      calls.push(event.Records);
      return { batchItemFailures: decide(event).map((itemIdentifier) => ({ itemIdentifier })) };
    },
  };
}

describe('startEventSource', () => {
  it("hands the handler Lambda's SQS record shape and a usable context", async () => {
    // Arrange
    const seen: { event: SQSEvent; context: Context; remaining: number }[] = [];
    const messageId = await send('user-1', '{"job":1}', {
      kind: { DataType: 'String', StringValue: 'text' },
      count: { DataType: 'Number', StringValue: '3' },
      blob: { DataType: 'Binary', BinaryValue: Buffer.from([1, 2, 3]) },
    });
    // Act
    const source = start(async (event, context) => {
      seen.push({ event, context, remaining: context.getRemainingTimeInMillis() });
    });
    await source.idle();
    // Assert
    expect(seen).toHaveLength(1);
    const [first] = seen;
    if (!first) throw new Error('no invocation');
    const { event, context, remaining } = first;
    expect(event.Records).toHaveLength(1);
    const [record] = event.Records;
    if (!record) throw new Error('no record');
    // The values that vary per run are checked by pattern, the rest must match exactly.
    const { receiptHandle, attributes, md5OfMessageAttributes, ...stable } = record;
    expect(receiptHandle.length).toBeGreaterThan(0);
    expect(md5OfMessageAttributes).toMatch(/^[0-9a-f]{32}$/);
    expect(Object.keys(attributes)).toEqual([
      'ApproximateReceiveCount',
      'SentTimestamp',
      'SequenceNumber',
      'MessageGroupId',
      'SenderId',
      'MessageDeduplicationId',
      'ApproximateFirstReceiveTimestamp',
    ]);
    expect(attributes.ApproximateReceiveCount).toBe('1');
    expect(attributes.SentTimestamp).toMatch(/^\d{13}$/);
    expect(attributes.SequenceNumber).toMatch(/^\d+$/);
    expect(attributes.MessageGroupId).toBe('user-1');
    expect(attributes.SenderId.length).toBeGreaterThan(0);
    expect(attributes.MessageDeduplicationId).toMatch(/^dedup-/);
    expect(attributes.ApproximateFirstReceiveTimestamp).toMatch(/^\d{13}$/);
    expect(stable).toEqual({
      messageId,
      body: '{"job":1}',
      messageAttributes: {
        kind: { stringValue: 'text', stringListValues: [], binaryListValues: [], dataType: 'String' },
        count: { stringValue: '3', stringListValues: [], binaryListValues: [], dataType: 'Number' },
        blob: { binaryValue: Buffer.from([1, 2, 3]).toString('base64'), stringListValues: [], binaryListValues: [], dataType: 'Binary' },
      },
      md5OfBody: createHash('md5').update('{"job":1}').digest('hex'),
      eventSource: 'aws:sqs',
      eventSourceARN: stack.queueArn,
      awsRegion: 'us-east-1',
    });
    expect(context.functionName).toBe('worker');
    expect(context.awsRequestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(remaining).toBeGreaterThan(290_000);
    expect(remaining).toBeLessThanOrEqual(300_000);
    // Succeeded records are deleted.
    expect(await stack.receiveAll(stack.queueUrl)).toEqual([]);
  });

  it("gives each message group a batch of its own, never more than batchSize records", async () => {
    // Arrange: four records of group a, one each of b-e.
    for (let i = 1; i <= 4; i++) await send('a', `a${i}`);
    for (const group of ['b', 'c', 'd', 'e']) await send(group, `m-${group}`);
    const { calls, handler } = recorder();
    // Act
    const source = start(handler, { batchSize: 3 });
    await source.idle();
    // Assert: every batch is one group's, in order, and a's four records came in ≥ 2 batches.
    expect(calls.flat().map((r) => r.body).sort()).toEqual(['a1', 'a2', 'a3', 'a4', 'm-b', 'm-c', 'm-d', 'm-e']);
    for (const batch of calls) {
      expect(batch.length).toBeLessThanOrEqual(3);
      expect(new Set(batch.map((r) => r.attributes.MessageGroupId)).size).toBe(1);
    }
    expect(calls.filter((batch) => batch[0]?.attributes.MessageGroupId === 'a').flat().map((r) => r.body)).toEqual(['a1', 'a2', 'a3', 'a4']);
  });

  describe('scheduling like the FIFO event source of Lambda', () => {
    /** A handler that holds every batch until `open()`; counts batches in flight, overall and per group. */
    function gate(): { handler: SqsBatchHandler; open: () => void; order: string[]; peak: () => number; peakPerGroup: () => number; running: () => number } {
      let release: () => void = () => undefined;
      let opened = false;
      const gateOpen = new Promise<void>((resolve) => {
        release = () => {
          opened = true;
          resolve();
        };
      });
      let running = 0;
      let peak = 0;
      let peakPerGroup = 0;
      const perGroup = new Map<string, number>();
      const order: string[] = [];
      return {
        order,
        open: () => release(),
        peak: () => peak,
        peakPerGroup: () => peakPerGroup,
        running: () => running,
        handler: async (event) => {
          const group = event.Records[0]?.attributes.MessageGroupId ?? '';
          running += 1;
          peak = Math.max(peak, running);
          perGroup.set(group, (perGroup.get(group) ?? 0) + 1);
          peakPerGroup = Math.max(peakPerGroup, perGroup.get(group) ?? 0);
          try {
            if (!opened) await gateOpen;
            // Hold a little even when open, so batches of one group could overlap if the source let them.
            await new Promise((resolve) => setTimeout(resolve, 5));
            order.push(...event.Records.map((r) => r.body));
          } finally {
            running -= 1;
            perGroup.set(group, (perGroup.get(group) ?? 1) - 1);
          }
          return undefined;
        },
      };
    }

    async function until(check: () => boolean, what: string): Promise<void> {
      const deadline = Date.now() + 5000;
      while (!check()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    }

    it('runs the batches of different groups side by side: a slow group holds up no other', async () => {
      // Arrange: six users with one message each; every batch blocks until all six have started.
      const g = gate();
      for (const group of ['u1', 'u2', 'u3', 'u4', 'u5', 'u6']) await send(group, group);
      // Act
      const source = start(g.handler, { batchSize: 5 });
      await until(() => g.running() === 6, 'six batches in flight');
      g.open();
      await source.idle();
      // Assert
      expect(g.peak()).toBe(6);
      expect([...g.order].sort()).toEqual(['u1', 'u2', 'u3', 'u4', 'u5', 'u6']);
    });

    it('never has more than maxConcurrency batches in flight, and still runs every group', async () => {
      // Arrange: seven groups, ceiling 3.
      const g = gate();
      for (let i = 1; i <= 7; i++) await send(`g${i}`, `g${i}`);
      // Act
      const source = start(g.handler, { batchSize: 5, maxConcurrency: 3 });
      await until(() => g.running() === 3, 'three batches in flight');
      // Give the pollers time to overstep the ceiling if they would.
      await new Promise((resolve) => setTimeout(resolve, 300));
      const heldAtCeiling = g.running();
      g.open();
      await source.idle();
      // Assert
      expect(heldAtCeiling).toBe(3);
      expect(g.peak()).toBe(3);
      expect([...g.order].sort()).toEqual(['g1', 'g2', 'g3', 'g4', 'g5', 'g6', 'g7']);
    });

    it('keeps one batch in flight per group, in order, while other groups run', async () => {
      // Arrange: group A has five messages taken one per batch; B and C one each.
      const g = gate();
      for (let i = 1; i <= 5; i++) await send('A', `A${i}`);
      await send('B', 'B1');
      await send('C', 'C1');
      g.open();
      // Act
      const source = start(g.handler, { batchSize: 1 });
      await source.idle();
      // Assert
      expect(g.peakPerGroup()).toBe(1);
      expect(g.order.filter((body) => body.startsWith('A'))).toEqual(['A1', 'A2', 'A3', 'A4', 'A5']);
      expect(g.order).toEqual(expect.arrayContaining(['B1', 'C1']));
    });

    it('with maxConcurrency 1 runs the batches one after the other', async () => {
      const g = gate();
      g.open();
      for (const group of ['x', 'y', 'z']) await send(group, group);
      const source = start(g.handler, { maxConcurrency: 1 });
      await source.idle();
      expect(g.peak()).toBe(1);
      expect([...g.order].sort()).toEqual(['x', 'y', 'z']);
    });
  });

  it('redelivers only the records reported in batchItemFailures, with the receive count incremented', async () => {
    // Arrange: two groups so both records arrive in one batch; "bad" fails on its first delivery only.
    const good = await send('g-good', 'good');
    const bad = await send('g-bad', 'bad');
    const { calls, handler } = recorder((event) =>
      event.Records.filter((r) => r.body === 'bad' && r.attributes.ApproximateReceiveCount === '1').map((r) => r.messageId),
    );
    // Act
    const source = start(handler);
    await source.idle();
    // Assert
    const deliveries = calls.flat();
    expect(deliveries.filter((r) => r.messageId === good).map((r) => r.attributes.ApproximateReceiveCount)).toEqual(['1']);
    expect(deliveries.filter((r) => r.messageId === bad).map((r) => r.attributes.ApproximateReceiveCount)).toEqual(['1', '2']);
    expect(await stack.receiveAll(stack.deadLetterQueueUrl)).toEqual([]);
  });

  it('treats a thrown error as a failed batch and keeps polling', async () => {
    const logs: string[] = [];
    await send('t1', 'one');
    await send('t2', 'two');
    const calls: string[][] = [];
    let thrown = false;
    const source = start(
      async (event) => {
        calls.push(event.Records.map((r) => `${r.body}#${r.attributes.ApproximateReceiveCount}`));
        if (!thrown) {
          thrown = true;
          throw new Error('boom');
        }
      },
      { log: (line) => logs.push(line) },
    );
    await source.idle();

    const flat = calls.flat();
    // Every record of the failed batch came back a second time.
    expect(flat.filter((entry) => entry.endsWith('#2')).length).toBe(calls[0]?.length);
    expect(flat.some((entry) => entry.startsWith('one'))).toBe(true);
    expect(flat.some((entry) => entry.startsWith('two'))).toBe(true);
    expect(logs.some((line) => line.includes('threw') && line.includes('boom'))).toBe(true);
  });

  it('fails the whole batch for an itemIdentifier that is not in it, as Lambda does', async () => {
    await send('x', 'only');
    const logs: string[] = [];
    let attempts = 0;
    const source = start(
      async (): Promise<SQSBatchResponse> => {
        attempts += 1;
        return { batchItemFailures: attempts === 1 ? [{ itemIdentifier: 'not-a-message-id' }] : [] };
      },
      { log: (line) => logs.push(line) },
    );
    await source.idle();
    expect(attempts).toBe(2);
    expect(logs.some((line) => line.includes('invalid itemIdentifier'))).toBe(true);
  });

  it('moves a record that always fails to the DLQ after maxReceiveCount (5) receives', async () => {
    const poison = await send('poison', 'poison-pill');
    const { calls, handler } = recorder((event) => event.Records.map((r) => r.messageId));

    const source = start(handler);
    await source.idle(30_000);

    expect(calls.flat().filter((r) => r.messageId === poison).map((r) => r.attributes.ApproximateReceiveCount)).toEqual(['1', '2', '3', '4', '5']);
    const dead = await stack.receiveAll(stack.deadLetterQueueUrl);
    expect(dead.map((m) => m.Body)).toEqual(['poison-pill']);
    expect(dead[0]?.Attributes?.MessageGroupId).toBe('poison');
    expect(await stack.receiveAll(stack.queueUrl)).toEqual([]);
  }, 40_000);

  it('keeps FIFO order within a group, also across a redelivery', async () => {
    // Arrange: interleave two groups; the 2nd message of group A fails once.
    for (let i = 1; i <= 4; i++) {
      await send('A', `A${i}`);
      await send('B', `B${i}`);
    }
    const processed: string[] = [];
    const source = start(async (event): Promise<SQSBatchResponse> => {
      const failures: { itemIdentifier: string }[] = [];
      const failedGroups = new Set<string>();
      for (const record of event.Records) {
        const group = record.attributes.MessageGroupId ?? '';
        // FIFO rule: once a record of a group fails, report the rest of that group too.
        if (failedGroups.has(group) || (record.body === 'A2' && record.attributes.ApproximateReceiveCount === '1')) {
          failedGroups.add(group);
          failures.push({ itemIdentifier: record.messageId });
          continue;
        }
        processed.push(record.body);
      }
      return { batchItemFailures: failures };
    });
    // Act
    await source.idle();
    // Assert
    expect(processed.filter((body) => body.startsWith('A'))).toEqual(['A1', 'A2', 'A3', 'A4']);
    expect(processed.filter((body) => body.startsWith('B'))).toEqual(['B1', 'B2', 'B3', 'B4']);
  });

  it('stops promptly while a long poll is waiting', async () => {
    const source = startEventSource({
      sqs: stack.sqs,
      queueUrl: stack.queueUrl,
      queueArn: stack.queueArn,
      region: stack.region,
      waitTimeSec: 20,
      handler: async () => undefined,
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const started = Date.now();
    await source.stop();
    expect(Date.now() - started).toBeLessThan(1000);
  });
});

describe('splitByGroup', () => {
  it('splits by MessageGroupId keeping each group in order; a message without a group stands alone', () => {
    const m = (id: string, group?: string) => ({ MessageId: id, ...(group ? { Attributes: { MessageGroupId: group } } : {}) });
    const batches = splitByGroup([m('1', 'a'), m('2', 'b'), m('3', 'a'), m('4'), m('5', 'b'), m('6')]);
    expect(batches.map((b) => b.map((x) => x.MessageId))).toEqual([['1', '3'], ['2', '5'], ['4'], ['6']]);
  });
});
