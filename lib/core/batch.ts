/**
 * The worker's SQS batch handling, with Powertools' FIFO partial-batch processor.
 *
 * Lambda hands one batch holding several message groups (users). Within a group the
 * order matters: when a record fails, it and every later record of the same group are
 * reported as failures (SQS FIFO redelivers them in order). Different groups are
 * independent, so they run concurrently: one slow answer does not hold up other users.
 */
import { processPartialResponse, SqsFifoPartialProcessorAsync } from '@aws-lambda-powertools/batch';
import type { SQSBatchItemFailure, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { ChangeMessageVisibilityBatchCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { parseJob } from '../queue/jobs';
import type { Job, Log } from '../types';

/** Groups records by MessageGroupId, keeping their order. */
export function groupRecords(records: readonly SQSRecord[]): SQSRecord[][] {
  const groups = new Map<string, SQSRecord[]>();
  for (const record of records) {
    const id = record.attributes.MessageGroupId ?? record.messageId;
    const list = groups.get(id);
    if (list) list.push(record);
    else groups.set(id, [record]);
  }
  return [...groups.values()];
}

/**
 * Runs `handleJob` for every record and reports per-record failures
 * (`ReportBatchItemFailures`). A malformed body fails its record, so it reaches the DLQ
 * intact after `maxReceiveCount` receives and can be inspected or replayed.
 */
export async function handleBatch(event: SQSEvent, handleJob: (job: Job, record: SQSRecord) => Promise<void>, log: Log): Promise<SQSBatchResponse> {
  const perGroup = await Promise.all(
    groupRecords(event.Records).map(async (records): Promise<SQSBatchItemFailure[]> => {
      const processor = new SqsFifoPartialProcessorAsync();
      const response = await processPartialResponse(
        { Records: records },
        async (record: SQSRecord) => {
          try {
            await handleJob(parseJob(record.body), record);
          } catch (err) {
            log.error('job failed', {
              messageId: record.messageId,
              receiveCount: record.attributes.ApproximateReceiveCount,
              error: err instanceof Error ? `${err.name}: ${err.message}` : String(err),
            });
            throw err;
          }
        },
        processor,
        { throwOnFullBatchFailure: false },
      );
      return response.batchItemFailures;
    }),
  );
  return { batchItemFailures: perGroup.flat() };
}

/**
 * Seconds before a failed record is tried again: 15 s, doubling per receive, at most 15 min.
 * The queue's own visibility timeout (6x the worker timeout, 30 min) is for a crashed worker;
 * a failure we saw (a throttled vendor, a busy answer) should come back much sooner, because
 * in a FIFO queue it holds every later message of the same user.
 */
export function retryDelaySec(receiveCount: number, backoff: RetryBackoff = DEFAULT_BACKOFF): number {
  const n = Math.max(1, receiveCount);
  return Math.min(backoff.maxSec, backoff.baseSec * 2 ** Math.min(10, n - 1));
}

/** Retry delay schedule for failed records. */
export interface RetryBackoff {
  baseSec: number;
  maxSec: number;
}

/** 15 s doubling to 15 min. */
export const DEFAULT_BACKOFF: RetryBackoff = { baseSec: 15, maxSec: 900 };

/**
 * Shortens the visibility timeout of the failed records (best effort: on error SQS's
 * default applies). `capSec` may bound a record's delay (e.g. to the end of its failure hold).
 */
export async function scheduleRetries(
  sqs: SQSClient,
  queueUrl: string,
  event: SQSEvent,
  response: SQSBatchResponse,
  log: Log,
  backoff: RetryBackoff = DEFAULT_BACKOFF,
  capSec: (record: SQSRecord) => number | undefined = () => undefined,
): Promise<void> {
  const failed = new Set(response.batchItemFailures.map((f) => f.itemIdentifier));
  const entries = event.Records.filter((r) => failed.has(r.messageId)).map((r) => ({
    Id: r.messageId.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 80),
    ReceiptHandle: r.receiptHandle,
    VisibilityTimeout: Math.min(retryDelaySec(Number(r.attributes.ApproximateReceiveCount), backoff), capSec(r) ?? Number.POSITIVE_INFINITY),
  }));
  for (let i = 0; i < entries.length; i += 10) {
    try {
      await sqs.send(new ChangeMessageVisibilityBatchCommand({ QueueUrl: queueUrl, Entries: entries.slice(i, i + 10) }));
    } catch (err) {
      log.warn('could not shorten the retry delay', { error: err instanceof Error ? err.message : String(err) });
    }
  }
}
