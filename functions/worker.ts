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

export const handler = async (event: SQSEvent, _context: Context): Promise<SQSBatchResponse> => run(event);
