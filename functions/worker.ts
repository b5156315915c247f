/** Lambda entry for the SQS FIFO worker: answers jobs and reports per-record failures. */
import type { Context, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { config } from '../lib/config';
import { createLog } from '../lib/core/log';
import { createTurnDeps, createWorkerHandler } from '../lib/core/worker';
import { createSqsClient } from '../lib/queue/jobs';

const cfg = config();
const run = createWorkerHandler(createTurnDeps(cfg, createLog('worker', cfg.logLevel)), {
  sqs: createSqsClient(cfg.aws),
  queueUrl: cfg.aws.queueUrl,
});

// The context's remaining time sets the LLM's time budget for this batch.
export const handler = async (event: SQSEvent, context: Context): Promise<SQSBatchResponse> => run(event, context);
