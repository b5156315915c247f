/**
 * Lambda entry for GET/POST /whatsapp: builds dependencies once per cold start, then
 * delegates. Kept small on purpose (design principle 7): no LLM SDK in this bundle.
 */
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { functionConfig, type AppConfig } from '../lib/config';
import { webhookHandler } from '../lib/channels/http';
import { handleWhatsApp, type WhatsAppIngressDeps } from '../lib/channels/whatsapp/ingress';
import { lazyHandler } from '../lib/core/lazy';
import { emfMetrics, type MetricsSink } from '../lib/core/metrics';
import { createLog } from '../lib/core/log';
import { systemClock } from '../lib/types';
import { createSqsClient, SqsJobQueue } from '../lib/queue/jobs';
import { createDocumentClient } from '../lib/store/client';
import { MessageStore } from '../lib/store/messages';
import { UserStateStore } from '../lib/store/user-state';

/** Knobs tests turn (a pinned clock, a log to assert on). */
export type WhatsAppOverrides = Partial<Pick<WhatsAppIngressDeps, 'clock' | 'log'>> & { metrics?: MetricsSink };

/** Builds the handler for a configuration; the endpoint answers 404 when WhatsApp is not configured. */
export function createWhatsAppHandler(
  cfg: AppConfig,
  overrides: WhatsAppOverrides = {},
): (event: APIGatewayProxyEventV2) => Promise<APIGatewayProxyStructuredResultV2> {
  const log = overrides.log ?? createLog('whatsapp', cfg.logLevel);
  const clock = overrides.clock ?? systemClock;
  let deps: WhatsAppIngressDeps | undefined;
  if (cfg.whatsapp) {
    const db = createDocumentClient(cfg.aws);
    deps = {
      config: cfg.whatsapp,
      messages: new MessageStore(db, cfg.aws.tableName),
      users: new UserStateStore(db, cfg.aws.tableName),
      queue: new SqsJobQueue(createSqsClient(cfg.aws), cfg.aws.queueUrl),
      clock,
      log,
    };
  }
  // A channel without secrets is disabled: its endpoint does not exist (404).
  return webhookHandler('whatsapp', deps, log, clock, handleWhatsApp, overrides.metrics);
}

// Secrets come from SSM at the first invocation of a cold start (see lib/core/lazy.ts).
export const handler = lazyHandler(async () => createWhatsAppHandler(await functionConfig('whatsapp'), { metrics: emfMetrics('whatsapp') }));
