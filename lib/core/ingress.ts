/**
 * The channel-neutral half of every webhook: claim the dedupe key, enqueue, so that a
 * redelivered webhook never creates a second job (design principle 3).
 */
import type { JobQueue } from '../queue/jobs';
import type { ClaimResult, MessageStore } from '../store/messages';
import type { Clock, Job } from '../types';

/** What an ingress needs. */
export interface IngressDeps {
  messages: MessageStore;
  queue: JobQueue;
  clock: Clock;
}

/**
 * Claims `job.msgKey` and enqueues the job once. If an earlier delivery claimed the key
 * but died before enqueueing, this delivery enqueues it (SQS FIFO's deduplication id
 * drops a double within 5 minutes), so a claim never strands a message.
 * Throws when the queue is unreachable: the webhook should then answer 5xx so the
 * vendor retries, and nothing is lost.
 */
export async function acceptMessage(deps: IngressDeps, job: Job, opts: { pending?: boolean } = {}): Promise<ClaimResult> {
  const claim = await deps.messages.claim(job, deps.clock.nowMs(), opts);
  if (!claim.record.enqueued) {
    await deps.queue.enqueue(claim.record.job);
    await deps.messages.markEnqueued(claim.record);
    claim.record.enqueued = true;
  }
  return claim;
}
