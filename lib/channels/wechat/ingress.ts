/**
 * The WeChat webhook: verify → (decrypt) → parse → claim → enqueue → reply.
 *
 * WeChat waits 5 s for a response and delivers the same message three times in all,
 * about 5 s apart (https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Receiving_standard_messages.html).
 * In `passive` mode each delivery waits for the answer;
 * a non-final delivery with nothing ready lets the 5 s pass on purpose so WeChat
 * retries; the final one answers before its deadline with what has streamed so far and
 * a note to send "1". The state is in DynamoDB, so the deliveries may land on any
 * Lambda instance, and the job is claimed once, so the LLM is called once.
 */
import { randomBytes } from 'node:crypto';
import type { WeChatConfig } from '../../config';
import { acceptMessage, type IngressDeps } from '../../core/ingress';
import type { Job, Log, TurnInput } from '../../core/types';
import { text, xml, type HttpRequest, type HttpResponse } from '../http';
import { aesKeyFromEncodingAesKey, buildEncryptedReply, decryptAndCheck, WeChatCryptoError } from './crypto';
import type { MessageKey } from '../../store/messages';
import { takeNextPage, thinkingText, waitForPage, type PageDeps } from './passive';
import { verifyMsgSignature, verifySignature } from './signature';
import { buildTextReply, parseEncryptedEnvelope, parseInbound, WeChatXmlError, type WeChatInbound } from './xml';

/** Dependencies of the WeChat webhook. */
export interface WeChatIngressDeps extends IngressDeps {
  config: WeChatConfig;
  log: Log;
  /** Random bytes for encrypted replies (pinned in tests). */
  random: (size: number) => Buffer;
  /** How often a waiting request re-reads DynamoDB. */
  pollMs: number;
  /** How long a non-final delivery holds the line (past WeChat's 5 s) so WeChat retries. */
  holdMs: number;
  /** Customer-service mode: how long the ingress waits before leaving the answer to the push. */
  csPassiveWaitMs: number;
}

/** Largest WeChat body accepted: messages are a few hundred bytes. */
export const WECHAT_MAX_BODY_BYTES = 64 * 1024;

/** WeChat's literal "nothing to say" body: no reply, no retry, no error shown to the user. */
const SUCCESS = 'success';

/** How the reply is wrapped: plain, or encrypted for safe / compatible mode. */
interface ReplyContext {
  user: string;
  account: string;
  encrypted: boolean;
  /** Which EncodingAESKey opened the request (0 current, 1 previous during rotation): the reply uses it too. */
  keyIndex: number;
}

/** Text replies for non-text messages; they never reach the LLM. */
export const UNSUPPORTED_TEXT =
  '我目前只能处理文字、语音和图片消息。\nSorry, I can only handle text, voice and image messages here; videos, locations and links are not supported.';

/** Put before an answer the customer-service push could not deliver. */
export const PUSH_FAILED_LEAD = '（上一条回答未能及时送达，现补上 · Your previous answer could not be sent earlier; here it is:）\n\n';

/** Marks the record of a "reply 1" request (claimed for dedupe, never queued). */
const FETCH_NOTE = 'fetch';

/** What to do with an inbound message. */
type Action =
  | { kind: 'ack'; reason: string }
  | { kind: 'job'; msgKey: string; input: TurnInput; fetchable: boolean }
  | { kind: 'forget'; msgKey: string };

/** Dedupe key for events: WeChat gives them no MsgId (https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Receiving_event_pushes.html). */
function eventKey(m: Extract<WeChatInbound, { kind: 'event' }>): string {
  return `evt:${m.createTimeSec}:${m.event}:${m.eventKey ?? ''}`;
}

function classify(cfg: WeChatConfig, m: WeChatInbound): Action {
  switch (m.kind) {
    case 'text':
      return { kind: 'job', msgKey: m.msgId, input: { kind: 'text', text: m.content }, fetchable: m.content.trim() === cfg.fetchKeyword };
    case 'voice':
      if (m.recognition !== undefined && m.recognition.trim() !== '') {
        return { kind: 'job', msgKey: m.msgId, input: { kind: 'text', text: m.recognition }, fetchable: m.recognition.trim() === cfg.fetchKeyword };
      }
      return { kind: 'job', msgKey: m.msgId, input: { kind: 'audio', mediaRef: m.mediaId, mimeType: `audio/${m.format || 'amr'}` }, fetchable: false };
    case 'image':
      return { kind: 'job', msgKey: m.msgId, input: { kind: 'image', mediaRef: m.mediaId, caption: '', mimeType: 'image/jpeg' }, fetchable: false };
    case 'video':
    case 'shortvideo':
    case 'location':
    case 'link':
      return { kind: 'job', msgKey: m.msgId, input: { kind: 'notice', text: UNSUPPORTED_TEXT }, fetchable: false };
    case 'event': {
      const ev = m.event.toLowerCase();
      if (ev === 'subscribe') return { kind: 'job', msgKey: eventKey(m), input: { kind: 'notice', text: cfg.welcome }, fetchable: false };
      if (ev === 'unsubscribe') return { kind: 'forget', msgKey: eventKey(m) };
      if (ev === 'click') {
        const prompt = m.eventKey === undefined ? undefined : cfg.menuPrompts[m.eventKey];
        if (prompt !== undefined) return { kind: 'job', msgKey: eventKey(m), input: { kind: 'text', text: prompt }, fetchable: false };
        return { kind: 'ack', reason: `menu key ${m.eventKey ?? ''} has no prompt` };
      }
      return { kind: 'ack', reason: `event ${m.event} needs no answer` };
    }
    case 'unknown':
      return { kind: 'ack', reason: `unknown MsgType ${m.msgType}` };
  }
}

function aesKeys(cfg: WeChatConfig): Buffer[] {
  const keys = [cfg.encodingAesKey, cfg.encodingAesKeyPrevious].filter((k) => k !== '');
  return keys.map(aesKeyFromEncodingAesKey);
}

function reply(deps: WeChatIngressDeps, ctx: ReplyContext, content: string): HttpResponse {
  const nowSec = Math.floor(deps.clock.nowMs() / 1000);
  const plain = buildTextReply({ toUser: ctx.user, fromUser: ctx.account, createTimeSec: nowSec, content });
  if (!ctx.encrypted) return xml(200, plain);
  // Safe mode: encrypt with a fresh nonce and timestamp and sign
  // (https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Message_encryption_and_decryption_instructions.html).
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
  return text(status, status === 413 ? 'payload too large' : status === 400 ? 'bad request' : 'forbidden');
}

/** Handles GET (URL verification) and POST (messages) on `/wechat`. */
export async function handleWeChat(deps: WeChatIngressDeps, req: HttpRequest): Promise<HttpResponse> {
  const cfg = deps.config;
  const { signature = '', timestamp = '', nonce = '' } = req.query;
  if (req.method === 'GET') {
    if (!verifySignature(cfg.token, timestamp, nonce, signature)) return reject(deps, 403, 'bad signature on URL verification');
    return text(200, req.query.echostr ?? '');
  }
  if (req.method !== 'POST') return text(405, 'method not allowed');
  if (!verifySignature(cfg.token, timestamp, nonce, signature)) return reject(deps, 403, 'bad signature');
  if (req.body.length > WECHAT_MAX_BODY_BYTES) return reject(deps, 413, `body of ${req.body.length} bytes`);

  let bodyXml = req.body.toString('utf8');
  const encrypted = req.query.encrypt_type === 'aes';
  let keyIndex = 0;
  if (encrypted) {
    if (cfg.encodingAesKey === '') return reject(deps, 400, 'encrypted message but WECHAT_ENCODING_AES_KEY is not set');
    let encrypt: string;
    try {
      encrypt = parseEncryptedEnvelope(bodyXml, { maxBytes: WECHAT_MAX_BODY_BYTES }).encrypt;
    } catch (err) {
      if (err instanceof WeChatXmlError) return reject(deps, 400, `envelope: ${err.code}`);
      throw err;
    }
    if (!verifyMsgSignature(cfg.token, timestamp, nonce, encrypt, req.query.msg_signature ?? '')) {
      return reject(deps, 403, 'bad msg_signature');
    }
    try {
      const opened = decryptAndCheck(encrypt, aesKeys(cfg), cfg.appId);
      bodyXml = opened.xml;
      keyIndex = opened.keyIndex;
    } catch (err) {
      if (err instanceof WeChatCryptoError) return reject(deps, 403, `decrypt: ${err.code}`);
      throw err;
    }
  }

  let msg: WeChatInbound;
  try {
    msg = parseInbound(bodyXml, { maxBytes: WECHAT_MAX_BODY_BYTES });
  } catch (err) {
    if (err instanceof WeChatXmlError) return reject(deps, 400, `xml: ${err.code}`);
    throw err;
  }
  const action = classify(cfg, msg);
  if (action.kind === 'ack') {
    deps.log.info('wechat message acknowledged without an answer', { reason: action.reason });
    return text(200, SUCCESS);
  }
  const ctx: ReplyContext = { user: msg.fromUserName, account: msg.toUserName, encrypted, keyIndex };
  const pageDeps: PageDeps = {
    messages: deps.messages,
    clock: deps.clock,
    pageBytes: cfg.pageBytes,
    fetchKeyword: cfg.fetchKeyword,
    pollMs: deps.pollMs,
  };
  const deadlineMs = req.receivedAtMs + cfg.replyWaitMs;

  const job: Job = {
    v: 1,
    channel: 'wechat',
    userId: msg.fromUserName,
    msgKey: action.msgKey,
    conversationKey: `wechat#${msg.fromUserName}`,
    input: action.kind === 'forget' ? { kind: 'forget' } : action.input,
    reply: { channel: 'wechat', accountId: msg.toUserName },
    arrivedAtMs: req.receivedAtMs,
  };
  const own = { channel: 'wechat' as const, userId: msg.fromUserName, msgKey: action.msgKey };
  /** Sends a page and remembers it on this request's record, so a redelivery resends it. */
  const serve = async (content: string): Promise<HttpResponse> => {
    await deps.messages.recordServed(own, content, deps.clock.nowMs());
    return reply(deps, ctx, content);
  };

  // "Reply 1": fetch the next page of the oldest undelivered answer. The "1" is claimed
  // like any message (but not queued), so a WeChat retry of it resends the same page
  // instead of skipping one. With nothing pending, "1" is an ordinary message.
  if (action.kind === 'job' && action.fetchable) {
    const existing = await deps.messages.get(own, deps.clock.nowMs());
    const isFetch = existing?.note === FETCH_NOTE;
    if (isFetch || (!existing && (await deps.messages.listPending('wechat', msg.fromUserName, deps.clock.nowMs(), 1)).length > 0)) {
      const claim = await deps.messages.claim(job, deps.clock.nowMs(), { pending: false, note: FETCH_NOTE });
      if (!claim.created && claim.record.servedText !== '') return reply(deps, ctx, claim.record.servedText);
      const page = await waitForPage(pageDeps, 'wechat', msg.fromUserName, deadlineMs, true);
      return serve(page ? page.text : thinkingText(cfg.fetchKeyword));
    }
  }

  const claim = await acceptMessage(deps, job, { pending: action.kind !== 'forget' });
  if (action.kind === 'forget') return text(200, SUCCESS);
  // WeChat only redelivers a message whose reply it did not get in time: send it again.
  if (!claim.created && claim.record.servedText !== '') return reply(deps, ctx, claim.record.servedText);

  if (cfg.replyMode === 'customer_service') return customerServiceReply(deps, pageDeps, ctx, own, req.receivedAtMs, serve);

  const attempt = claim.record.deliveries;
  const last = attempt >= cfg.deliveries;
  const page = await waitForPage(pageDeps, 'wechat', msg.fromUserName, deadlineMs, last, own);
  if (page) return serve(page.text);
  // Its answer was already shown through another request (a "1" or a later message).
  if (!(await deps.messages.get(own, deps.clock.nowMs()))?.pending) return text(200, SUCCESS);
  if (last) return serve(thinkingText(cfg.fetchKeyword));
  // Not the last delivery and nothing ready: hold the line past WeChat's 5 s so it
  // retries; this response is never read. Nothing was claimed, so nothing is lost.
  const holdUntil = req.receivedAtMs + deps.holdMs;
  await deps.clock.sleep(holdUntil - deps.clock.nowMs());
  deps.log.info('wechat delivery held for a retry', { msgKey: claim.record.msgKey, attempt });
  return text(200, SUCCESS);
}

/**
 * Customer-service mode: answer passively if the whole answer is ready within the
 * short wait (it costs no quota), else acknowledge and let the worker push it.
 * The delivery is claimed with a conditional write, so exactly one path sends it.
 */
async function customerServiceReply(
  deps: WeChatIngressDeps,
  pageDeps: PageDeps,
  ctx: ReplyContext,
  key: MessageKey,
  receivedAtMs: number,
  serve: (content: string) => Promise<HttpResponse>,
): Promise<HttpResponse> {
  // An older answer the push could not deliver (45015/45047/48001) goes first, passively,
  // and the user is told why it comes now.
  const older = await deps.messages.listPending('wechat', ctx.user, deps.clock.nowMs());
  const failed = older.find((rec) => rec.msgKey !== key.msgKey && rec.note.startsWith('push_failed'));
  if (failed) {
    const lead = failed.note.endsWith(':told') ? '' : PUSH_FAILED_LEAD;
    const page = await takeNextPage(pageDeps, 'wechat', ctx.user, 'ready', { reserveBytes: Buffer.byteLength(lead, 'utf8') });
    if (page.kind === 'page') {
      if (lead !== '' && !page.complete) {
        await deps.messages.recordParts(page.record, page.record.deliveredParts, false, deps.clock.nowMs(), `${failed.note}:told`);
      }
      return serve(lead + page.text);
    }
  }
  const deadline = receivedAtMs + deps.csPassiveWaitMs;
  for (;;) {
    const rec = await deps.messages.get(key, deps.clock.nowMs());
    if (!rec) return text(200, SUCCESS);
    if (rec.status === 'done' || rec.status === 'failed') {
      const fits = Buffer.byteLength(rec.answer, 'utf8') <= pageDeps.pageBytes;
      if (fits && rec.deliveryOwner === undefined && (await deps.messages.claimDelivery(key, 'passive', deps.clock.nowMs()))) {
        await deps.messages.advanceCursor(rec, rec.deliveredChars, rec.answer.length, true, deps.clock.nowMs());
        return serve(rec.answer);
      }
      return text(200, SUCCESS);
    }
    const left = deadline - deps.clock.nowMs();
    if (left <= 0) return text(200, SUCCESS);
    await deps.clock.sleep(Math.min(deps.pollMs, left));
  }
}

/** Default random source for nonces and the envelope's 16 random bytes. */
export const secureRandom = (size: number): Buffer => randomBytes(size);
