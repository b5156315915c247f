/**
 * The worker in a process of its own, fed from the job queue like Lambda's SQS trigger,
 * so a test can kill it with SIGKILL in the middle of an answer (a Lambda that dies).
 * Run with `node --import tsx`; configuration in the `WORKER_ENV` variable (JSON: the
 * app's environment plus `QUEUE_ARN` and `TEST_STREAM_LEASE_MS`). Prints `ready` once polling.
 */
import { loadConfig } from '../../lib/config';
import { silentLog } from '../../lib/types';
import { createWorkerHandler } from '../../lib/core/worker';
import { createTurnDeps } from '../../functions/compose';
import { startEventSource } from '../../local/sqs-event-source';
import { createSqsClient } from '../../lib/queue/jobs';

const parsed: unknown = JSON.parse(process.env.WORKER_ENV ?? '{}');
const env: Record<string, string> = {};
if (typeof parsed === 'object' && parsed !== null) {
  for (const [key, value] of Object.entries(parsed)) if (typeof value === 'string') env[key] = value;
}
const cfg = loadConfig(env);
const deps = createTurnDeps(cfg, silentLog, { flushIntervalMs: 20, streamLeaseMs: Number(env.TEST_STREAM_LEASE_MS ?? '120000') });
const sqs = createSqsClient(cfg.aws);
startEventSource({
  sqs,
  queueUrl: cfg.aws.queueUrl,
  queueArn: env.QUEUE_ARN ?? '',
  region: cfg.aws.region,
  handler: createWorkerHandler(deps, { sqs, queueUrl: cfg.aws.queueUrl, backoff: { baseSec: 1, maxSec: 2 } }),
  waitTimeSec: 1,
  // One invocation at a time: the tests' 2 s visibility timeout is far below a turn's run time
  // (Lambda refuses a trigger whose queue's visibility is shorter than the function timeout),
  // so with free slots a redelivery would race the invocation still running.
  maxConcurrency: 1,
});
process.stdout.write('ready\n');
