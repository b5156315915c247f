/**
 * The whole gateway in one test process, wired exactly as in AWS: the Lambda handlers
 * the functions export, behind a local API Gateway on 127.0.0.1, the worker fed by the
 * SQS event-source emulator, state in the embedded DynamoDB, the LLM a fake over HTTP.
 */
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { createWeChatHandler, type WeChatOverrides } from '../functions/wechat';
import { loadConfig, type AppConfig } from '../lib/config';
import { createDeadLetterHandler, createWorkerHandler, type WorkerContext } from '../lib/core/worker';
import { createTurnDeps, type WorkerOverrides } from '../functions/compose';
import { silentLog, type Log } from '../lib/types';

const consoleLog: Log = { debug: console.debug, info: console.info, warn: console.warn, error: console.error };
import { startEventSource } from './sqs-event-source';
import { createSqsClient } from '../lib/queue/jobs';
import { MessageStore } from '../lib/store/messages';
import { ConversationStore } from '../lib/store/conversations';
import { createDocumentClient } from '../lib/store/client';
import type { TurnDeps } from '../lib/core/turn';
import { serveLambdas, type HttpHandler, type LambdaHttp } from './lambda-http';
import { startFaultProxy, type FaultProxy } from './fault-proxy';
import { startTestStack, type TestStack } from './stack';

/** A running gateway for a test suite. */
export interface Gateway {
  stack: TestStack;
  config: AppConfig;
  http: LambdaHttp;
  turnDeps: TurnDeps;
  messages: MessageStore;
  conversations: ConversationStore;
  /** The fault proxies, with `faultProxies: true`. */
  faults: { dynamo: FaultProxy; sqs: FaultProxy } | undefined;
  /** Worker invocations seen (batches). */
  batches: SQSEvent[];
  /** Resolves when the job queue and the dead-letter queue are empty and their functions idle. */
  idle(): Promise<void>;
  stop(): Promise<void>;
}

/** Options for {@link startGateway}. */
export interface GatewayOptions {
  env: Record<string, string>;
  wechat?: WeChatOverrides;
  worker?: WorkerOverrides;
  /** Wraps the worker handler (e.g. to inject a failure). */
  wrapWorker?: (inner: (event: SQSEvent, context?: WorkerContext) => Promise<SQSBatchResponse>) => (event: SQSEvent, context?: WorkerContext) => Promise<SQSBatchResponse>;
  /** The worker's Lambda timeout in seconds, as the event source reports it in the context (default 300). */
  workerTimeoutSec?: number;
  visibilityTimeoutSec?: number;
  /** Set false to leave failed records to the queue's visibility timeout (default: short backoff, as in AWS). */
  retryDelays?: boolean;
  /** Extra HTTP routes (other channels). */
  routes?: (cfg: AppConfig) => Record<string, HttpHandler>;
  /** The log of the worker and the WeChat function (default: silent, or the console with TEST_LOG set). */
  log?: Log;
  /**
   * Put fault proxies between the functions (ingress handlers, worker, dead-letter
   * function) and the emulators: `gw.faults.dynamo` / `gw.faults.sqs`. The event sources
   * (Lambda's side) and the test's own store reads go to the emulators directly.
   */
  faultProxies?: boolean;
  /** Set false to run no worker on the job queue in this process (a test runs its own, e.g. one it can kill). */
  startWorker?: boolean;
  /** Set false to leave the DLQ unconsumed (to look at what SQS redrove there). */
  deadLetterFunction?: boolean;
  /**
   * Other endpoints for the functions' DynamoDB and SQS calls, in front of the stack's
   * emulators (e.g. the counting proxies of `npm run cost`). Not with `faultProxies`.
   */
  endpoints?: (stack: TestStack) => Promise<{ dynamo: string; sqs: string }>;
  /** Worker invocations running at once (default 4). */
  workerConcurrency?: number;
}

/** Starts the gateway on fresh emulators. */
export async function startGateway(opts: GatewayOptions): Promise<Gateway> {
  const visibility = opts.visibilityTimeoutSec ?? 10;
  const stack = await startTestStack({ visibilityTimeoutSec: visibility });
  const faults = opts.faultProxies ? { dynamo: await startFaultProxy(stack.dynamoEndpoint), sqs: await startFaultProxy(stack.sqsEndpoint) } : undefined;
  const other = opts.endpoints ? await opts.endpoints(stack) : undefined;
  const proxied = faults ? { DYNAMODB_ENDPOINT: faults.dynamo.url, SQS_ENDPOINT: faults.sqs.url } : other ? { DYNAMODB_ENDPOINT: other.dynamo, SQS_ENDPOINT: other.sqs } : {};
  const config = loadConfig({ ...stack.env, ...opts.env, ...proxied });
  const log = opts.log ?? (process.env.TEST_LOG ? consoleLog : silentLog);
  // Scaled-clock defaults: progress written every 20 ms, and WeChat's written at every flush
  // (its production pacing assumes WeChat's real 5 s retries); a caller running at real
  // time (npm run cost) passes its own `wechatTiming`.
  const turnDeps = createTurnDeps(config, log, { flushIntervalMs: 20, wechatTiming: { handOverMarginMs: 1_000, progress: { idleMs: 0 } }, ...opts.worker });
  // Retry delays scaled like the rest of the test timing: 1 s doubling, capped by the visibility timeout.
  const inner = createWorkerHandler(
    turnDeps,
    opts.retryDelays === false ? undefined : { sqs: createSqsClient(config.aws), queueUrl: stack.queueUrl, backoff: { baseSec: 1, maxSec: visibility } },
  );
  const batches: SQSEvent[] = [];
  const wrapped = opts.wrapWorker ? opts.wrapWorker(inner) : inner;
  const source = opts.startWorker === false ? undefined : startEventSource({
    sqs: stack.sqs,
    queueUrl: stack.queueUrl,
    queueArn: stack.queueArn,
    region: config.aws.region,
    waitTimeSec: 1,
    // Lambda runs one batch per active message group (up to the trigger's maximumConcurrency): so do we.
    maxConcurrency: opts.workerConcurrency ?? 50,
    ...(opts.workerTimeoutSec !== undefined ? { timeoutSec: opts.workerTimeoutSec } : {}),
    handler: async (event, context) => {
      batches.push(event);
      return wrapped(event, context);
    },
  });
  // The dead-letter function on the DLQ, as deployed.
  const deadLetterHandler = createDeadLetterHandler(turnDeps);
  const deadLetterSource = opts.deadLetterFunction === false ? undefined : startEventSource({
    sqs: stack.sqs,
    queueUrl: stack.deadLetterQueueUrl,
    queueArn: stack.deadLetterQueueArn,
    region: config.aws.region,
    waitTimeSec: 1,
    functionName: 'deadLetter',
    handler: (event) => deadLetterHandler(event),
  });
  const routes: Record<string, HttpHandler> = {
    '/wechat': createWeChatHandler(config, { log, ...opts.wechat }),
    ...(opts.routes ? opts.routes(config) : {}),
  };
  const http = await serveLambdas(routes);
  const db = createDocumentClient({ ...config.aws, dynamoEndpoint: stack.dynamoEndpoint });
  return {
    stack,
    config,
    http,
    turnDeps,
    messages: new MessageStore(db, config.aws.tableName),
    conversations: new ConversationStore(db, config.aws.tableName),
    batches,
    faults,
    async idle() {
      await source?.idle();
      await deadLetterSource?.idle();
    },
    async stop() {
      faults?.dynamo.clear();
      faults?.sqs.clear();
      await Promise.all([source?.stop(), deadLetterSource?.stop()]);
      await http.close();
      await faults?.dynamo.close();
      await faults?.sqs.close();
      await stack.stop();
    },
  };
}
