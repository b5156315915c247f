/**
 * A fake of WeChat's side of the webhook: it signs and posts user messages like the
 * platform does, gives each delivery a time window (5 s in production, scaled down in
 * tests), abandons a delivery that is too slow and re-sends the same message, up to
 * three deliveries in all (https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Receiving_standard_messages.html).
 * What the user would see is recorded.
 */
import { randomBytes } from 'node:crypto';
import { wechatSignature } from '../../lib/channels/wechat/signature';
import { buildEncryptedReply, aesKeyFromEncodingAesKey, decryptAndCheck } from '../../lib/channels/wechat/crypto';
import { cdata } from '../../lib/channels/wechat/xml-reply';

/** Settings of the fake platform. */
export interface WeChatPlatformOptions {
  /** Webhook URL, e.g. `http://127.0.0.1:1234/wechat`. */
  url: string;
  token: string;
  /** Account id (`gh_…`). */
  account?: string;
  /** How long one delivery may take before the platform gives up and retries. */
  windowMs: number;
  /** Deliveries of one message (WeChat: 3). */
  deliveries?: number;
  /** Safe mode: encrypt requests and expect encrypted replies. */
  aes?: { encodingAesKey: string; appId: string };
}

/** What the user saw for one message. */
export interface DeliveryOutcome {
  /** The reply text shown, or undefined when the user saw nothing. */
  reply: string | undefined;
  /** Deliveries made (1..3). */
  deliveries: number;
  /** Raw HTTP statuses per delivery (undefined = abandoned after the window). */
  statuses: (number | undefined)[];
}

let msgCounter = 6054768590064713728n;

/** A fresh 64-bit MsgId as WeChat sends them (decimal string). */
export function nextMsgId(): string {
  msgCounter += 1n;
  return msgCounter.toString();
}

/** The XML of a text message. */
export function textMessageXml(opts: { from: string; to: string; content: string; msgId: string; createTimeSec?: number }): string {
  const created = opts.createTimeSec ?? Math.floor(Date.now() / 1000);
  return (
    `<xml><ToUserName>${cdata(opts.to)}</ToUserName><FromUserName>${cdata(opts.from)}</FromUserName>` +
    `<CreateTime>${created}</CreateTime><MsgType><![CDATA[text]]></MsgType>` +
    `<Content>${cdata(opts.content)}</Content><MsgId>${opts.msgId}</MsgId></xml>`
  );
}

/** Extracts the Content of a passive text reply (plain XML). */
export function replyContent(body: string): string | undefined {
  const m = /<Content>([\s\S]*)<\/Content>/.exec(body);
  if (!m?.[1]) return undefined;
  // Undo the CDATA split of "]]>" across sections.
  return m[1].replace(/^<!\[CDATA\[/, '').replace(/\]\]>$/, '').split(']]]]><![CDATA[>').join(']]>');
}

/** The fake platform. */
export class WeChatPlatform {
  private readonly account: string;
  private readonly deliveries: number;

  constructor(private readonly opts: WeChatPlatformOptions) {
    this.account = opts.account ?? 'gh_10f6c3c3ac5a';
    this.deliveries = opts.deliveries ?? 3;
  }

  /** Signs a request for `body` (query string) the way WeChat does. */
  signedQuery(body: string): { query: string; body: string } {
    const timestamp = String(Math.floor(Date.now() / 1000));
    const nonce = String(randomBytes(4).readUInt32BE(0));
    const signature = wechatSignature([this.opts.token, timestamp, nonce]);
    // WeChat puts the sender's OpenID in the query too.
    const openid = /<FromUserName><!\[CDATA\[(.*?)\]\]><\/FromUserName>/.exec(body)?.[1] ?? '';
    const params = new URLSearchParams({ signature, timestamp, nonce, openid });
    if (!this.opts.aes) return { query: params.toString(), body };
    const key = aesKeyFromEncodingAesKey(this.opts.aes.encodingAesKey);
    const envelope = buildEncryptedReply({
      replyXml: body,
      appId: this.opts.aes.appId,
      key,
      token: this.opts.token,
      timestampSec: Number(timestamp),
      nonce,
      random16: randomBytes(16),
    });
    const encrypt = /<Encrypt><!\[CDATA\[(.*?)\]\]><\/Encrypt>/.exec(envelope)?.[1] ?? '';
    params.set('encrypt_type', 'aes');
    params.set('msg_signature', wechatSignature([this.opts.token, timestamp, nonce, encrypt]));
    return { query: params.toString(), body: `<xml><ToUserName>${cdata(this.account)}</ToUserName><Encrypt>${cdata(encrypt)}</Encrypt></xml>` };
  }

  /** Posts `xmlBody` once with a window; undefined status when abandoned. */
  async postOnce(xmlBody: string, windowMs = this.opts.windowMs): Promise<{ status: number | undefined; body: string }> {
    return this.postSigned(this.signedQuery(xmlBody), windowMs);
  }

  /** Posts an already signed request (e.g. a captured query string with another body). */
  async postSigned(signed: { query: string; body: string }, windowMs = this.opts.windowMs): Promise<{ status: number | undefined; body: string }> {
    try {
      const res = await fetch(`${this.opts.url}?${signed.query}`, {
        method: 'POST',
        headers: { 'content-type': 'text/xml' },
        body: signed.body,
        signal: AbortSignal.timeout(windowMs),
      });
      return { status: res.status, body: await res.text() };
    } catch {
      return { status: undefined, body: '' };
    }
  }

  /** Opens an encrypted reply (safe mode) and returns the inner XML. */
  openReply(body: string): string {
    if (!this.opts.aes || !body.includes('<Encrypt>')) return body;
    const encrypt = /<Encrypt><!\[CDATA\[(.*?)\]\]><\/Encrypt>/.exec(body)?.[1] ?? '';
    const key = aesKeyFromEncodingAesKey(this.opts.aes.encodingAesKey);
    return decryptAndCheck(encrypt, [key], this.opts.aes.appId).xml;
  }

  /** The user sends `content`; WeChat delivers it up to three times. */
  async send(from: string, content: string, msgId = nextMsgId()): Promise<DeliveryOutcome> {
    const xmlBody = textMessageXml({ from, to: this.account, content, msgId });
    const statuses: (number | undefined)[] = [];
    for (let attempt = 1; attempt <= this.deliveries; attempt++) {
      const res = await this.postOnce(xmlBody);
      statuses.push(res.status);
      if (res.status === undefined) continue; // too slow: WeChat retries
      if (res.status !== 200) return { reply: undefined, deliveries: attempt, statuses };
      const inner = this.openReply(res.body);
      if (inner === '' || inner === 'success') return { reply: undefined, deliveries: attempt, statuses };
      return { reply: replyContent(inner), deliveries: attempt, statuses };
    }
    return { reply: undefined, deliveries: this.deliveries, statuses };
  }
}
