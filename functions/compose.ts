/**
 * The composition root of the worker and dead-letter functions: builds the turn's
 * dependencies (stores, LLM backend, one adapter per enabled channel) from configuration.
 * It lives here, above lib/, because it is the one place that knows every channel.
 *
 * @module
 */
import type { AppConfig } from '../lib/config';
import { createTwilioAdapter } from '../lib/channels/twilio/adapter';
import { createWeChatAdapter, type WeChatAdapterTiming } from '../lib/channels/wechat/adapter';
import { WeChatDelivery } from '../lib/channels/wechat/delivery';
import { createWhatsAppAdapter } from '../lib/channels/whatsapp/adapter';
import type { AdapterDeps, ChannelAdapters } from '../lib/core/channel';
import { createToolRegistry } from '../lib/core/tools';
import type { TurnDeps } from '../lib/core/turn';
import { systemClock, type Clock, type Log } from '../lib/types';
import { createLlmBackend } from '../lib/llm';
import { createDocumentClient } from '../lib/store/client';
import { ContactStore } from '../lib/store/contacts';
import { ConversationStore } from '../lib/store/conversations';
import { MessageStore } from '../lib/store/messages';
import { RateLimitStore } from '../lib/store/rate-limit';
import { UserStateStore } from '../lib/store/user-state';
import { DynamoTokenStore } from '../lib/store/wechat-token';
import type { MetricsSink } from '../lib/core/metrics';

/** Overrides for tests (fake clock, fake fetch). */
export interface WorkerOverrides {
  clock?: Clock;
  fetch?: typeof fetch;
  flushIntervalMs?: number;
  streamLeaseMs?: number;
  /** WeChat customer-service hand-over timing (tests scale it down). */
  wechatTiming?: WeChatAdapterTiming;
  /** Operational metrics (the deployed functions pass EMF; default none). */
  metrics?: MetricsSink;
}

/** Builds the turn's dependencies from configuration. */
export function createTurnDeps(cfg: AppConfig, log: Log, overrides: WorkerOverrides = {}): TurnDeps {
  const clock = overrides.clock ?? systemClock;
  const fetchImpl = overrides.fetch ?? fetch;
  const db = createDocumentClient(cfg.aws);
  const messages = new MessageStore(db, cfg.aws.tableName);
  const adapterDeps: AdapterDeps = { messages, users: new UserStateStore(db, cfg.aws.tableName), clock, log, fetch: fetchImpl };
  // One adapter per enabled channel (a channel without secrets has none).
  const channels: ChannelAdapters = {};
  if (cfg.wechat) {
    const stores = { tokens: new DynamoTokenStore(db, cfg.aws.tableName, cfg.wechat.appId), delivery: new WeChatDelivery(messages, db, cfg.aws.tableName) };
    channels.wechat = createWeChatAdapter(cfg.wechat, adapterDeps, stores, overrides.wechatTiming);
  }
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
    ...(overrides.metrics ? { metrics: overrides.metrics } : {}),
    tools: createToolRegistry({ contacts: new ContactStore(db, cfg.aws.tableName), clock, log }),
    // About once a second: a held WeChat delivery polls the record and shows what is there near
    // its deadline; writing more often only rewrites the growing item (see README, Operations).
    flushIntervalMs: overrides.flushIntervalMs ?? 1000,
    streamLeaseMs: overrides.streamLeaseMs ?? 120_000,
  };
}
