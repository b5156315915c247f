/**
 * A local stand-in for Lambda's SQS event source mapping, for the worker function.
 *
 * serverless-offline-sqs cannot be used with fauxqs (it rewrites the queue URL's host and
 * fauxqs, which matches queues by their exact URL, then answers QueueDoesNotExist), so we
 * poll ourselves and keep
 * Lambda's contract:
 * - long-polls ReceiveMessage for up to `batchSize` (≤ 10) messages with every system
 *   and message attribute, and hands the handler an `SQSEvent` whose records have exactly
 *   Lambda's shape (camel-cased keys, `attributes` as strings, `messageAttributes` with
 *   `stringListValues`/`binaryListValues`, base64 binary values, `eventSource: 'aws:sqs'`);
 * - with ReportBatchItemFailures semantics: records named in `batchItemFailures` stay on the
 *   queue and reappear after the visibility timeout; a thrown error, a rejected promise or an
 *   unknown/empty `itemIdentifier` fails the whole batch; every other record is deleted;
 * - an invocation that outlives the function timeout counts as failed, as Lambda would kill it.
 *
 * Redrive to the DLQ after `maxReceiveCount` is done by fauxqs itself when a message is
 * received once too often (like SQS), so nothing here emulates it.
 *
 * Scaling follows Lambda's FIFO event source: "the number of concurrent batches equals the
 * number of active message groups", up to the mapping's `MaximumConcurrency`
 * (https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-scaling.html,
 * https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-parameters.html#services-sqs-max-concurrency).
 * Each receive is split by message group and every group's records become one invocation of
 * their own, so a slow user never holds up another. A group has at most one batch in flight:
 * SQS (and fauxqs) hand out no message of a group while an earlier one is in flight, so its
 * order is kept across batches and redeliveries. Receives are long polls that return as soon as
 * one message is there, and a receive asks for no more messages than there are free slots
 * under the ceiling, so the ceiling holds even if every message is from another group.
 */
import { randomUUID } from 'node:crypto';
import type { Context, SQSBatchResponse, SQSEvent, SQSMessageAttributes, SQSRecord, SQSRecordAttributes } from 'aws-lambda';
import {
  DeleteMessageBatchCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  type Message,
  type MessageAttributeValue,
  type SQSClient,
} from '@aws-sdk/client-sqs';

/** The worker's handler type (functions/worker.ts exports one; aws-lambda's SQSHandler in promise form). */
// eslint-disable-next-line @typescript-eslint/no-invalid-void-type -- as aws-lambda's SQSHandler: resolving to nothing means "all records succeeded"
export type SqsBatchHandler = (event: SQSEvent, context: Context) => Promise<SQSBatchResponse | void>;

/** Options of {@link startEventSource}. */
export interface EventSourceOptions {
  sqs: SQSClient;
  /** The queue URL exactly as the emulator returned it (fauxqs matches URLs verbatim). */
  queueUrl: string;
  /** Goes into each record's `eventSourceARN`. */
  queueArn: string;
  /** Goes into each record's `awsRegion`. */
  region: string;
  handler: SqsBatchHandler;
  /** Messages per invocation, 1-10 (serverless.yml uses 5). */
  batchSize?: number;
  /** Long-poll wait, 0-20 s (Lambda uses 20). */
  waitTimeSec?: number;
  /**
   * Most batches in flight at once, one per active message group (default 50, as the
   * worker's `maximumConcurrency` in serverless.yml). 1 runs the batches one after the other.
   */
  maxConcurrency?: number;
  /** Receive calls outstanding at once while slots are free (default 2): a receive is one round trip, two hide it. */
  pollers?: number;
  /** Function name for the context (default `worker`). */
  functionName?: string;
  /** The function's timeout for `getRemainingTimeInMillis` and the overrun check (default 300 s, as serverless.yml). */
  timeoutSec?: number;
  /** Memory size reported in the context (default 512). */
  memoryLimitInMB?: number;
  /** How long `stop()` lets a running invocation finish (default 10 s). */
  stopGraceMs?: number;
  /** One line per notable event (handler errors, failed records); default: none. */
  log?: (line: string) => void;
}

/** A running event source. */
export interface EventSource {
  /** Stops polling at once (the long poll is aborted) and waits, up to the grace period, for running invocations. */
  stop(): Promise<void>;
  /**
   * Resolves when the queue has no visible, delayed or in-flight messages and no invocation
   * is running. Failed records keep it waiting until they succeed or move to the DLQ.
   * Rejects after `timeoutMs` (default 60 s) so a stuck test names its cause.
   */
  idle(timeoutMs?: number): Promise<void>;
}

/** Maps SDK message attributes to Lambda's record shape (binary as base64). */
export function toLambdaMessageAttributes(attributes: Record<string, MessageAttributeValue> | undefined): SQSMessageAttributes {
  const out: SQSMessageAttributes = {};
  for (const [name, value] of Object.entries(attributes ?? {})) {
    out[name] = {
      ...(value.StringValue !== undefined ? { stringValue: value.StringValue } : {}),
      ...(value.BinaryValue !== undefined ? { binaryValue: Buffer.from(value.BinaryValue).toString('base64') } : {}),
      stringListValues: value.StringListValues ?? [],
      binaryListValues: (value.BinaryListValues ?? []).map((bytes) => Buffer.from(bytes).toString('base64')),
      dataType: value.DataType ?? 'String',
    };
  }
  return out;
}

/** Builds one Lambda SQS record from a received message. */
export function toLambdaRecord(message: Message, queueArn: string, region: string): SQSRecord {
  const attrs = message.Attributes ?? {};
  const now = String(Date.now());
  const attributes: SQSRecordAttributes = {
    ApproximateReceiveCount: attrs.ApproximateReceiveCount ?? '1',
    SentTimestamp: attrs.SentTimestamp ?? now,
    ...(attrs.SequenceNumber !== undefined ? { SequenceNumber: attrs.SequenceNumber } : {}),
    ...(attrs.MessageGroupId !== undefined ? { MessageGroupId: attrs.MessageGroupId } : {}),
    SenderId: attrs.SenderId ?? '000000000000',
    ...(attrs.MessageDeduplicationId !== undefined ? { MessageDeduplicationId: attrs.MessageDeduplicationId } : {}),
    ApproximateFirstReceiveTimestamp: attrs.ApproximateFirstReceiveTimestamp ?? now,
    ...(attrs.AWSTraceHeader !== undefined ? { AWSTraceHeader: attrs.AWSTraceHeader } : {}),
  };
  if (message.MessageId === undefined || message.ReceiptHandle === undefined) {
    throw new Error('ReceiveMessage returned a message without MessageId or ReceiptHandle');
  }
  return {
    messageId: message.MessageId,
    receiptHandle: message.ReceiptHandle,
    body: message.Body ?? '',
    attributes,
    messageAttributes: toLambdaMessageAttributes(message.MessageAttributes),
    md5OfBody: message.MD5OfBody ?? '',
    ...(message.MD5OfMessageAttributes !== undefined ? { md5OfMessageAttributes: message.MD5OfMessageAttributes } : {}),
    eventSource: 'aws:sqs',
    eventSourceARN: queueArn,
    awsRegion: region,
  };
}

/** A Lambda context good enough for handlers that read deadlines and ids. */
export function lambdaContext(opts: { functionName: string; region: string; timeoutMs: number; memoryLimitInMB: number }): Context {
  const deadline = Date.now() + opts.timeoutMs;
  const unsupported = (name: string) => (): never => {
    throw new Error(`context.${name}() is not supported: return a promise`);
  };
  // Context still declares the callback-era done/fail/succeed, so they must exist.
  /* eslint-disable @typescript-eslint/no-deprecated */
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName: opts.functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:${opts.region}:000000000000:function:${opts.functionName}`,
    memoryLimitInMB: String(opts.memoryLimitInMB),
    awsRequestId: randomUUID(),
    logGroupName: `/aws/lambda/${opts.functionName}`,
    logStreamName: `local/[$LATEST]${randomUUID().replace(/-/g, '')}`,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: unsupported('done'),
    fail: unsupported('fail'),
    succeed: unsupported('succeed'),
  };
  /* eslint-enable @typescript-eslint/no-deprecated */
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Which records to keep on the queue, per Lambda's ReportBatchItemFailures rules: nothing,
 * an empty response or an empty/null list means all succeeded; a malformed response, an
 * empty, missing or unknown itemIdentifier fails the whole batch. Typed `unknown` because
 * it checks what a handler really returned at run time.
 */
export function failedMessageIds(event: SQSEvent, response: unknown): { failed: Set<string>; reason?: string } {
  const all = new Set(event.Records.map((record) => record.messageId));
  if (response === undefined || response === null) return { failed: new Set() };
  if (!isRecord(response)) return { failed: all, reason: 'the response is not an object: Lambda fails the whole batch' };
  const items: unknown = response.batchItemFailures;
  if (items === undefined || items === null) return { failed: new Set() };
  if (!Array.isArray(items)) return { failed: all, reason: 'batchItemFailures is not a list: Lambda fails the whole batch' };
  const failed = new Set<string>();
  for (const item of items.values()) {
    const id: unknown = isRecord(item) ? item.itemIdentifier : undefined;
    if (typeof id !== 'string' || !all.has(id)) {
      return { failed: all, reason: `invalid itemIdentifier ${typeof id === 'string' ? `"${id}"` : String(id)}: Lambda fails the whole batch` };
    }
    failed.add(id);
  }
  return { failed };
}

function describe(err: unknown): string {
  return err instanceof Error ? (err.stack ?? `${err.name}: ${err.message}`) : String(err);
}

function isAbort(err: unknown, signal: AbortSignal): boolean {
  return signal.aborted || (err instanceof Error && err.name === 'AbortError');
}

/** Resolves after `ms`, or early when `signal` aborts. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

/** Splits received messages by message group, keeping each group's order (SQS returns a group's messages in order). */
export function splitByGroup(messages: readonly Message[]): Message[][] {
  const groups = new Map<string, Message[]>();
  const ungrouped: Message[][] = [];
  for (const message of messages) {
    const group = message.Attributes?.MessageGroupId;
    // A standard queue has no groups: each message is its own unit.
    if (group === undefined) {
      ungrouped.push([message]);
      continue;
    }
    const list = groups.get(group);
    if (list) list.push(message);
    else groups.set(group, [message]);
  }
  return [...groups.values(), ...ungrouped];
}

/** Starts polling `queueUrl` and invoking `handler` like Lambda's SQS trigger. */
export function startEventSource(opts: EventSourceOptions): EventSource {
  const batchSize = opts.batchSize ?? 10;
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 10) throw new Error('batchSize must be 1-10 (SQS limit)');
  const waitTimeSec = opts.waitTimeSec ?? 20;
  if (waitTimeSec < 0 || waitTimeSec > 20) throw new Error('waitTimeSec must be 0-20');
  const maxConcurrency = opts.maxConcurrency ?? 50;
  if (!Number.isInteger(maxConcurrency) || maxConcurrency < 1) throw new Error('maxConcurrency must be a positive integer');
  const pollerCount = opts.pollers ?? 2;
  if (!Number.isInteger(pollerCount) || pollerCount < 1) throw new Error('pollers must be a positive integer');
  const functionName = opts.functionName ?? 'worker';
  const timeoutMs = (opts.timeoutSec ?? 300) * 1000;
  const memoryLimitInMB = opts.memoryLimitInMB ?? 512;
  const stopGraceMs = opts.stopGraceMs ?? 10_000;
  const log = opts.log ?? ((): void => undefined);
  const controller = new AbortController();
  const { signal } = controller;
  /** Slots taken: batches running (handler or deletes pending) plus slots reserved by receives in progress. */
  let taken = 0;
  /** Batches running, for idle() and stop(). */
  const invocations = new Set<Promise<void>>();
  /** Pollers waiting for a free slot. */
  let waiters: (() => void)[] = [];
  // A function, not the variable: the set changes while idle() awaits.
  const busy = (): boolean => invocations.size > 0;
  const stopped = (): boolean => signal.aborted;

  function release(slots: number): void {
    taken -= slots;
    const woken = waiters;
    waiters = [];
    for (const wake of woken) wake();
  }

  /** Resolves once a slot is free (or on stop). */
  async function freeSlot(): Promise<void> {
    while (taken >= maxConcurrency && !signal.aborted) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          signal.removeEventListener('abort', done);
          resolve();
        };
        waiters.push(done);
        signal.addEventListener('abort', done, { once: true });
      });
    }
  }

  async function deleteRecords(records: SQSRecord[]): Promise<void> {
    if (records.length === 0) return;
    // No abort signal: a batch that succeeded must be deleted even while stopping.
    const result = await opts.sqs.send(
      new DeleteMessageBatchCommand({
        QueueUrl: opts.queueUrl,
        Entries: records.map((record, index) => ({ Id: String(index), ReceiptHandle: record.receiptHandle })),
      }),
    );
    for (const failure of result.Failed ?? []) {
      log(`[sqs] could not delete record ${failure.Id ?? '?'}: ${failure.Code ?? ''} ${failure.Message ?? ''}`);
    }
  }

  async function invoke(messages: Message[]): Promise<void> {
    const event: SQSEvent = { Records: messages.map((message) => toLambdaRecord(message, opts.queueArn, opts.region)) };
    const context = lambdaContext({ functionName, region: opts.region, timeoutMs, memoryLimitInMB });
    const started = Date.now();
    let failed: Set<string>;
    try {
      const response = await opts.handler(event, context);
      const verdict = failedMessageIds(event, response);
      if (verdict.reason !== undefined) log(`[sqs] ${functionName}: ${verdict.reason}`);
      failed = verdict.failed;
    } catch (err) {
      log(`[sqs] ${functionName} threw; all ${event.Records.length} record(s) stay on the queue: ${describe(err)}`);
      failed = new Set(event.Records.map((record) => record.messageId));
    }
    const elapsed = Date.now() - started;
    if (elapsed > timeoutMs) {
      log(`[sqs] ${functionName} ran ${elapsed} ms, over its ${timeoutMs} ms timeout: Lambda would have killed it, batch failed`);
      failed = new Set(event.Records.map((record) => record.messageId));
    }
    if (failed.size > 0 && failed.size < event.Records.length) {
      log(`[sqs] ${functionName}: ${failed.size} of ${event.Records.length} record(s) failed, left for redelivery`);
    }
    await deleteRecords(event.Records.filter((record) => !failed.has(record.messageId)));
  }

  /** Runs one group's batch in a slot already taken; frees the slot when its deletes are done. */
  function launch(messages: Message[]): void {
    // Counted from the moment the batch is ours until its deletes are done, so idle() never
    // sees an empty queue while a batch is still being settled.
    const run = invoke(messages)
      .catch((err: unknown) => log(`[sqs] could not settle a batch: ${describe(err)}`))
      .finally(() => {
        invocations.delete(run);
        release(1);
      });
    invocations.add(run);
  }

  async function poll(): Promise<void> {
    while (!signal.aborted) {
      await freeSlot();
      // Read through a function: stop() may have aborted while we waited.
      if (stopped()) return;
      // Each message may be of another group, so ask for no more than the free slots.
      const want = Math.min(batchSize, maxConcurrency - taken);
      taken += want;
      let messages: Message[];
      try {
        const received = await opts.sqs.send(
          new ReceiveMessageCommand({
            QueueUrl: opts.queueUrl,
            MaxNumberOfMessages: want,
            WaitTimeSeconds: waitTimeSec,
            MessageSystemAttributeNames: ['All'],
            MessageAttributeNames: ['All'],
          }),
          { abortSignal: signal },
        );
        messages = received.Messages ?? [];
      } catch (err) {
        release(want);
        if (isAbort(err, signal)) return;
        log(`[sqs] ReceiveMessage failed, retrying in 1 s: ${describe(err)}`);
        await pause(1000, signal);
        continue;
      }
      const batches = splitByGroup(messages);
      // Keep one slot per batch, give back the rest.
      release(want - batches.length);
      for (const batch of batches) launch(batch);
    }
  }

  const pollers = Array.from({ length: Math.min(pollerCount, maxConcurrency) }, () =>
    poll().catch((err: unknown) => log(`[sqs] poller stopped: ${describe(err)}`)),
  );

  async function queueEmpty(): Promise<boolean> {
    const { Attributes: a = {} } = await opts.sqs.send(
      new GetQueueAttributesCommand({
        QueueUrl: opts.queueUrl,
        AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible', 'ApproximateNumberOfMessagesDelayed'],
      }),
    );
    return (
      Number(a.ApproximateNumberOfMessages ?? '0') === 0 &&
      Number(a.ApproximateNumberOfMessagesNotVisible ?? '0') === 0 &&
      Number(a.ApproximateNumberOfMessagesDelayed ?? '0') === 0
    );
  }

  let stopping: Promise<void> | undefined;
  return {
    stop() {
      stopping ??= (async () => {
        controller.abort();
        let timer: NodeJS.Timeout | undefined;
        const grace = new Promise<'timeout'>((resolve) => {
          timer = setTimeout(() => resolve('timeout'), stopGraceMs);
        });
        const settled = (async (): Promise<'done'> => {
          await Promise.all(pollers);
          await Promise.all([...invocations]);
          return 'done';
        })();
        const outcome = await Promise.race([settled, grace]);
        clearTimeout(timer);
        if (outcome === 'timeout') log(`[sqs] ${invocations.size} invocation(s) still running after ${stopGraceMs} ms; not waiting any longer`);
      })();
      return stopping;
    },
    async idle(idleTimeoutMs = 60_000) {
      const deadline = Date.now() + idleTimeoutMs;
      for (;;) {
        // Checked on both sides of the queue query: a batch may be received in between.
        if (!busy() && (await queueEmpty()) && !busy()) return;
        if (Date.now() > deadline) throw new Error(`event source not idle after ${idleTimeoutMs} ms (${invocations.size} invocation(s) running)`);
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    },
  };
}
