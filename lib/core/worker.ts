/**
 * Wires the worker: from validated configuration to the dependencies of the turn.
 * Kept out of the ingress bundles (it pulls in the LLM SDK).
 */
import type { Context, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import type { SQSClient } from '@aws-sdk/client-sqs';
import type { AppConfig } from '../config';
import { createTwilioAdapter } from '../channels/twilio/adapter';
import { createWeChatAdapter, type WeChatAdapterTiming } from '../channels/wechat/adapter';
import { createWhatsAppAdapter } from '../channels/whatsapp/adapter';
import { createLlmBackend } from '../llm';
import { ConversationStore } from '../store/conversations';
import { createDocumentClient } from '../store/client';
import { ContactStore } from '../store/contacts';
import { MessageStore } from '../store/messages';
import { RateLimitStore } from '../store/rate-limit';
import { UserStateStore } from '../store/user-state';
import { groupRecords, handleBatch, scheduleRetries, type RetryBackoff } from './batch';
import type { AdapterDeps, ChannelAdapters } from './channel';
import { createToolRegistry } from './tools';
import { runTurn, type TurnDeps, type TurnOptions } from './turn';
import { systemClock, type Clock, type Log } from './types';

/** Overrides for tests (fake clock, fake fetch). */
export interface WorkerOverrides {
  clock?: Clock;
  fetch?: typeof fetch;
  flushIntervalMs?: number;
  streamLeaseMs?: number;
  /** WeChat customer-service hand-over timing (tests scale it down). */
  wechatTiming?: WeChatAdapterTiming;
}

/** Builds the turn's dependencies from configuration. */
export function createTurnDeps(cfg: AppConfig, log: Log, overrides: WorkerOverrides = {}): TurnDeps {
  const clock = overrides.clock ?? systemClock;
  const fetchImpl = overrides.fetch ?? fetch;
  const db = createDocumentClient(cfg.aws);
  const messages = new MessageStore(db, cfg.aws.tableName);
  const adapterDeps: AdapterDeps = { db, tableName: cfg.aws.tableName, messages, users: new UserStateStore(db, cfg.aws.tableName), clock, log, fetch: fetchImpl };
  // One adapter per enabled channel (a channel without secrets has none).
  const channels: ChannelAdapters = {};
  if (cfg.wechat) channels.wechat = createWeChatAdapter(cfg.wechat, adapterDeps, overrides.wechatTiming);
  if (cfg.whatsapp) channels.whatsapp = createWhatsAppAdapter(cfg.whatsapp, adapterDeps);
  if (cfg.twilio) channels.twilio = createTwilioAdapter(cfg.twilio, adapterDeps, { publicBaseUrl: cfg.publicBaseUrl });
  return {
    config: cfg,
    messages,
    conversations: new ConversationStore(db, cfg.aws.tableName),
    rateLimits: new RateLimitStore(db, cfg.aws.tableName),
    llm: createLlmBackend(cfg.llm, { fetch: fetchImpl, sleep: (ms) => clock.sleep(ms) }),
    channels,
    clock,
    log,
    tools: createToolRegistry({ contacts: new ContactStore(db, cfg.aws.tableName), clock, log }),
    flushIntervalMs: overrides.flushIntervalMs ?? 300,
    streamLeaseMs: overrides.streamLeaseMs ?? 120_000,
  };
}

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
 * come back after a short backoff instead of the queue's 30-minute visibility timeout.
 * With a Lambda `context`, the LLM calls get a time budget from its remaining time.
 */
export function createWorkerHandler(
  deps: TurnDeps,
  retries?: { sqs: SQSClient; queueUrl: string; backoff?: RetryBackoff },
): (event: SQSEvent, context?: WorkerContext) => Promise<SQSBatchResponse> {
  return async (event, context) => {
    const deadline: TurnOptions = context ? { llmDeadlineMs: llmDeadlineMs(deps, context.getRemainingTimeInMillis()) } : {};
    // Only a record behind another of its user in this batch may be handed back for lack of time.
    const heads = new Set(groupRecords(event.Records).map((group) => group[0]?.messageId));
    const response = await handleBatch(
      event,
      async (job, record) => {
        await runTurn(deps, job, { ...deadline, mayDefer: !heads.has(record.messageId) });
      },
      deps.log,
    );
    if (retries && response.batchItemFailures.length > 0) await scheduleRetries(retries.sqs, retries.queueUrl, event, response, deps.log, retries.backoff);
    return response;
  };
}
