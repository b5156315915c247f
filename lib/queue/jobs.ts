/**
 * The job queue: an SQS FIFO queue whose message group is channel + user, so one
 * user's turns are answered in order while different users run in parallel.
 */
import { createHash } from 'node:crypto';
import { SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import type { AwsConfig } from '../config';
import type { Job } from '../types';
import { isJob } from '../store/messages';

/** Sends jobs; an interface so the ingress can be tested against a real emulator or a recorder. */
export interface JobQueue {
  enqueue(job: Job): Promise<void>;
}

/**
 * An SQS FIFO id for `raw`: the raw key when SQS accepts it as is (at most 128 characters,
 * alphanumerics and punctuation), else its SHA-256 in hex. Never a lossy substitution:
 * replacing unsafe characters made `菜单A` and `订阅A` the same id, and SQS silently
 * dropped the second message as a duplicate. Raw keys always contain `#`, hex digests
 * never do, so a raw id and a hashed one cannot meet either.
 * https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessage.html
 */
export function sqsId(raw: string): string {
  const safe = /^[A-Za-z0-9!"#$%&'()*+,\-./:;<=>?@[\\\]^_`{|}~]{1,128}$/.test(raw);
  return safe ? raw : createHash('sha256').update(raw, 'utf8').digest('hex');
}

/** Group = channel + user: one user's messages are processed one at a time, in order. */
export function messageGroupId(job: Pick<Job, 'channel' | 'userId'>): string {
  return sqsId(`${job.channel}#${job.userId}`);
}

/** Dedup id = the inbound message's key: a re-enqueue within 5 minutes is dropped by SQS too. */
export function deduplicationId(job: Pick<Job, 'channel' | 'userId' | 'msgKey'>): string {
  return sqsId(`${job.channel}#${job.userId}#${job.msgKey}`);
}

/**
 * JSON with every non-ASCII UTF-16 unit escaped as `\uXXXX`. SQS accepts only some
 * Unicode ranges in a body (#x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD #x10000-#x10FFFF): a lone
 * surrogate in user text would be refused, and the local stand-in refuses every character
 * above U+FFFF (emoji). Escaped, any text travels; `JSON.parse` restores it exactly.
 */
export function asciiJson(value: unknown): string {
  return JSON.stringify(value).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** The SQS FIFO queue. */
export class SqsJobQueue implements JobQueue {
  constructor(
    private readonly sqs: SQSClient,
    private readonly queueUrl: string,
  ) {}

  async enqueue(job: Job): Promise<void> {
    await this.sqs.send(
      new SendMessageCommand({
        QueueUrl: this.queueUrl,
        MessageBody: asciiJson(job),
        MessageGroupId: messageGroupId(job),
        MessageDeduplicationId: deduplicationId(job),
      }),
    );
  }
}

/** An SQS client for the configured region, pointed at the local stand-in when `SQS_ENDPOINT` is set. */
export function createSqsClient(aws: AwsConfig): SQSClient {
  return new SQSClient({
    region: aws.region,
    ...(aws.sqsEndpoint ? { endpoint: aws.sqsEndpoint } : {}),
  });
}

/** Error for a queue message that is not a job; it goes to the DLQ untouched for inspection. */
export class MalformedJobError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MalformedJobError';
  }
}

/** Parses and validates a queue message body. */
export function parseJob(body: string): Job {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    throw new MalformedJobError('job body is not JSON');
  }
  if (!isJob(parsed)) throw new MalformedJobError('job body does not match the job schema');
  return parsed;
}
