import type { SQSRecord } from 'aws-lambda';
import { SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { DEFAULT_BACKOFF, groupRecords, retryDelaySec, scheduleRetries } from '../../lib/core/batch';
import { silentLog } from '../../lib/types';
import { startFaultProxy } from '../../local/fault-proxy';
import { startTestStack, type TestStack } from '../../local/stack';

function record(messageId: string, group: string): SQSRecord {
  return {
    messageId,
    receiptHandle: `rh-${messageId}`,
    body: '{}',
    attributes: {
      ApproximateReceiveCount: '1',
      SentTimestamp: '0',
      SenderId: 'local',
      ApproximateFirstReceiveTimestamp: '0',
      MessageGroupId: group,
    },
    messageAttributes: {},
    md5OfBody: '',
    eventSource: 'aws:sqs',
    eventSourceARN: 'arn:aws:sqs:us-east-1:000000000000:q.fifo',
    awsRegion: 'us-east-1',
  };
}

describe('groupRecords', () => {
  it('groups by MessageGroupId and keeps the order inside each group', () => {
    const groups = groupRecords([record('1', 'a'), record('2', 'b'), record('3', 'a')]);
    expect(groups.map((g) => g.map((r) => r.messageId))).toEqual([['1', '3'], ['2']]);
  });
});

describe('retryDelaySec', () => {
  it('backs off from 15 s, doubling, capped at 15 minutes', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 20].map((n) => retryDelaySec(n))).toEqual([15, 30, 60, 120, 240, 480, 900, 900]);
  });

  it('takes a scaled schedule', () => {
    expect(retryDelaySec(3, { baseSec: 1, maxSec: 2 })).toBe(2);
    expect(retryDelaySec(0, { baseSec: 1, maxSec: 2 })).toBe(1);
  });
});

describe('scheduleRetries', () => {
  let stack: TestStack;

  beforeAll(async () => {
    stack = await startTestStack();
  });

  afterAll(async () => {
    await stack.stop();
  });

  it('shortens each failed record to its backoff, or to its cap (the end of its failure hold) when sooner', async () => {
    // Arrange: two received messages that failed on their third receive (backoff 60 s).
    for (const id of ['a', 'b']) {
      await stack.sqs.send(new SendMessageCommand({ QueueUrl: stack.queueUrl, MessageBody: id, MessageGroupId: id, MessageDeduplicationId: id }));
    }
    const received = await stack.receiveAll(stack.queueUrl, { keep: true, visibilityTimeoutSec: 30 });
    const records = received.map((m) => ({ ...record(m.MessageId ?? '', m.Body ?? ''), receiptHandle: m.ReceiptHandle ?? '', body: m.Body ?? '', attributes: { ...record('', '').attributes, ApproximateReceiveCount: '3' } }));
    const proxy = await startFaultProxy(stack.sqsEndpoint);
    const sqs = new SQSClient({ region: stack.region, endpoint: proxy.url, credentials: { accessKeyId: 'local', secretAccessKey: 'local' } });
    try {
      // Act
      await scheduleRetries(
        sqs,
        stack.queueUrl,
        { Records: records },
        { batchItemFailures: records.map((r) => ({ itemIdentifier: r.messageId })) },
        silentLog,
        DEFAULT_BACKOFF,
        (r) => (r.body === 'a' ? 7 : undefined),
      );
    } finally {
      sqs.destroy();
      await proxy.close();
    }
    // Assert
    const call = proxy.calls.find((c) => c.op === 'ChangeMessageVisibilityBatch');
    const sent: unknown = JSON.parse(call?.body ?? '{}');
    const entries = typeof sent === 'object' && sent !== null && 'Entries' in sent && Array.isArray(sent.Entries) ? sent.Entries : [];
    const timeouts = entries.map((e: unknown) => (typeof e === 'object' && e !== null && 'VisibilityTimeout' in e ? e.VisibilityTimeout : undefined));
    expect(timeouts).toEqual(records.map((r) => (r.body === 'a' ? 7 : 60)));
  });
});
