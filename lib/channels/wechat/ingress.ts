/**
 * The WeChat webhook: open (verify, decrypt, parse; request.ts) → bind the signed query
 * to the message (replay.ts) → claim → enqueue → respond (respond.ts) → reply XML.
 *
 * The state is in DynamoDB, so the deliveries may land on any Lambda instance, and the
 * job is claimed once, so the LLM is called once.
 *
 * @module
 */
import { METRIC, type MetricsSink } from '../../core/metrics';
import { randomBytes } from 'node:crypto';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { AppConfig, WeChatConfig } from '../../config';
import { acceptMessage, type IngressDeps } from '../../core/ingress';
import type { Clock, Job, Log } from '../../types';
import type { JobQueue } from '../../queue/jobs';
import { MessageStore, type ClaimResult } from '../../store/messages';
import { text, xml, type HttpRequest, type HttpResponse } from '../http';
import { buildEncryptedReply } from './crypto';
import { WeChatDelivery, type DeliveryStore } from './delivery';
import { DynamoSignatureBindings, type SignatureBindings } from './replay';
import { aesKeys, openRequest, toJob, type ReplyContext } from './request';
import { isFetch, respondCustomerService, respondFetch, respondPassive, type Reply, type Respond, type RespondDeps } from './respond';
import { buildTextReply } from './xml-reply';

export { WECHAT_MAX_BODY_BYTES, UNSUPPORTED_TEXT } from './request';
export { PUSH_FAILED_LEAD } from './respond';

/** Dependencies of the WeChat webhook. */
export interface WeChatIngressDeps extends IngressDeps, RespondDeps {
  config: WeChatConfig;
  log: Log;
  delivery: DeliveryStore;
  bindings: SignatureBindings;
  /** Random bytes for encrypted replies (pinned in tests). */
  random: (size: number) => Buffer;
  /** Counts reply pages by path (`WeChatAnswers`). */
  metrics?: MetricsSink;
}

/** WeChat's literal "nothing to say" body: no reply, no retry, no error shown to the user. */
const SUCCESS = 'success';

function reply(deps: WeChatIngressDeps, ctx: ReplyContext, content: string): HttpResponse {
  const nowSec = Math.floor(deps.clock.nowMs() / 1000);
  const plain = buildTextReply({ toUser: ctx.user, fromUser: ctx.account, createTimeSec: nowSec, content });
  if (!ctx.encrypted) return xml(200, plain);
  // Safe mode: encrypt with a fresh nonce and timestamp and sign.
  const key = aesKeys(deps.config)[ctx.keyIndex];
  if (!key) throw new Error('encrypted reply without an EncodingAESKey');
  return xml(
    200,
    buildEncryptedReply({
      replyXml: plain,
      appId: deps.config.appId,
      key,
      token: deps.config.token,
      timestampSec: nowSec,
      nonce: String(deps.random(4).readUInt32BE(0)),
      random16: deps.random(16),
    }),
  );
}

function reject(deps: WeChatIngressDeps, status: number, reason: string): HttpResponse {
  // Never echo the body or the reason's details to the caller (design principle 2).
  deps.log.warn('wechat request rejected', { status, reason });
  return text(status, status === 413 ? 'payload too large' : status === 400 ? 'bad request' : status === 405 ? 'method not allowed' : 'forbidden');
}

/** Claims the message and picks its reply policy: a "1" fetch, or the configured mode. */
async function claim(deps: WeChatIngressDeps, job: Job, fetchable: boolean): Promise<{ claimed: ClaimResult; respond: Respond }> {
  if (fetchable && (await isFetch(deps.delivery, job, deps.clock.nowMs()))) {
    return { claimed: await deps.delivery.claimFetch(job, deps.clock.nowMs()), respond: respondFetch };
  }
  const claimed = await acceptMessage(deps, job, { pending: job.input.kind !== 'forget' });
  return { claimed, respond: deps.config.replyMode === 'customer_service' ? respondCustomerService : respondPassive };
}

/** Handles GET (URL verification) and POST (messages) on `/wechat`. */
export async function handleWeChat(deps: WeChatIngressDeps, req: HttpRequest): Promise<HttpResponse> {
  const opened = openRequest(deps.config, req);
  if (opened.kind === 'rejected') return reject(deps, opened.status, opened.reason);
  if (opened.kind === 'verify') return text(200, opened.echostr);
  const turn = toJob(deps.config, opened.msg, req.receivedAtMs);
  if (turn.kind === 'ack') {
    deps.log.info('wechat message acknowledged without an answer', { reason: turn.reason });
    return text(200, SUCCESS);
  }
  let answer: Reply;
  try {
    const bound = await deps.bindings.bind(opened.binding, deps.clock.nowMs());
    // Another message under a signature already used: a replayed query with a forged body.
    if (bound === 'conflict') return reject(deps, 403, 'signature reused for another message');
    const { claimed, respond } = await claim(deps, turn.job, turn.fetchable);
    answer = await respond(deps, { job: turn.job, record: claimed.record, created: claimed.created, receivedAtMs: req.receivedAtMs });
    if (answer.kind === 'text') deps.metrics?.count(METRIC.wechatAnswers, { path: respond === respondFetch ? 'fetch' : 'passive' });
  } catch (err) {
    // DynamoDB or SQS failed. WeChat shows an error for a 5xx and does not retry it, but
    // retries (three deliveries in all) a request that gets no answer within 5 s
    // (https://developers.weixin.qq.com/doc/offiaccount/en/Message_Management/Receiving_standard_messages.html):
    // so answer nothing in time; the claim and the enqueue are idempotent, so the
    // redelivery completes what this one could not, and nothing is lost.
    deps.log.error('wechat ingress failed; holding the line so WeChat retries', { error: err instanceof Error ? `${err.name}: ${err.message}` : String(err) });
    await deps.clock.sleep(req.receivedAtMs + deps.holdMs - deps.clock.nowMs());
    return text(503, 'try again');
  }
  return answer.kind === 'text' ? reply(deps, opened.ctx, answer.content) : text(200, SUCCESS);
}

/** The webhook's timings, the defaults of {@link WeChatIngressParts} (tests scale them down). */
export const WECHAT_INGRESS_TIMINGS: Readonly<Pick<WeChatIngressParts, 'pollMs' | 'holdMs'>> = {
  pollMs: 150,
  // WeChat drops the connection at 5 s and retries
  // (https://developers.weixin.qq.com/doc/offiaccount/en/Message_Management/Receiving_standard_messages.html):
  // holding a little longer makes sure it retries.
  holdMs: 5_300,
};

/** Timing and sources the entry (or a test) chooses. */
export interface WeChatIngressParts {
  db: DynamoDBDocumentClient;
  queue: JobQueue;
  clock: Clock;
  log: Log;
  random: (size: number) => Buffer;
  pollMs: number;
  holdMs: number;
  metrics?: MetricsSink;
}

/** Builds the webhook's dependencies on the message table. */
export function createWeChatIngressDeps(app: AppConfig, cfg: WeChatConfig, parts: WeChatIngressParts): WeChatIngressDeps {
  const messages = new MessageStore(parts.db, app.aws.tableName);
  return {
    config: cfg,
    messages,
    queue: parts.queue,
    clock: parts.clock,
    log: parts.log,
    random: parts.random,
    pollMs: parts.pollMs,
    holdMs: parts.holdMs,
    delivery: new WeChatDelivery(messages, parts.db, app.aws.tableName),
    bindings: new DynamoSignatureBindings(parts.db, app.aws.tableName, cfg.maxClockSkewSec),
    pageBytes: cfg.pageBytes,
    fetchKeyword: cfg.fetchKeyword,
    failedJobHoldMs: app.failedJobHoldSec * 1000,
    ...(parts.metrics ? { metrics: parts.metrics } : {}),
  };
}

/** Default random source for nonces and the envelope's 16 random bytes. */
export const secureRandom = (size: number): Buffer => randomBytes(size);
