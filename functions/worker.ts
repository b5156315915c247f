/** Lambda entry for the SQS FIFO worker: answers jobs and reports per-record failures. */
import type { Context, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { functionConfig } from '../lib/config';
import { lazyHandler } from '../lib/core/lazy';
import { createLog } from '../lib/core/log';
import { emfMetrics } from '../lib/core/metrics';
import { createWorkerHandler } from '../lib/core/worker';
import { createTurnDeps } from './compose';
import { createSqsClient } from '../lib/queue/jobs';

// Built at the first invocation of a cold start, once the secrets are read from SSM. Without
// a usable LLM (none configured in a deployed stage, or its secret unreadable) every
// invocation fails with a ConfigError naming the setting: the batch is retried and ends in
// the dead-letter queue intact, and the Errors and DLQ alarms fire; no user gets the echo.
const run = lazyHandler(async () => {
  const cfg = await functionConfig('worker');
  return createWorkerHandler(createTurnDeps(cfg, createLog('worker', cfg.logLevel), { metrics: emfMetrics('worker') }), {
    sqs: createSqsClient(cfg.aws),
    queueUrl: cfg.aws.queueUrl,
  });
});

// The context's remaining time sets the LLM's time budget for this batch.
export const handler = async (event: SQSEvent, context?: Context): Promise<SQSBatchResponse> => run(event, context);
