/**
 * Lambda entry for the dead-letter queue: finishes the record of a job SQS gave up on
 * (marks it failed, tells the user) and keeps the job on it for `npm run dlq -- replay`.
 */
import type { Context, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { config } from '../lib/config';
import { createLog } from '../lib/core/log';
import { createDeadLetterHandler, createTurnDeps } from '../lib/core/worker';

const cfg = config();
const run = createDeadLetterHandler(createTurnDeps(cfg, createLog('dead-letter', cfg.logLevel)));

export const handler = async (event: SQSEvent, _context: Context): Promise<SQSBatchResponse> => run(event);
