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
import { parseJob } from '../queue/jobs';
import type { Job, Log } from './types';

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
