/**
 * Lambda entry for the dead-letter queue: finishes the record of a job SQS gave up on
 * (marks it failed, tells the user) and keeps the job on it for `npm run dlq -- replay`.
 */
import type { Context, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { functionConfig } from '../lib/config';
import { lazyHandler } from '../lib/core/lazy';
import { createLog } from '../lib/core/log';
import { emfMetrics } from '../lib/core/metrics';
import { createDeadLetterHandler } from '../lib/core/worker';
import { createTurnDeps } from './compose';

// Built at the first invocation of a cold start, once the secrets are read from SSM.
const run = lazyHandler(async () => {
  const cfg = await functionConfig('deadLetter');
  return createDeadLetterHandler(createTurnDeps(cfg, createLog('dead-letter', cfg.logLevel), { metrics: emfMetrics('deadLetter') }));
});

export const handler = async (event: SQSEvent, _context?: Context): Promise<SQSBatchResponse> => run(event);
