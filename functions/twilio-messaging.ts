/** Lambda entry for POST /twilio/messaging (and its WhatsApp status callbacks): builds dependencies once per cold start, then delegates. */
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { functionConfig, type AppConfig } from '../lib/config';
import { webhookHandler } from '../lib/channels/http';
import { handleTwilioMessaging, type TwilioMessagingDeps } from '../lib/channels/twilio/messaging';
import { lazyHandler } from '../lib/core/lazy';
import { emfMetrics, type MetricsSink } from '../lib/core/metrics';
import { createLog } from '../lib/core/log';
import { systemClock } from '../lib/types';
import { createSqsClient, SqsJobQueue } from '../lib/queue/jobs';
import { createDocumentClient } from '../lib/store/client';
import { MessageStore } from '../lib/store/messages';
import { UserStateStore } from '../lib/store/user-state';

/** Knobs tests turn (clock, log, the fetch used for a re-engagement template). */
export type TwilioMessagingOverrides = Partial<Pick<TwilioMessagingDeps, 'clock' | 'log' | 'fetch'>> & { metrics?: MetricsSink };

/** Builds the handler for a configuration; 404 when Twilio is not configured. */
export function createTwilioMessagingHandler(
  cfg: AppConfig,
  overrides: TwilioMessagingOverrides = {},
): (event: APIGatewayProxyEventV2) => Promise<APIGatewayProxyStructuredResultV2> {
  const log = overrides.log ?? createLog('twilio-messaging', cfg.logLevel);
  const clock = overrides.clock ?? systemClock;
  const db = cfg.twilio && createDocumentClient(cfg.aws);
  const deps: TwilioMessagingDeps | undefined = cfg.twilio &&
    db && {
      config: cfg.twilio,
      publicBaseUrl: cfg.publicBaseUrl,
      messages: new MessageStore(db, cfg.aws.tableName),
      users: new UserStateStore(db, cfg.aws.tableName),
      queue: new SqsJobQueue(createSqsClient(cfg.aws), cfg.aws.queueUrl),
      clock,
      log,
      fetch: overrides.fetch ?? fetch,
    };
  // A channel without secrets is disabled: its endpoint does not exist (404).
  return webhookHandler('twilio', deps, log, clock, handleTwilioMessaging, overrides.metrics);
}

// Secrets come from SSM at the first invocation of a cold start (see lib/core/lazy.ts).
export const handler = lazyHandler(async () => createTwilioMessagingHandler(await functionConfig('twilioMessaging'), { metrics: emfMetrics('twilioMessaging') }));
