/**
 * Built-in stand-ins for the vendors' outbound APIs, which the local stack points at when a
 * channel has no real credentials (see env.ts): WeChat's `cgi-bin` (token, custom/send,
 * custom/typing), Meta's Graph `/messages` (texts, templates, read receipts with typing
 * indicator) and Twilio's `Messages.json`. Each call lands in the recipient's conversation as
 * the end user would see it, and in the timeline of their newest message.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Conversation, Conversations, Line } from './conversations';

/** The credentials the stand-ins accept (the local ones the simulator set). */
export interface StandInSettings {
  wechat: { appId: string; appSecret: string } | undefined;
  whatsapp: { accessToken: string; phoneNumberId: string } | undefined;
  twilio: { accountSid: string; authToken: string } | undefined;
}

/** The sample files, by the media id the vendors' webhooks name them with (vendors.ts). */
const SAMPLES: Readonly<Record<string, { file: string; type: string; filename: string }>> = {
  SIMMEDIAphoto: { file: 'photo.jpg', type: 'image/jpeg', filename: 'photo.jpg' },
  SIMMEDIAvoice: { file: 'voice.amr', type: 'audio/amr', filename: 'voice.amr' },
};

/** Serves sample `id` as a download, or answers false when there is none by that id. */
function sendSample(res: ServerResponse, id: string): boolean {
  const sample = SAMPLES[id];
  if (!sample) return false;
  const bytes = readFileSync(join(__dirname, 'samples', sample.file));
  res.writeHead(200, { 'content-type': sample.type, 'content-length': String(bytes.length), 'content-disposition': `attachment; filename="${sample.filename}"` });
  res.end(bytes);
  return true;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
  res.end(JSON.stringify(body));
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function parseJson(body: Buffer): Record<string, unknown> | undefined {
  try {
    const parsed: unknown = JSON.parse(body.toString('utf8'));
    return isRecord(parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

function field(obj: unknown, ...path: string[]): unknown {
  let cur: unknown = obj;
  for (const key of path) cur = isRecord(cur) ? cur[key] : undefined;
  return cur;
}

function str(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

/** The stand-ins. `handle` answers a request under `/wechat-api`, `/graph` or `/twilio`, or returns false. */
export class StandIns {
  private wechatToken = '';
  private partsTo = new Map<string, number>();

  /**
   * @param simulatorUrl - where the simulator listens (Graph media URLs point there).
   * @param lineOf - the line a message id the simulator sent belongs to (read receipts name it).
   * @param answering - the line of `conv` the worker is answering now, if any.
   */
  constructor(
    private readonly simulatorUrl: string,
    private readonly settings: StandInSettings,
    private readonly convs: Conversations,
    private readonly lineOf: (messageId: string) => { conv: Conversation; line: Line } | undefined,
    private readonly answering: (conv: Conversation) => Line | undefined,
  ) {}

  /** The message an outbound call answers: the one the worker is on, else the newest (calls name only the recipient). */
  private lineFor(conv: Conversation): Line | undefined {
    return this.answering(conv) ?? this.convs.lastUserLine(conv);
  }

  handle(req: IncomingMessage, res: ServerResponse, url: URL, body: Buffer): boolean {
    if (url.pathname.startsWith('/wechat-api/')) return this.wechat(req, res, url, body), true;
    if (url.pathname.startsWith('/graph/')) return this.graph(req, res, url, body), true;
    if (url.pathname.startsWith('/twilio/')) return this.twilio(req, res, url, body), true;
    return false;
  }

  /** Numbers the parts one user receives per message, for the timeline ("part 2"). */
  private part(vendorId: string, lineId: number): number {
    const key = `${vendorId}#${lineId}`;
    const n = (this.partsTo.get(key) ?? 0) + 1;
    this.partsTo.set(key, n);
    return n;
  }

  /** WeChat API (https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Service_Center_messages.html). */
  private wechat(_req: IncomingMessage, res: ServerResponse, url: URL, body: Buffer): void {
    const wechat = this.settings.wechat;
    const path = url.pathname.slice('/wechat-api'.length);
    if (!wechat) return json(res, 200, { errcode: 40013, errmsg: 'invalid appid (the simulator does not stand in for a configured account)' });
    if (path === '/cgi-bin/token' || path === '/cgi-bin/stable_token') {
      const parsed = path === '/cgi-bin/stable_token' ? parseJson(body) : undefined;
      const appid = parsed ? str(parsed.appid) : (url.searchParams.get('appid') ?? '');
      const secret = parsed ? str(parsed.secret) : (url.searchParams.get('secret') ?? '');
      if (appid !== wechat.appId) return json(res, 200, { errcode: 40013, errmsg: 'invalid appid' });
      if (secret !== wechat.appSecret) return json(res, 200, { errcode: 40001, errmsg: 'invalid credential' });
      this.wechatToken ||= `SIM_${randomBytes(24).toString('hex')}`;
      return json(res, 200, { access_token: this.wechatToken, expires_in: 7200 });
    }
    if (url.searchParams.get('access_token') !== this.wechatToken || this.wechatToken === '') {
      return json(res, 200, { errcode: 40001, errmsg: 'invalid credential, access_token is invalid or not latest' });
    }
    if (path === '/cgi-bin/media/get') {
      if (!sendSample(res, url.searchParams.get('media_id') ?? '')) json(res, 200, { errcode: 40007, errmsg: 'invalid media_id' });
      return;
    }
    const parsed = parseJson(body);
    const touser = str(parsed?.touser);
    const conv = this.convs.findByVendorId(['wechat'], touser);
    if (path === '/cgi-bin/message/custom/typing') {
      if (!conv) return json(res, 200, { errcode: 40003, errmsg: 'invalid openid' });
      const typing = str(parsed?.command) === 'Typing';
      this.convs.setTyping(conv, typing);
      const line = this.lineFor(conv);
      if (line) this.convs.step(conv, line, `custom/typing ${typing ? 'Typing' : 'CancelTyping'}`);
      return json(res, 200, { errcode: 0, errmsg: 'ok' });
    }
    if (path === '/cgi-bin/message/custom/send') {
      if (!conv) return json(res, 200, { errcode: 40003, errmsg: 'invalid openid' });
      const msgtype = str(parsed?.msgtype);
      const content = str(field(parsed, 'text', 'content'));
      if (msgtype !== 'text' || content === '') return json(res, 200, { errcode: 40008, errmsg: 'invalid message type' });
      const line = this.lineFor(conv);
      const part = line ? this.part(touser, line.id) : 1;
      if (line) this.convs.step(conv, line, `custom/send part ${part} (${Buffer.byteLength(content, 'utf8')} bytes)`);
      this.convs.add(conv, 'bot', content, `customer-service message, part ${part}`);
      return json(res, 200, { errcode: 0, errmsg: 'ok' });
    }
    json(res, 200, { errcode: 48001, errmsg: `api unauthorized: the simulator does not implement ${path}` });
  }

  /** Graph API (https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages). */
  private graph(req: IncomingMessage, res: ServerResponse, url: URL, body: Buffer): void {
    const whatsapp = this.settings.whatsapp;
    const match = /^\/graph\/v\d+\.\d+\/(\d+)\/messages$/.exec(url.pathname);
    if (!whatsapp || req.headers.authorization !== `Bearer ${whatsapp.accessToken}`) {
      return json(res, 401, { error: { message: 'Invalid OAuth access token - Cannot parse access token', type: 'OAuthException', code: 190, fbtrace_id: 'SIM' } });
    }
    // Media: the id resolves to a short-lived URL, downloaded with the same bearer token
    // (https://developers.facebook.com/docs/whatsapp/cloud-api/reference/media#retrieve-media-url).
    const mediaDownload = /^\/graph\/media\/([A-Za-z0-9]+)$/.exec(url.pathname);
    if (req.method === 'GET' && mediaDownload?.[1] !== undefined) {
      if (!sendSample(res, mediaDownload[1])) json(res, 404, { error: { message: 'media not found', type: 'OAuthException', code: 100, fbtrace_id: 'SIM' } });
      return;
    }
    const mediaInfo = /^\/graph\/v\d+\.\d+\/([A-Za-z0-9]+)$/.exec(url.pathname);
    const sample = mediaInfo?.[1] === undefined ? undefined : SAMPLES[mediaInfo[1]];
    if (req.method === 'GET' && mediaInfo?.[1] !== undefined && sample) {
      const size = readFileSync(join(__dirname, 'samples', sample.file)).length;
      return json(res, 200, { messaging_product: 'whatsapp', url: `${this.simulatorUrl}/graph/media/${mediaInfo[1]}`, mime_type: sample.type, sha256: mediaInfo[1], file_size: size, id: mediaInfo[1] });
    }
    if (!match || match[1] !== whatsapp.phoneNumberId) {
      return json(res, 400, { error: { message: `Unsupported request: ${url.pathname}`, type: 'GraphMethodException', code: 100, fbtrace_id: 'SIM' } });
    }
    const parsed = parseJson(body);
    if (parsed?.messaging_product !== 'whatsapp') {
      return json(res, 400, { error: { message: 'The parameter messaging_product is required.', type: 'OAuthException', code: 100, fbtrace_id: 'SIM' } });
    }
    if (parsed.status === 'read') {
      // Read receipt, optionally with the typing indicator (https://developers.facebook.com/docs/whatsapp/cloud-api/typing-indicators).
      const messageId = str(parsed.message_id);
      const found = this.lineOf(messageId);
      if (found) {
        this.convs.markRead(found.conv, found.line);
        const typing = str(field(parsed, 'typing_indicator', 'type')) === 'text';
        this.convs.step(found.conv, found.line, `Graph read receipt${typing ? ' + typing indicator' : ''}`);
        if (typing) this.convs.setTyping(found.conv, true);
      }
      return json(res, 200, { success: true });
    }
    const to = str(parsed.to);
    const conv = this.convs.findByVendorId(['whatsapp'], to.replace(/^\+/, ''));
    if (!conv) return json(res, 400, { error: { message: '(#131030) Recipient phone number not in allowed list', type: 'OAuthException', code: 131030, fbtrace_id: 'SIM' } });
    const type = str(parsed.type);
    if (type !== 'template' && conv.windowClosed) {
      // https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes (131047)
      const line = this.lineFor(conv);
      if (line) this.convs.step(conv, line, `Graph /messages ${type} → error 131047 (24 h window closed)`);
      return json(res, 400, {
        error: {
          message: '(#131047) Re-engagement message',
          type: 'OAuthException',
          code: 131047,
          error_data: { messaging_product: 'whatsapp', details: 'Message failed to send because more than 24 hours have passed since the customer last replied to this number.' },
          fbtrace_id: 'SIM',
        },
      });
    }
    let shown: string;
    if (type === 'text') shown = str(field(parsed, 'text', 'body'));
    else if (type === 'template') shown = `[template "${str(field(parsed, 'template', 'name'))}" (${str(field(parsed, 'template', 'language', 'code'))})]`;
    else return json(res, 400, { error: { message: `(#100) Unsupported message type ${type}`, type: 'OAuthException', code: 100, fbtrace_id: 'SIM' } });
    const id = `wamid.SIMOUT${randomBytes(12).toString('hex').toUpperCase()}`;
    const line = this.lineFor(conv);
    const part = line ? this.part(to, line.id) : 1;
    if (line) this.convs.step(conv, line, `Graph /messages ${type} part ${part} (${Array.from(shown).length} chars)`);
    this.convs.add(conv, 'bot', shown, type === 'template' ? 'template (24 h window closed)' : `Graph /messages, part ${part}`);
    json(res, 200, { messaging_product: 'whatsapp', contacts: [{ input: to, wa_id: to }], messages: [{ id }] });
  }


  /** Twilio REST (https://www.twilio.com/docs/messaging/api/message-resource#create-a-message-resource). */
  private twilio(req: IncomingMessage, res: ServerResponse, url: URL, body: Buffer): void {
    const twilio = this.settings.twilio;
    const expected = twilio ? `Basic ${Buffer.from(`${twilio.accountSid}:${twilio.authToken}`).toString('base64')}` : undefined;
    if (!twilio || req.headers.authorization !== expected) {
      return json(res, 401, { code: 20003, message: 'Authenticate', more_info: 'https://www.twilio.com/docs/errors/20003', status: 401 });
    }
    const media = /\/Messages\/[A-Za-z0-9]+\/Media\/([A-Za-z0-9]+)$/.exec(url.pathname);
    if (req.method === 'GET' && media?.[1] !== undefined && url.pathname.startsWith(`/twilio/2010-04-01/Accounts/${twilio.accountSid}/`) && sendSample(res, media[1])) return;
    if (req.method !== 'POST' || url.pathname !== `/twilio/2010-04-01/Accounts/${twilio.accountSid}/Messages.json`) {
      return json(res, 404, { code: 20404, message: 'The requested resource was not found', status: 404 });
    }
    const form = new URLSearchParams(body.toString('utf8'));
    const to = form.get('To') ?? '';
    const text = form.get('Body') ?? '';
    const contentSid = form.get('ContentSid') ?? '';
    const conv = this.convs.findByVendorId(['sms', 'voice'], to.replace(/^whatsapp:/, ''));
    if (!conv) return json(res, 400, { code: 21211, message: `The 'To' number ${to} is not a valid phone number.`, status: 400 });
    if (text === '' && contentSid === '') return json(res, 400, { code: 21602, message: 'Message body is required.', status: 400 });
    if (Array.from(text).length > 1600) return json(res, 400, { code: 21617, message: 'The concatenated message body exceeds the 1600 character limit.', status: 400 });
    const sid = `SM${randomBytes(16).toString('hex')}`;
    const line = this.lineFor(conv);
    const part = line ? this.part(to, line.id) : 1;
    if (line) this.convs.step(conv, line, `Twilio Messages.json part ${part} (${Array.from(text).length} chars)`);
    this.convs.add(conv, 'bot', contentSid !== '' ? `[template ${contentSid}]` : text, `Twilio Messages.json, part ${part}`);
    json(res, 201, { sid, status: 'queued', to, from: form.get('From'), body: text, error_code: null });
  }
}
