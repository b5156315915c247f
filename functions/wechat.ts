/** Lambda entry for GET/POST /wechat: builds dependencies once per cold start, then delegates. */
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { config } from '../lib/config';
import { fromApiGateway, serve, text, toApiGateway } from '../lib/channels/http';
import { handleWeChat, secureRandom, type WeChatIngressDeps } from '../lib/channels/wechat/ingress';
import { createLog } from '../lib/core/log';
import { systemClock } from '../lib/core/types';
import { createSqsClient, SqsJobQueue } from '../lib/queue/jobs';
import { createDocumentClient } from '../lib/store/client';
import { MessageStore } from '../lib/store/messages';

const cfg = config();
const log = createLog('wechat', cfg.logLevel);
const deps: WeChatIngressDeps | undefined = cfg.wechat && {
  config: cfg.wechat,
  messages: new MessageStore(createDocumentClient(cfg.aws), cfg.aws.tableName),
  queue: new SqsJobQueue(createSqsClient(cfg.aws), cfg.aws.queueUrl),
  clock: systemClock,
  log,
  random: secureRandom,
  pollMs: 150,
  holdMs: 5_300,
  csPassiveWaitMs: 4_000,
};

export const handler = async (event: APIGatewayProxyEventV2): Promise<APIGatewayProxyStructuredResultV2> => {
  const receivedAtMs = Date.now();
  // A channel without secrets is disabled: its endpoint does not exist.
  if (!deps) return toApiGateway(text(404, 'wechat channel is not configured'));
  const ready = deps;
  return toApiGateway(await serve(log, () => handleWeChat(ready, fromApiGateway(event, receivedAtMs))));
};
