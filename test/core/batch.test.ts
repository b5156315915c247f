import type { SQSRecord } from 'aws-lambda';
import { groupRecords, retryDelaySec } from '../../lib/core/batch';

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
