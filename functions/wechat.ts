/** Lambda entry for GET/POST /wechat: builds dependencies once per cold start, then delegates. */
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { functionConfig, type AppConfig } from '../lib/config';
import { webhookHandler } from '../lib/channels/http';
import { createWeChatIngressDeps, handleWeChat, secureRandom, WECHAT_INGRESS_TIMINGS, type WeChatIngressDeps } from '../lib/channels/wechat/ingress';
import { lazyHandler } from '../lib/core/lazy';
import { emfMetrics, type MetricsSink } from '../lib/core/metrics';
import { createLog } from '../lib/core/log';
import { systemClock } from '../lib/types';
import { createSqsClient, SqsJobQueue } from '../lib/queue/jobs';
import { createDocumentClient } from '../lib/store/client';

/** Knobs tests turn (timing is scaled down there; production uses the defaults). */
export type WeChatOverrides = Partial<Pick<WeChatIngressDeps, 'clock' | 'random' | 'pollMs' | 'holdMs' | 'log'>> & { metrics?: MetricsSink };

/** Builds the handler for a configuration. */
export function createWeChatHandler(cfg: AppConfig, overrides: WeChatOverrides = {}): (event: APIGatewayProxyEventV2) => Promise<APIGatewayProxyStructuredResultV2> {
  const log = overrides.log ?? createLog('wechat', cfg.logLevel);
  const clock = overrides.clock ?? systemClock;
  const deps: WeChatIngressDeps | undefined =
    cfg.wechat &&
    createWeChatIngressDeps(cfg, cfg.wechat, {
      db: createDocumentClient(cfg.aws),
      queue: new SqsJobQueue(createSqsClient(cfg.aws), cfg.aws.queueUrl),
      clock,
      log,
      random: overrides.random ?? secureRandom,
      pollMs: overrides.pollMs ?? WECHAT_INGRESS_TIMINGS.pollMs,
      holdMs: overrides.holdMs ?? WECHAT_INGRESS_TIMINGS.holdMs,
      ...(overrides.metrics ? { metrics: overrides.metrics } : {}),
    });
  // A channel without secrets is disabled: its endpoint does not exist (404).
  return webhookHandler('wechat', deps, log, clock, handleWeChat, overrides.metrics);
}

// Secrets come from SSM at the first invocation of a cold start (see lib/core/lazy.ts).
export const handler = lazyHandler(async () => createWeChatHandler(await functionConfig('wechat'), { metrics: emfMetrics('wechat') }));
