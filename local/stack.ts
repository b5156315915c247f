/**
 * Integration-test stack: DynamoDB + SQS emulators on 127.0.0.1 random ports, with the
 * table and queues created from lib/infra/*.json under names unique to this stack.
 *
 * The emulators run in a child process (local/emulator-process.ts): fauxqs is
 * ESM-only and cannot be loaded inside Jest's module sandbox on Node 20. Everything
 * else (clients, resource creation, the event source) runs in the test process and
 * reaches the emulators over HTTP, just as the functions reach AWS.
 */
import { randomBytes } from 'node:crypto';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DeleteMessageBatchCommand, ReceiveMessageCommand, SQSClient, type Message } from '@aws-sdk/client-sqs';
import type { DynamoEngine } from './emulators';
import { spawnEmulators } from './emulator-process';
import { awsClientConfig, createResources, LOCAL_CREDENTIALS } from './resources';

/** Options of {@link startTestStack}. */
export interface TestStackOptions {
  /** DynamoDB engine (default dynalite: ~40 ms start; `dynamodb-local` for TransactWriteItems/TTL). */
  engine?: 'auto' | DynamoEngine;
  /** Job queue VisibilityTimeout override (queue.json says 1800 s; tests want redeliveries in ~1 s). */
  visibilityTimeoutSec?: number;
  /** Region for clients, ARNs and queue URLs (default us-east-1). */
  region?: string;
}

/** Options of {@link TestStack.receiveAll}. */
export interface ReceiveAllOptions {
  /** Leave the messages on the queue (default: delete each batch, which FIFO needs to release the next message of a group). */
  keep?: boolean;
  /** Visibility timeout for received messages when `keep` is set (default 0: visible again at once). */
  visibilityTimeoutSec?: number;
}

/** A running test stack. */
export interface TestStack {
  /** Environment for `loadConfig` / child processes: TABLE_NAME, QUEUE_URL, endpoints, region, dummy credentials. */
  env: Record<string, string>;
  dynamo: DynamoDBClient;
  sqs: SQSClient;
  region: string;
  engine: DynamoEngine;
  tableName: string;
  queueUrl: string;
  queueArn: string;
  deadLetterQueueUrl: string;
  deadLetterQueueArn: string;
  dynamoEndpoint: string;
  sqsEndpoint: string;
  /** Whether the TTL setting took (false on dynalite, which lacks UpdateTimeToLive). */
  ttlEnabled: boolean;
  /**
   * Every message currently receivable from `queueUrl`, with all system and message
   * attributes, in receive order. Drains (deletes) by default; see {@link ReceiveAllOptions}.
   */
  receiveAll(queueUrl: string, opts?: ReceiveAllOptions): Promise<Message[]>;
  /** Destroys the clients and stops the emulators (their process exits). */
  stop(): Promise<void>;
}

/** Starts emulators and creates this stack's table and queues. Call `stop()` in `afterAll`. */
export async function startTestStack(opts: TestStackOptions = {}): Promise<TestStack> {
  const region = opts.region ?? 'us-east-1';
  const emulators = await spawnEmulators({ engine: opts.engine ?? 'dynalite' });
  try {
    const id = `t${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
    const resources = await createResources({
      dynamoEndpoint: emulators.dynamoEndpoint,
      sqsEndpoint: emulators.sqsEndpoint,
      region,
      tableName: `llm-gateway-${id}`,
      queueName: `llm-gateway-${id}-jobs.fifo`,
      deadLetterQueueName: `llm-gateway-${id}-dlq.fifo`,
      ...(opts.visibilityTimeoutSec !== undefined ? { visibilityTimeoutSec: opts.visibilityTimeoutSec } : {}),
    });
    const dynamo = new DynamoDBClient(awsClientConfig(emulators.dynamoEndpoint, region));
    const sqs = new SQSClient(awsClientConfig(emulators.sqsEndpoint, region));

    async function receiveAll(queueUrl: string, receiveOpts: ReceiveAllOptions = {}): Promise<Message[]> {
      const all: Message[] = [];
      const seen = new Set<string>();
      for (;;) {
        const { Messages = [] } = await sqs.send(
          new ReceiveMessageCommand({
            QueueUrl: queueUrl,
            MaxNumberOfMessages: 10,
            WaitTimeSeconds: 0,
            MessageSystemAttributeNames: ['All'],
            MessageAttributeNames: ['All'],
            ...(receiveOpts.keep ? { VisibilityTimeout: receiveOpts.visibilityTimeoutSec ?? 0 } : {}),
          }),
        );
        // With `keep` and visibility 0 the same messages come straight back: stop at the first repeat.
        const fresh = Messages.filter((m) => m.MessageId !== undefined && !seen.has(m.MessageId));
        if (fresh.length === 0) return all;
        for (const m of fresh) if (m.MessageId !== undefined) seen.add(m.MessageId);
        all.push(...fresh);
        if (!receiveOpts.keep) {
          await sqs.send(
            new DeleteMessageBatchCommand({
              QueueUrl: queueUrl,
              Entries: fresh.map((m, index) => ({ Id: String(index), ReceiptHandle: m.ReceiptHandle ?? '' })),
            }),
          );
        }
      }
    }

    return {
      env: {
        TABLE_NAME: resources.tableName,
        QUEUE_URL: resources.queueUrl,
        DYNAMODB_ENDPOINT: emulators.dynamoEndpoint,
        SQS_ENDPOINT: emulators.sqsEndpoint,
        AWS_REGION: region,
        AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
        AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
      },
      dynamo,
      sqs,
      region,
      engine: emulators.engine,
      tableName: resources.tableName,
      queueUrl: resources.queueUrl,
      queueArn: resources.queueArn,
      deadLetterQueueUrl: resources.deadLetterQueueUrl,
      deadLetterQueueArn: resources.deadLetterQueueArn,
      dynamoEndpoint: emulators.dynamoEndpoint,
      sqsEndpoint: emulators.sqsEndpoint,
      ttlEnabled: resources.ttlEnabled,
      receiveAll,
      async stop() {
        dynamo.destroy();
        sqs.destroy();
        await emulators.stop();
      },
    };
  } catch (err) {
    await emulators.stop();
    throw err;
  }
}
