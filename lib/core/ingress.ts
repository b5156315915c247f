/**
 * The channel-neutral half of every webhook: claim the dedupe key, enqueue, so that a
 * redelivered webhook never creates a second job (design principle 3).
 */
import type { JobQueue } from '../queue/jobs';
import type { ClaimResult, MessageStore } from '../store/messages';
import { setCorrelationId } from './log';
import type { Clock, Job } from '../types';

/** What an ingress needs. */
export interface IngressDeps {
  messages: MessageStore;
  queue: JobQueue;
  clock: Clock;
}

/**
 * Claims `job.msgKey` and enqueues the job: two round trips for a new message (one
 * conditional put, one SendMessage). A claim never strands a message, with no write to
 * note the enqueue: every delivery whose record is still `queued` enqueues the job, so a
 * delivery that claimed and died before its send is completed by the vendor's retry. The
 * doubles this makes are absorbed twice over: SQS FIFO drops a send with the same
 * deduplication id within 5 minutes
 * (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/using-messagededuplicationid-property.html),
 * and later the worker finds the record answered and neither calls the LLM nor delivers
 * again (lib/core/turn.ts runTurn). A record past `queued` was taken by a worker, which
 * proves its job reached the queue, so a redelivery then sends nothing.
 * Throws when the queue is unreachable: the webhook should then answer 5xx so the
 * vendor retries, and nothing is lost.
 */
export async function acceptMessage(deps: IngressDeps, job: Job, opts: { pending?: boolean } = {}): Promise<ClaimResult> {
  // From here on the webhook's log lines carry the message key, as the worker's do.
  setCorrelationId(job.msgKey);
  const claim = await deps.messages.claim(job, deps.clock.nowMs(), opts);
  if (claim.created || claim.record.status === 'queued') await deps.queue.enqueue(claim.record.job);
  return claim;
}
