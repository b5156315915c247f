/**
 * Opening a WeChat webhook request, without side effects: verify the signature and the
 * request's freshness, decrypt (safe / compatible mode), parse, check the `openid`, and
 * turn the message into a queue job. Everything here is a function of the configuration
 * and the request, so it is tested without a store, a queue or a clock.
 *
 * Vendor rules:
 * - signature = SHA1 of the sorted [token, timestamp, nonce]; with `encrypt_type=aes`
 *   also `msg_signature` over [token, timestamp, nonce, Encrypt]:
 *   https://developers.weixin.qq.com/doc/offiaccount/en/Basic_Information/Access_Overview.html
 *   https://developers.weixin.qq.com/doc/offiaccount/en/Message_Management/Message_encryption_and_decryption_instructions.html
 * - In plaintext mode the signature does not cover the body, so a captured query string
 *   would sign any body: the request's `timestamp` must be recent, and (ingress.ts) each
 *   (timestamp, nonce) is bound to the first body seen with it.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import type { WeChatConfig } from '../../config';
import type { Job, TurnInput } from '../../types';
import type { HttpRequest } from '../http';
import { aesKeyFromEncodingAesKey, decryptAndCheck, WeChatCryptoError } from './crypto';
import { verifyMsgSignature, verifySignature } from './signature';
import { parseEncryptedEnvelope, parseInbound, WeChatXmlError, type WeChatInbound } from './xml';

/** Largest WeChat body accepted: messages are a few hundred bytes. */
export const WECHAT_MAX_BODY_BYTES = 64 * 1024;

/** How the reply is wrapped: plain, or encrypted for safe / compatible mode. */
export interface ReplyContext {
  user: string;
  account: string;
  encrypted: boolean;
  /** Which EncodingAESKey opened the request (0 current, 1 previous during rotation): the reply uses it too. */
  keyIndex: number;
}

/** What a signed request is bound to: its (timestamp, nonce) and the hash of its message. */
export interface RequestBinding {
  timestamp: string;
  nonce: string;
  /** SHA-256 (hex) of the message XML (decrypted in safe mode, where WeChat may re-encrypt a retry). */
  messageHash: string;
  /** The request's timestamp in epoch seconds. */
  timestampSec: number;
}

/** A request opened: the URL check, a refusal, or a message with its reply context. */
export type OpenedRequest =
  | { kind: 'verify'; echostr: string }
  | { kind: 'rejected'; status: 400 | 403 | 405 | 413; reason: string }
  | { kind: 'message'; msg: WeChatInbound; ctx: ReplyContext; binding: RequestBinding };

/** The EncodingAESKeys in use (current first). */
export function aesKeys(cfg: WeChatConfig): Buffer[] {
  const keys = [cfg.encodingAesKey, cfg.encodingAesKeyPrevious].filter((k) => k !== '');
  return keys.map(aesKeyFromEncodingAesKey);
}

function rejected(status: 400 | 403 | 405 | 413, reason: string): OpenedRequest {
  return { kind: 'rejected', status, reason };
}

/** Whether `timestamp` is a decimal epoch second within the allowed clock skew of `nowMs`. */
function freshness(cfg: WeChatConfig, timestamp: string, nowMs: number): { ok: true; sec: number } | { ok: false; reason: string } {
  if (!/^\d{1,12}$/.test(timestamp)) return { ok: false, reason: 'timestamp is not a number' };
  const sec = Number(timestamp);
  const skewSec = Math.abs(nowMs / 1000 - sec);
  if (skewSec > cfg.maxClockSkewSec) return { ok: false, reason: `timestamp ${Math.round(skewSec)} s away from now` };
  return { ok: true, sec };
}

/**
 * Verifies, decrypts and parses a request. Deadlines and freshness count from
 * `req.receivedAtMs`. Never throws for bad input: a refusal says why (for the log only).
 */
export function openRequest(cfg: WeChatConfig, req: HttpRequest): OpenedRequest {
  const { signature = '', timestamp = '', nonce = '' } = req.query;
  if (req.method !== 'GET' && req.method !== 'POST') return rejected(405, `method ${req.method}`);
  if (!verifySignature(cfg.token, timestamp, nonce, signature)) return rejected(403, req.method === 'GET' ? 'bad signature on URL verification' : 'bad signature');
  const fresh = freshness(cfg, timestamp, req.receivedAtMs);
  if (!fresh.ok) return rejected(403, fresh.reason);
  if (req.method === 'GET') return { kind: 'verify', echostr: req.query.echostr ?? '' };
  if (req.body.length > WECHAT_MAX_BODY_BYTES) return rejected(413, `body of ${req.body.length} bytes`);

  let bodyXml = req.body.toString('utf8');
  const encrypted = req.query.encrypt_type === 'aes';
  let keyIndex = 0;
  if (encrypted) {
    if (cfg.encodingAesKey === '') return rejected(400, 'encrypted message but WECHAT_ENCODING_AES_KEY is not set');
    let encrypt: string;
    try {
      encrypt = parseEncryptedEnvelope(bodyXml, { maxBytes: WECHAT_MAX_BODY_BYTES }).encrypt;
    } catch (err) {
      if (err instanceof WeChatXmlError) return rejected(400, `envelope: ${err.code}`);
      throw err;
    }
    if (!verifyMsgSignature(cfg.token, timestamp, nonce, encrypt, req.query.msg_signature ?? '')) return rejected(403, 'bad msg_signature');
    try {
      const opened = decryptAndCheck(encrypt, aesKeys(cfg), cfg.appId);
      bodyXml = opened.xml;
      keyIndex = opened.keyIndex;
    } catch (err) {
      if (err instanceof WeChatCryptoError) return rejected(403, `decrypt: ${err.code}`);
      throw err;
    }
  } else if (cfg.encodingAesKey !== '' && !cfg.allowPlaintext) {
    // Safe mode is only safe if plaintext is refused: otherwise an attacker simply does not encrypt.
    return rejected(403, 'plaintext request while an EncodingAESKey is configured (set WECHAT_ALLOW_PLAINTEXT=1 while switching modes)');
  }

  let msg: WeChatInbound;
  try {
    msg = parseInbound(bodyXml, { maxBytes: WECHAT_MAX_BODY_BYTES });
  } catch (err) {
    if (err instanceof WeChatXmlError) return rejected(400, `xml: ${err.code}`);
    throw err;
  }
  // WeChat adds the sender's OpenID to the query; a body claiming another sender is forged.
  const openid = req.query.openid;
  if (openid !== undefined && openid !== msg.fromUserName) return rejected(403, 'openid does not match FromUserName');
  return {
    kind: 'message',
    msg,
    ctx: { user: msg.fromUserName, account: msg.toUserName, encrypted, keyIndex },
    binding: { timestamp, nonce, timestampSec: fresh.sec, messageHash: createHash('sha256').update(bodyXml, 'utf8').digest('hex') },
  };
}

/** Text replies for non-text messages; they never reach the LLM. */
export const UNSUPPORTED_TEXT =
  '我目前只能处理文字、语音和图片消息。\nSorry, I can only handle text, voice and image messages here; videos, locations and links are not supported.';

/** What to do with an inbound message: acknowledge it, or a job (`fetchable`: it is the "reply 1" keyword). */
export type InboundTurn = { kind: 'ack'; reason: string } | { kind: 'job'; job: Job; fetchable: boolean };

/** Dedupe key for events: WeChat gives them no MsgId. */
function eventKey(m: Extract<WeChatInbound, { kind: 'event' }>): string {
  return `evt:${m.createTimeSec}:${m.event}:${m.eventKey ?? ''}`;
}

type Classified = { kind: 'ack'; reason: string } | { kind: 'job'; msgKey: string; input: TurnInput; fetchable: boolean };

function classify(cfg: WeChatConfig, m: WeChatInbound): Classified {
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
      if (ev === 'unsubscribe') return { kind: 'job', msgKey: eventKey(m), input: { kind: 'forget' }, fetchable: false };
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

/** The queue job for a message (user = the sender's OpenID, key = MsgId or an event key). */
export function toJob(cfg: WeChatConfig, msg: WeChatInbound, receivedAtMs: number): InboundTurn {
  const c = classify(cfg, msg);
  if (c.kind === 'ack') return c;
  return {
    kind: 'job',
    fetchable: c.fetchable,
    job: {
      v: 1,
      channel: 'wechat',
      userId: msg.fromUserName,
      msgKey: c.msgKey,
      conversationKey: `wechat#${msg.fromUserName}`,
      input: c.input,
      reply: { channel: 'wechat', accountId: msg.toUserName },
      arrivedAtMs: receivedAtMs,
    },
  };
}
