/**
 * The simulator as the vendor calling the gateway: signed webhooks exactly as WeChat, Meta and
 * Twilio send them, WeChat's three deliveries with its 5-second limit, and a Twilio call that
 * follows the TwiML it gets back. Every step is written to the message's timeline.
 */
import { randomBytes } from 'node:crypto';
import { getExpectedTwilioSignature } from 'twilio/lib/webhooks/webhooks';
import { aesKeyFromEncodingAesKey, decryptAndCheck, encrypt } from '../../lib/channels/wechat/crypto';
import { wechatSignature } from '../../lib/channels/wechat/signature';
import { signMetaBody } from '../../lib/channels/whatsapp/signature';
import { metaJson, sampleTextWebhook, webhookEnvelope } from '../samples/whatsapp';
import type { Conversation, Conversations, Line } from './conversations';

/** What the vendors need to know about the gateway they call. */
export interface VendorSettings {
  /** Where the simulator listens (its media URLs). */
  simulatorUrl: string;
  /** Where the gateway listens, e.g. `http://127.0.0.1:3000`. */
  gatewayUrl: string;
  wechat: { token: string; appId: string; encodingAesKey: string; accountId: string } | undefined;
  whatsapp: { appSecret: string; phoneNumberId: string } | undefined;
  twilio: { accountSid: string; authToken: string; number: string; publicBaseUrl: string; apiBase: string } | undefined;
  /** How long WeChat waits for one delivery (5 s, https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Passive_user_reply_message.html). */
  wechatLimitMs: number;
  /** Deliveries WeChat makes of one message (three). */
  wechatDeliveries: number;
}

/** A sample file the simulated user can send (served by the stand-ins as the vendor's media). */
export type SampleMedia = 'image' | 'voice';

/** The vendor media id of each sample (WeChat MediaId, Graph media id). */
export const SAMPLE_MEDIA_IDS: Readonly<Record<SampleMedia, string>> = { image: 'SIMMEDIAphoto', voice: 'SIMMEDIAvoice' };

/** What WeChat shows the user after three failed deliveries. */
export const WECHAT_UNAVAILABLE = '该公众号暂时无法提供服务，请稍后再试 (WeChat shows this when all deliveries failed)';

function elapsed(startMs: number): string {
  return `${((Date.now() - startMs) / 1000).toFixed(1)} s`;
}

function cdataText(xml: string, tag: string): string | undefined {
  const match = new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`).exec(xml);
  if (!match?.[1]) return undefined;
  // A CDATA section cannot hold `]]>`, so long texts come in several sections: join them.
  const inner = match[1];
  if (!inner.includes('<![CDATA[')) return inner;
  return [...inner.matchAll(/<!\[CDATA\[([\s\S]*?)\]\]>/g)].map((m) => m[1] ?? '').join('');
}

function msgId(): string {
  // WeChat MsgIds are 64-bit decimal numbers.
  return `${Date.now()}${String(randomBytes(3).readUIntBE(0, 3)).padStart(8, '0')}`.slice(0, 19);
}

/** The simulated vendors. */
export class Vendors {
  /** The open call of each voice conversation: its SID and the `<Gather>` action to post speech to. */
  private readonly calls = new Map<Conversation, { callSid: string; gatherAction: string | undefined }>();
  /** The message key the gateway will use for a line (MsgId, wamid, MessageSid), to match worker jobs. */
  readonly lineOfMsgKey = new Map<string, { conv: Conversation; line: Line }>();

  constructor(
    private readonly settings: VendorSettings,
    private readonly convs: Conversations,
  ) {}

  /** WeChat: a text message, delivered up to three times, each delivery given WeChat's limit. */
  async wechatText(conv: Conversation, line: Line, text: string, safeMode: boolean, media?: SampleMedia): Promise<void> {
    const wechat = this.settings.wechat;
    if (!wechat) return this.unavailable(conv, line, 'WeChat is not enabled on the gateway');
    if (safeMode && wechat.encodingAesKey === '') return this.unavailable(conv, line, 'safe mode needs WECHAT_ENCODING_AES_KEY (and WECHAT_APP_ID)');
    const id = msgId();
    this.lineOfMsgKey.set(id, { conv, line });
    const createTime = Math.floor(Date.now() / 1000);
    // https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Receiving_standard_messages.html
    const payload =
      media === 'image'
        ? `<MsgType><![CDATA[image]]></MsgType><PicUrl><![CDATA[${this.settings.simulatorUrl}/samples/photo.jpg]]></PicUrl><MediaId><![CDATA[${SAMPLE_MEDIA_IDS.image}]]></MediaId>`
        : media === 'voice'
          ? `<MsgType><![CDATA[voice]]></MsgType><MediaId><![CDATA[${SAMPLE_MEDIA_IDS.voice}]]></MediaId><Format><![CDATA[amr]]></Format>`
          : `<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[${text.replaceAll(']]>', ']]]]><![CDATA[>')}]]></Content>`;
    const plain =
      `<xml><ToUserName><![CDATA[${wechat.accountId}]]></ToUserName><FromUserName><![CDATA[${conv.vendorId}]]></FromUserName>` +
      `<CreateTime>${createTime}</CreateTime>${payload}<MsgId>${id}</MsgId></xml>`;
    for (let attempt = 1; attempt <= this.settings.wechatDeliveries; attempt++) {
      const started = Date.now();
      const timestamp = String(Math.floor(started / 1000));
      const nonce = String(randomBytes(4).readUInt32BE(0));
      const query = new URLSearchParams({ signature: wechatSignature([wechat.token, timestamp, nonce]), timestamp, nonce, openid: conv.vendorId });
      let body = plain;
      if (safeMode) {
        // Safe mode (https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Message_encryption_and_decryption_instructions.html):
        // the message travels AES-encrypted in <Encrypt>, signed by msg_signature.
        const encrypted = encrypt(plain, wechat.appId, aesKeyFromEncodingAesKey(wechat.encodingAesKey), randomBytes(16));
        query.set('encrypt_type', 'aes');
        query.set('msg_signature', wechatSignature([wechat.token, timestamp, nonce, encrypted]));
        body = `<xml><ToUserName><![CDATA[${wechat.accountId}]]></ToUserName><Encrypt><![CDATA[${encrypted}]]></Encrypt></xml>`;
      }
      this.convs.step(conv, line, `WeChat delivery ${attempt}/${this.settings.wechatDeliveries} → POST /wechat${safeMode ? ' (safe mode)' : ''}`);
      let status: number;
      let reply: string;
      try {
        const res = await fetch(`${this.settings.gatewayUrl}/wechat?${query.toString()}`, {
          method: 'POST',
          headers: { 'content-type': 'text/xml' },
          body,
          signal: AbortSignal.timeout(this.settings.wechatLimitMs),
        });
        status = res.status;
        reply = await res.text();
      } catch (err) {
        // Checked by name: the DOMException fetch throws is not an Error of every realm.
        const timedOut = typeof err === 'object' && err !== null && 'name' in err && (err.name === 'TimeoutError' || err.name === 'AbortError');
        this.convs.step(conv, line, `delivery ${attempt}: ${timedOut ? `no answer within ${this.settings.wechatLimitMs / 1000} s, WeChat gives up on it` : `failed: ${String(err)}`}`);
        continue;
      }
      if (status !== 200) {
        this.convs.step(conv, line, `delivery ${attempt}: HTTP ${status} after ${elapsed(started)}`);
        continue;
      }
      if (reply === '' || reply === 'success') {
        this.convs.step(conv, line, `delivery ${attempt}: "${reply}" after ${elapsed(started)} (nothing shown; the answer comes another way)`);
        return;
      }
      const content = this.wechatReplyContent(reply, safeMode);
      if (content === undefined) {
        this.convs.step(conv, line, `delivery ${attempt}: unreadable reply after ${elapsed(started)}: ${reply.slice(0, 120)}`);
        return;
      }
      this.convs.step(conv, line, `delivery ${attempt}: passive reply after ${elapsed(started)} (${Buffer.byteLength(content, 'utf8')} bytes${safeMode ? ', encrypted' : ''})`);
      this.convs.add(conv, 'bot', content, `passive reply to delivery ${attempt}`);
      return;
    }
    this.convs.add(conv, 'note', WECHAT_UNAVAILABLE, 'WeChat');
  }

  private wechatReplyContent(reply: string, safeMode: boolean): string | undefined {
    const wechat = this.settings.wechat;
    let xml = reply;
    if (safeMode && wechat) {
      const encrypted = cdataText(reply, 'Encrypt');
      const signature = cdataText(reply, 'MsgSignature');
      const timestamp = cdataText(reply, 'TimeStamp');
      const nonce = cdataText(reply, 'Nonce');
      if (encrypted === undefined || signature === undefined || timestamp === undefined || nonce === undefined) return undefined;
      // WeChat drops a reply whose signature does not match.
      if (wechatSignature([wechat.token, timestamp, nonce, encrypted]) !== signature) return undefined;
      xml = decryptAndCheck(encrypted, [aesKeyFromEncodingAesKey(wechat.encodingAesKey)], wechat.appId).xml;
    }
    return cdataText(xml, 'Content');
  }

  /** WhatsApp: a Cloud API `messages` webhook, signed with the app secret. */
  async whatsappText(conv: Conversation, line: Line, text: string, media?: SampleMedia): Promise<void> {
    const whatsapp = this.settings.whatsapp;
    if (!whatsapp) return this.unavailable(conv, line, 'WhatsApp is not enabled on the gateway');
    const wamid = `wamid.SIM${randomBytes(12).toString('hex').toUpperCase()}`;
    this.lineOfMsgKey.set(wamid, { conv, line });
    // https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/payload-examples
    const body =
      media === undefined
        ? sampleTextWebhook({ phoneNumberId: whatsapp.phoneNumberId, from: conv.vendorId, text, id: wamid, profileName: conv.user })
        : metaJson(
            webhookEnvelope(whatsapp.phoneNumberId, {
              contacts: [{ profile: { name: conv.user }, wa_id: conv.vendorId }],
              messages: [
                {
                  from: conv.vendorId,
                  id: wamid,
                  timestamp: String(Math.floor(Date.now() / 1000)),
                  ...(media === 'image'
                    ? { type: 'image', image: { mime_type: 'image/jpeg', sha256: SAMPLE_MEDIA_IDS.image, id: SAMPLE_MEDIA_IDS.image } }
                    : { type: 'audio', audio: { mime_type: 'audio/amr', sha256: SAMPLE_MEDIA_IDS.voice, id: SAMPLE_MEDIA_IDS.voice, voice: true } }),
                },
              ],
            }),
          );
    const started = Date.now();
    this.convs.step(conv, line, 'Meta webhook → POST /whatsapp (X-Hub-Signature-256)');
    try {
      // https://developers.facebook.com/docs/graph-api/webhooks/getting-started#validate-payloads
      const res = await fetch(`${this.settings.gatewayUrl}/whatsapp`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-hub-signature-256': signMetaBody(whatsapp.appSecret, body) },
        body,
        signal: AbortSignal.timeout(20_000),
      });
      await res.arrayBuffer();
      this.convs.step(conv, line, `webhook: HTTP ${res.status} after ${elapsed(started)}${res.status === 200 ? '' : ' (Meta would retry)'}`);
    } catch (err) {
      this.convs.step(conv, line, `webhook failed: ${String(err)} (Meta would retry)`);
    }
  }

  private twilioPost(url: string, params: Record<string, string>): Promise<Response> {
    const twilio = this.settings.twilio;
    if (!twilio) throw new Error('Twilio is not enabled');
    // Twilio signs the public URL it calls and the POST parameters
    // (https://www.twilio.com/docs/usage/security#validating-requests), with its own library here.
    const signature = getExpectedTwilioSignature(twilio.authToken, url, params);
    const local = `${this.settings.gatewayUrl}${new URL(url).pathname}${new URL(url).search}`;
    return fetch(local, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-twilio-signature': signature },
      body: new URLSearchParams(params).toString(),
      // Twilio waits 15 s for a webhook (https://www.twilio.com/docs/usage/webhooks/webhooks-connection-overrides).
      signal: AbortSignal.timeout(15_000),
    });
  }

  /** SMS: Twilio's messaging webhook. */
  async smsText(conv: Conversation, line: Line, text: string, media?: SampleMedia): Promise<void> {
    const twilio = this.settings.twilio;
    if (!twilio) return this.unavailable(conv, line, 'Twilio is not enabled on the gateway');
    const messageSid = `SM${randomBytes(16).toString('hex')}`;
    this.lineOfMsgKey.set(messageSid, { conv, line });
    const params: Record<string, string> = {
      ToCountry: 'US',
      SmsMessageSid: messageSid,
      NumMedia: media === undefined ? '0' : '1',
      SmsSid: messageSid,
      SmsStatus: 'received',
      Body: media === undefined ? text : '',
      To: twilio.number,
      NumSegments: '1',
      MessageSid: messageSid,
      AccountSid: twilio.accountSid,
      From: conv.vendorId,
      ApiVersion: '2010-04-01',
    };
    if (media !== undefined) {
      // An MMS: the media lives on Twilio's API, behind the account's credentials.
      params.MediaUrl0 = `${twilio.apiBase}/2010-04-01/Accounts/${twilio.accountSid}/Messages/${messageSid}/Media/${SAMPLE_MEDIA_IDS[media]}`;
      params.MediaContentType0 = media === 'image' ? 'image/jpeg' : 'audio/amr';
    }
    const started = Date.now();
    this.convs.step(conv, line, 'Twilio webhook → POST /twilio/messaging (X-Twilio-Signature)');
    try {
      const res = await this.twilioPost(`${twilio.publicBaseUrl}/twilio/messaging`, params);
      const body = await res.text();
      this.convs.step(conv, line, `webhook: HTTP ${res.status} after ${elapsed(started)}`);
      for (const message of [...body.matchAll(/<Message[^>]*>([\s\S]*?)<\/Message>/g)]) {
        this.convs.add(conv, 'bot', unescapeXml(message[1] ?? ''), 'TwiML <Message>');
      }
    } catch (err) {
      this.convs.step(conv, line, `webhook failed: ${String(err)}`);
    }
  }

  /** Whether `conv` has a call waiting for the caller to speak. */
  inCall(conv: Conversation): boolean {
    return this.calls.get(conv)?.gatherAction !== undefined;
  }

  /** Places a call from `conv`'s number and plays the TwiML until it listens (the greeting). */
  async placeCall(conv: Conversation): Promise<void> {
    const twilio = this.settings.twilio;
    if (!twilio) return;
    const callSid = `CA${randomBytes(16).toString('hex')}`;
    const call = { callSid, gatherAction: undefined };
    this.calls.set(conv, call);
    const line = this.convs.add(conv, 'note', `Calling ${twilio.number}…`, 'Twilio Voice');
    // The local number is as good as verified: the simulated caller is who it says.
    await this.followTwiml(conv, line, call, `${twilio.publicBaseUrl}/twilio/voice`, { ...this.callParams(conv, callSid), CallStatus: 'ringing', StirVerstat: 'TN-Validation-Passed-A' });
  }

  private callParams(conv: Conversation, callSid: string): Record<string, string> {
    const twilio = this.settings.twilio;
    return {
      AccountSid: twilio?.accountSid ?? '',
      ApiVersion: '2010-04-01',
      CallSid: callSid,
      CallStatus: 'in-progress',
      Called: twilio?.number ?? '',
      Caller: conv.vendorId,
      Direction: 'inbound',
      From: conv.vendorId,
      To: twilio?.number ?? '',
    };
  }

  /** Voice: the caller says `speech` into the open call (see {@link placeCall}). */
  async voiceSay(conv: Conversation, line: Line, speech: string): Promise<void> {
    if (!this.settings.twilio) return this.unavailable(conv, line, 'Twilio is not enabled on the gateway');
    const call = this.calls.get(conv);
    const action = call?.gatherAction;
    if (!call || action === undefined) return this.unavailable(conv, line, 'The call has ended: send again to call back');
    call.gatherAction = undefined;
    this.convs.step(conv, line, `caller speaks → SpeechResult to ${new URL(action).pathname}`);
    await this.followTwiml(conv, line, call, action, { ...this.callParams(conv, call.callSid), SpeechResult: speech, Confidence: '0.92' });
  }

  /** Ends the open call of `conv` (the page's Hang up). */
  hangUp(conv: Conversation): boolean {
    const open = this.calls.delete(conv);
    if (open) this.convs.add(conv, 'note', 'Call ended', 'Twilio Voice');
    return open;
  }

  /** Posts to `url`, then runs the TwiML answered until a `<Gather>` waits for the caller or the call ends. */
  private async followTwiml(conv: Conversation, line: Line, call: { callSid: string; gatherAction: string | undefined }, url: string, params: Record<string, string>): Promise<void> {
    let next: { url: string; params: Record<string, string> } | undefined = { url, params };
    for (let step = 0; next && step < 40; step++) {
      const started = Date.now();
      const path = new URL(next.url).pathname;
      let body: string;
      try {
        const res = await this.twilioPost(next.url, next.params);
        body = await res.text();
        this.convs.step(conv, line, `POST ${path}: HTTP ${res.status}, TwiML after ${elapsed(started)}`);
        if (res.status !== 200) {
          this.convs.add(conv, 'note', 'We are sorry, an application error has occurred. Goodbye. (Twilio says this when the webhook fails)', 'Twilio Voice');
          this.calls.delete(conv);
          return;
        }
      } catch (err) {
        this.convs.step(conv, line, `POST ${path} failed: ${String(err)}`);
        this.calls.delete(conv);
        return;
      }
      const noSpeech: Record<string, string> = { ...next.params };
      delete noSpeech.SpeechResult;
      delete noSpeech.Confidence;
      delete noSpeech.StirVerstat;
      next = undefined;
      for (const verb of parseTwiml(body)) {
        if (verb.name === 'Say') {
          this.convs.add(conv, 'bot', verb.text, 'spoken (TwiML <Say>)');
        } else if (verb.name === 'Pause') {
          const seconds = Number(verb.attrs.length ?? '1');
          this.convs.step(conv, line, `<Pause> ${seconds} s`);
          await new Promise((r) => setTimeout(r, seconds * 1000));
        } else if (verb.name === 'Gather') {
          for (const said of verb.says) this.convs.add(conv, 'bot', said, 'spoken (TwiML <Gather><Say>)');
          call.gatherAction = verb.attrs.action;
          this.convs.step(conv, line, '<Gather input="speech">: listening');
          return;
        } else if (verb.name === 'Redirect') {
          this.convs.step(conv, line, `<Redirect> ${new URL(verb.text).pathname}`);
          next = { url: verb.text, params: noSpeech };
          break;
        } else if (verb.name === 'Hangup') {
          this.calls.delete(conv);
          this.convs.add(conv, 'note', 'Call ended by the gateway', 'Twilio Voice');
          return;
        }
      }
    }
    // TwiML ran out without a Gather: Twilio hangs up.
    if (!call.gatherAction) {
      this.calls.delete(conv);
      this.convs.add(conv, 'note', 'Call ended', 'Twilio Voice');
    }
  }

  private unavailable(conv: Conversation, line: Line, why: string): void {
    this.convs.step(conv, line, why);
    this.convs.add(conv, 'note', why, 'simulator');
  }
}

/** One TwiML verb, as far as the simulator plays it. */
export interface TwimlVerb {
  name: string;
  attrs: Record<string, string>;
  /** Text content (`<Say>`, `<Redirect>`). */
  text: string;
  /** `<Say>` children of a `<Gather>`. */
  says: string[];
}

export function unescapeXml(text: string): string {
  return text
    .replace(/<!\[CDATA\[([\s\S]*?)\]\]>/g, '$1')
    .replaceAll('&lt;', '<')
    .replaceAll('&gt;', '>')
    .replaceAll('&quot;', '"')
    .replaceAll('&apos;', "'")
    .replaceAll('&amp;', '&');
}

function attributes(raw: string): Record<string, string> {
  const attrs: Record<string, string> = {};
  for (const m of raw.matchAll(/([A-Za-z][A-Za-z0-9]*)="([^"]*)"/g)) if (m[1] !== undefined) attrs[m[1]] = unescapeXml(m[2] ?? '');
  return attrs;
}

/**
 * The verbs under `<Response>` in order (https://www.twilio.com/docs/voice/twiml). Enough of
 * XML for the gateway's TwiML: elements, attributes, entities; no comments or namespaces.
 */
export function parseTwiml(xml: string): TwimlVerb[] {
  const inner = /<Response\s*>([\s\S]*)<\/Response>/.exec(xml)?.[1] ?? '';
  const verbs: TwimlVerb[] = [];
  const re = /<([A-Za-z]+)((?:\s+[A-Za-z][A-Za-z0-9]*="[^"]*")*)\s*(\/>|>([\s\S]*?)<\/\1>)/g;
  for (const m of inner.matchAll(re)) {
    const name = m[1] ?? '';
    const body = m[4] ?? '';
    const says = name === 'Gather' ? [...body.matchAll(/<Say[^>]*>([\s\S]*?)<\/Say>/g)].map((s) => unescapeXml(s[1] ?? '')) : [];
    verbs.push({ name, attrs: attributes(m[2] ?? ''), text: name === 'Gather' ? '' : unescapeXml(body.trim()), says });
  }
  return verbs;
}
