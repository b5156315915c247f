/**
 * Wires the worker: from validated configuration to the dependencies of the turn.
 * Kept out of the ingress bundles (it pulls in the LLM SDK).
 */
import { createHash } from 'node:crypto';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import type { SQSClient } from '@aws-sdk/client-sqs';
import { MalformedJobError, parseJob } from '../queue/jobs';
import { groupRecords, handleBatch, scheduleRetries, type RetryBackoff } from './batch';
import { failureReason, MAX_RECEIVE_COUNT, parkJob, secondsToHoldEnd, shouldPark } from './dead-letters';
import { withCorrelationId } from './log';
import { OutOfTimeError, runTurn, type TurnDeps, type TurnOptions } from './turn';
import type { Job } from '../types';

/** The part of the Lambda context the worker reads. */
export type WorkerContext = Pick<Context, 'getRemainingTimeInMillis'>;

/**
 * When the LLM must be done in an invocation that has `remainingMs` left: `LLM_TIME_MARGIN_MS`
 * earlier, so the answer can still be saved and delivered before Lambda's timeout kills the
 * invocation (which would fail every record of the batch). Records of a batch run one after the
 * other within their user's group and share this one deadline: a record behind another of its
 * group that finds less than `LLM_MIN_TIME_MS` left is not started but fails back to the queue
 * (see `OutOfTimeError`); the first record of each group always runs.
 */
export function llmDeadlineMs(deps: Pick<TurnDeps, 'clock' | 'config'>, remainingMs: number): number {
  return deps.clock.nowMs() + remainingMs - deps.config.llm.timeMarginMs;
}

/**
 * The worker's batch handler over prepared dependencies. With `retries`, failed records
 * come back after a short backoff instead of the queue's 30-minute visibility timeout,
 * and never later than the end of their failure hold. With a Lambda `context`, the LLM
 * calls get a time budget from its remaining time.
 *
 * A job that fails once its hold (`FAILED_JOB_HOLD_SEC` since it arrived) is over, or on
 * its last receive, is parked (lib/core/dead-letters.ts) and succeeds for SQS: in a FIFO
 * queue a failing message holds every later message of its group, i.e. of that user.
 */
export function createWorkerHandler(
  deps: TurnDeps,
  retries?: { sqs: SQSClient; queueUrl: string; backoff?: RetryBackoff },
): (event: SQSEvent, context?: WorkerContext) => Promise<SQSBatchResponse> {
  const holdMs = deps.config.failedJobHoldSec * 1000;
  return async (event, context) => {
    const deadline: TurnOptions = context ? { llmDeadlineMs: llmDeadlineMs(deps, context.getRemainingTimeInMillis()) } : {};
    // Only a record behind another of its user in this batch may be handed back for lack of time.
    const heads = new Set(groupRecords(event.Records).map((group) => group[0]?.messageId));
    const response = await handleBatch(
      event,
      async (job, record) => {
        // Every line logged for this job carries its message key, as the webhook's did.
        await withCorrelationId(job.msgKey, async () => {
          try {
            const done = await runTurn(deps, job, { ...deadline, mayDefer: !heads.has(record.messageId) });
            // One line per job: with the webhook's line, the two ends of a message's trace.
            deps.log.info('job done', { channel: job.channel, status: done.status, ms: deps.clock.nowMs() - job.arrivedAtMs });
          } catch (err) {
            // A record handed back unstarted for lack of time has not failed: it is never parked.
            if (err instanceof OutOfTimeError || !shouldPark(job, Number(record.attributes.ApproximateReceiveCount), deps.clock.nowMs(), holdMs)) throw err;
            await parkJob(deps, job, failureReason(err), 'worker');
          }
        });
      },
      deps.log,
    );
    if (retries && response.batchItemFailures.length > 0) {
      const capSec = (record: SQSRecord): number | undefined => {
        try {
          return secondsToHoldEnd(parseJob(record.body), deps.clock.nowMs(), holdMs);
        } catch {
          return undefined; // malformed: the usual backoff, then the DLQ
        }
      };
      await scheduleRetries(retries.sqs, retries.queueUrl, event, response, deps.log, retries.backoff, capSec);
    }
    return response;
  };
}

/**
 * The dead-letter queue's handler: a job SQS gave up on (the worker crashed or timed out
 * on every receive) is parked like one the worker gave up, so its record is finished and
 * the user told instead of waiting for the 8-day TTL. The job stays on its record for
 * `npm run dlq -- replay`. A body that is not a job cannot be tied to a user or replayed:
 * it is logged (size and hash) and dropped. A record that cannot be written now is retried
 * by SQS.
 */
export function createDeadLetterHandler(deps: TurnDeps): (event: SQSEvent) => Promise<SQSBatchResponse> {
  return async (event) => {
    const failures: SQSBatchResponse['batchItemFailures'] = [];
    for (const record of event.Records) {
      let job: Job;
      try {
        job = parseJob(record.body);
      } catch (err) {
        if (!(err instanceof MalformedJobError)) throw err;
        // Not something our ingress can produce (a bug or a stray sender): nothing to finish
        // or replay. The body is not logged: it may carry a phone number or an OpenID.
        deps.log.error('dead letter is not a job; dropped', {
          messageId: record.messageId,
          error: err.message,
          bytes: Buffer.byteLength(record.body),
          sha256: createHash('sha256').update(record.body).digest('hex'),
        });
        continue;
      }
      try {
        const outcome = await parkJob(deps, job, `dead-letter queue: no receive of the job finished (worker crashed or timed out ${MAX_RECEIVE_COUNT} times)`, 'dlq');
        deps.log.info('dead letter handled', { channel: job.channel, msgKey: job.msgKey, outcome });
      } catch (err) {
        deps.log.error('dead letter could not be parked; SQS retries it', { messageId: record.messageId, error: failureReason(err) });
        failures.push({ itemIdentifier: record.messageId });
      }
    }
    return { batchItemFailures: failures };
  };
}
