/** Lambda entry for POST /twilio/voice, /twilio/voice/gather and /twilio/voice/poll: builds dependencies once per cold start, then delegates. */
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { functionConfig, type AppConfig } from '../lib/config';
import { webhookHandler } from '../lib/channels/http';
import { handleTwilioVoice, VOICE_TIMINGS, type TwilioVoiceDeps } from '../lib/channels/twilio/voice';
import { lazyHandler } from '../lib/core/lazy';
import { emfMetrics, type MetricsSink } from '../lib/core/metrics';
import { createLog } from '../lib/core/log';
import { systemClock } from '../lib/types';
import { createSqsClient, SqsJobQueue } from '../lib/queue/jobs';
import { createDocumentClient } from '../lib/store/client';
import { MessageStore } from '../lib/store/messages';

/** Knobs tests turn (timing is scaled down there; production uses the defaults). */
export type TwilioVoiceOverrides = Partial<
  Pick<TwilioVoiceDeps, 'clock' | 'log' | 'pollWaitMs' | 'pollIntervalMs' | 'maxPolls' | 'fillerPauseSec' | 'pollPauseSec'>
> & { metrics?: MetricsSink };

/** Builds the handler for a configuration; 404 when Twilio is not configured. */
export function createTwilioVoiceHandler(
  cfg: AppConfig,
  overrides: TwilioVoiceOverrides = {},
): (event: APIGatewayProxyEventV2) => Promise<APIGatewayProxyStructuredResultV2> {
  const log = overrides.log ?? createLog('twilio-voice', cfg.logLevel);
  const clock = overrides.clock ?? systemClock;
  const deps: TwilioVoiceDeps | undefined = cfg.twilio && {
    config: cfg.twilio,
    publicBaseUrl: cfg.publicBaseUrl,
    allowedUsers: cfg.allowedUsers,
    messages: new MessageStore(createDocumentClient(cfg.aws), cfg.aws.tableName),
    queue: new SqsJobQueue(createSqsClient(cfg.aws), cfg.aws.queueUrl),
    clock,
    log,
    pollWaitMs: overrides.pollWaitMs ?? VOICE_TIMINGS.pollWaitMs,
    pollIntervalMs: overrides.pollIntervalMs ?? VOICE_TIMINGS.pollIntervalMs,
    maxPolls: overrides.maxPolls ?? VOICE_TIMINGS.maxPolls,
    fillerPauseSec: overrides.fillerPauseSec ?? VOICE_TIMINGS.fillerPauseSec,
    pollPauseSec: overrides.pollPauseSec ?? VOICE_TIMINGS.pollPauseSec,
  };
  // A channel without secrets is disabled: its endpoint does not exist (404).
  return webhookHandler('twilio', deps, log, clock, handleTwilioVoice, overrides.metrics);
}

// Secrets come from SSM at the first invocation of a cold start (see lib/core/lazy.ts).
export const handler = lazyHandler(async () => createTwilioVoiceHandler(await functionConfig('twilioVoice'), { metrics: emfMetrics('twilioVoice') }));
