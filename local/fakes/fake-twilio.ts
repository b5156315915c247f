/**
 * A fake of Twilio, both sides, over real HTTP on 127.0.0.1:
 *
 * - **REST API** (`TWILIO_API_BASE`): `POST /2010-04-01/Accounts/{sid}/Messages.json` with
 *   HTTP Basic auth, recording what would reach the phone; scripted failures; WhatsApp
 *   numbers whose 24-hour session is closed (63016 on the send, or later on the status
 *   callback, as Twilio usually reports it); media downloads that need the same auth.
 * - **Webhooks**: signs and posts messaging webhooks and drives whole phone calls by
 *   following the TwiML the gateway returns (`<Say>`, `<Pause>`, `<Gather>`, `<Redirect>`,
 *   `<Hangup>`), checking each response is valid TwiML and arrives within the limit
 *   (Twilio: 15 s, error 11200).
 *
 * Twilio calls the gateway's *public* URL (`PUBLIC_BASE_URL`, e.g. behind API Gateway or a
 * custom domain): the fake signs that URL, as Twilio does, and delivers to the local
 * gateway, just as the public URL maps to the Lambda in AWS. The signature is computed
 * here from Twilio's rule (https://www.twilio.com/docs/usage/webhooks/webhooks-security),
 * independently of the gateway's validator.
 */
import { createHmac, randomBytes } from 'node:crypto';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { closeServer, listenLocal, readBody, sendMedia } from './fake-http';

/** Settings of the fake. */
export interface FakeTwilioOptions {
  accountSid: string;
  authToken: string;
  /** The gateway's public base URL (what Twilio is configured with and signs). */
  publicBaseUrl: string;
  /** Where that public URL really lands (the local test gateway), set once known. */
  gatewayUrl?: string;
  /** Longest a webhook may take (Twilio: 15 s); slower responses fail the call. */
  responseLimitMs?: number;
  /** Real milliseconds per second of `<Pause>` (scaled down in tests). */
  pauseMsPerSec?: number;
}

/** A message that reached the fake REST API. */
export interface SentMessage {
  sid: string;
  to: string;
  from: string | undefined;
  messagingServiceSid: string | undefined;
  body: string | undefined;
  contentSid: string | undefined;
  statusCallback: string | undefined;
  /** Whether Twilio accepted it (201). */
  accepted: boolean;
  /** Error code when not accepted (or failed later through the status callback). */
  errorCode: number | undefined;
}

/** A scripted failure of the send API. */
export interface SendFailure {
  status: number;
  code: number;
  message: string;
}

/** How a closed WhatsApp session shows: on the send itself, or later on the status callback. */
export type SessionClosedMode = 'sync' | 'async';

/** One thing that happened on a call, in order. */
export type CallEvent =
  | { kind: 'say'; text: string }
  | { kind: 'pause'; seconds: number }
  | { kind: 'gather'; action: string; language: string }
  | { kind: 'caller'; speech: string | null }
  | { kind: 'redirect'; url: string }
  | { kind: 'hangup' }
  | { kind: 'request'; path: string; status: number; ms: number };

/** The end of a driven call. */
export interface CallResult {
  callSid: string;
  events: CallEvent[];
  /** Everything said to the caller, in order. */
  heard: string[];
  /** How the call ended: `<Hangup>`, TwiML ran out, or the caller's script ran out. */
  ended: 'hangup' | 'no-more-twiml' | 'script-exhausted';
  /** Slowest webhook response. */
  slowestMs: number;
}

/** Silence from the caller in a call script. */
export const SILENCE = null;

/** A parsed TwiML verb: its attributes, text and nested verbs. */
export interface Verb {
  name: string;
  attrs: Record<string, string>;
  text: string;
  children: Verb[];
}

function decodeXml(s: string): string {
  return s
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&#(\d+);/g, (_m, d: string) => String.fromCodePoint(Number(d)))
    .replace(/&amp;/g, '&');
}

/** `&` must start one of XML's entity or character references. */
const BAD_AMPERSAND = /&(?!(?:amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);)/;

/**
 * Parses a TwiML document into its verbs, strictly: the document must be well-formed
 * XML (every tag closed in order, attributes quoted, `&` only in references, one root,
 * nothing but white space outside it) with `<Response>` as the root, as Twilio requires.
 * @throws Error naming the problem.
 */
export function parseTwiml(xml: string): Verb[] {
  const root: Verb = { name: '#root', attrs: {}, text: '', children: [] };
  const stack: Verb[] = [root];
  const re = /<\?xml[^>]*\?>|<(\/?)([A-Za-z][A-Za-z0-9]*)((?:\s+[A-Za-z][A-Za-z0-9]*="[^"<]*")*)\s*(\/?)>|([^<]+)|(<)/gy;
  for (const m of xml.matchAll(re)) {
    const [whole, closing, name, rawAttrs, selfClosing, text, stray] = m;
    const top = stack[stack.length - 1];
    if (!top) throw new Error('content after the root element');
    if (stray !== undefined) throw new Error(`malformed markup at ${m.index}: ${xml.slice(m.index, m.index + 30)}`);
    if (whole.startsWith('<?')) {
      if (m.index !== 0) throw new Error('XML declaration not at the start');
      continue;
    }
    if (text !== undefined) {
      if (BAD_AMPERSAND.test(text)) throw new Error(`unescaped & in text: ${text}`);
      if (top === root && text.trim() !== '') throw new Error('text outside the root element');
      top.text += decodeXml(text);
      continue;
    }
    if (name === undefined) continue;
    if (closing === '/') {
      if (top.name !== name || rawAttrs !== '' || selfClosing === '/') throw new Error(`</${name}> does not close <${top.name}>`);
      stack.pop();
      continue;
    }
    if (top === root && root.children.length > 0) throw new Error('more than one root element');
    const attrs: Record<string, string> = {};
    for (const a of (rawAttrs ?? '').matchAll(/([A-Za-z][A-Za-z0-9]*)="([^"]*)"/g)) {
      const [, attrName = '', value = ''] = a;
      if (BAD_AMPERSAND.test(value)) throw new Error(`unescaped & in ${name}@${attrName}`);
      if (attrName in attrs) throw new Error(`duplicate attribute ${attrName}`);
      attrs[attrName] = decodeXml(value);
    }
    const verb: Verb = { name, attrs, text: '', children: [] };
    top.children.push(verb);
    if (selfClosing !== '/') stack.push(verb);
  }
  if (stack.length !== 1) throw new Error(`<${stack[stack.length - 1]?.name ?? ''}> is not closed`);
  const response = root.children[0];
  if (response?.name !== 'Response') throw new Error(`TwiML root is ${response?.name ?? 'missing'}, not Response`);
  return response.children;
}

const VERBS = new Set(['Say', 'Pause', 'Gather', 'Redirect', 'Hangup', 'Message']);

function sid(prefix: string): string {
  return `${prefix}${randomBytes(16).toString('hex')}`;
}

/** The fake. Create with {@link startFakeTwilio}. */
export class FakeTwilio {
  /** REST API base for `TWILIO_API_BASE`. */
  readonly apiBase: string;
  /** Every send attempt, accepted or not, in order. */
  readonly attempts: SentMessage[] = [];
  /** Status callbacks the fake made: the gateway's HTTP status for each. */
  readonly statusCallbacks: { url: string; status: number }[] = [];
  /** WhatsApp addresses whose 24-hour session is closed. */
  readonly sessionClosed = new Map<string, SessionClosedMode>();
  gatewayUrl: string;
  private readonly failures: { match: (m: SentMessage) => boolean; failure: SendFailure; times: number }[] = [];
  private readonly media = new Map<string, { bytes: Buffer; contentType: string; chunked: boolean }>();
  private readonly pending = new Set<Promise<void>>();

  constructor(
    private readonly server: Server,
    port: number,
    private readonly opts: FakeTwilioOptions,
  ) {
    this.apiBase = `http://127.0.0.1:${port}`;
    this.gatewayUrl = opts.gatewayUrl ?? '';
    server.on('request', (req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) res.writeHead(500).end(String(err));
      });
    });
  }

  /** Messages accepted by the API (what the phones received), optionally for one recipient. */
  delivered(to?: string): SentMessage[] {
    return this.attempts.filter((m) => m.accepted && m.errorCode === undefined && (to === undefined || m.to === to));
  }

  /** Makes the next `times` sends matching `match` fail with `failure`. */
  failNext(match: (m: SentMessage) => boolean, failure: SendFailure, times = 1): void {
    this.failures.push({ match, failure, times });
  }

  /**
   * Registers media; returns its `MediaUrl` (on the API host, needing Basic auth like Twilio's).
   * `chunked` serves it without Content-Length.
   */
  addMedia(bytes: Buffer, contentType: string, opts: { chunked?: boolean } = {}): string {
    const path = `/2010-04-01/Accounts/${this.opts.accountSid}/Messages/${sid('MM')}/Media/${sid('ME')}`;
    this.media.set(path, { bytes, contentType, chunked: opts.chunked ?? false });
    return `${this.apiBase}${path}`;
  }

  /** `X-Twilio-Signature` for `url` and the POST parameters (https://www.twilio.com/docs/usage/webhooks/webhooks-security). */
  sign(url: string, params: Readonly<Record<string, string>>): string {
    const data = Object.keys(params)
      .sort()
      .reduce((acc, name) => acc + name + (params[name] ?? ''), url);
    return createHmac('sha1', this.opts.authToken).update(Buffer.from(data, 'utf8')).digest('base64');
  }

  /** Where a public URL really goes (the local gateway). */
  private local(publicUrl: string): string {
    const parsed = new URL(publicUrl);
    if (parsed.hostname !== new URL(this.opts.publicBaseUrl).hostname) throw new Error(`${publicUrl} is not on the gateway's public host`);
    return `${this.gatewayUrl}${parsed.pathname}${parsed.search}`;
  }

  /**
   * Posts a signed webhook to a public URL. `signedUrl` signs another spelling of the
   * URL (e.g. with `:443`); `signature` overrides the signature (bad-signature tests).
   */
  async post(
    publicUrl: string,
    params: Readonly<Record<string, string>>,
    opts: { signedUrl?: string; signature?: string | null } = {},
  ): Promise<{ status: number; body: string; contentType: string; ms: number }> {
    const signature = opts.signature === undefined ? this.sign(opts.signedUrl ?? publicUrl, params) : opts.signature;
    const started = Date.now();
    const res = await fetch(this.local(publicUrl), {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded; charset=utf-8',
        'user-agent': 'TwilioProxy/1.1',
        ...(signature === null ? {} : { 'x-twilio-signature': signature }),
      },
      body: new URLSearchParams(params).toString(),
      signal: AbortSignal.timeout(this.opts.responseLimitMs ?? 15_000),
    });
    const body = await res.text();
    return { status: res.status, body, contentType: res.headers.get('content-type') ?? '', ms: Date.now() - started };
  }

  /** The parameters of an inbound message webhook. */
  messageParams(opts: { from: string; to: string; body: string; messageSid?: string; media?: { url: string; contentType: string }[] }): Record<string, string> {
    const messageSid = opts.messageSid ?? sid('SM');
    const params: Record<string, string> = {
      ToCountry: 'US',
      SmsMessageSid: messageSid,
      NumMedia: String(opts.media?.length ?? 0),
      SmsSid: messageSid,
      SmsStatus: 'received',
      Body: opts.body,
      To: opts.to,
      NumSegments: '1',
      MessageSid: messageSid,
      AccountSid: this.opts.accountSid,
      From: opts.from,
      ApiVersion: '2010-04-01',
    };
    (opts.media ?? []).forEach((m, i) => {
      params[`MediaUrl${i}`] = m.url;
      params[`MediaContentType${i}`] = m.contentType;
    });
    if (opts.from.startsWith('whatsapp:')) {
      params.ProfileName = 'Test User';
      params.WaId = opts.from.replace(/^whatsapp:\+/, '');
    }
    return params;
  }

  /** A user texts the gateway (SMS, MMS or WhatsApp). */
  async sendMessage(opts: { from: string; to: string; body: string; messageSid?: string; media?: { url: string; contentType: string }[] }): Promise<{ status: number; body: string; contentType: string; ms: number }> {
    return this.post(`${this.opts.publicBaseUrl}/twilio/messaging`, this.messageParams(opts));
  }

  /** Waits until `count` messages reached `to` (or throws after `timeoutMs`). */
  async waitForDelivered(to: string, count: number, timeoutMs = 20_000): Promise<SentMessage[]> {
    const until = Date.now() + timeoutMs;
    while (Date.now() < until) {
      const got = this.delivered(to);
      if (got.length >= count) return got;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`expected ${count} messages to ${to}, got ${this.delivered(to).length}: ${JSON.stringify(this.attempts.filter((m) => m.to === to))}`);
  }

  /**
   * Places a call from `from` and follows the TwiML. `script` is what the caller says at
   * each `<Gather>`, in order; {@link SILENCE} (null) says nothing. `stirVerstat` is the
   * caller ID's SHAKEN/STIR verdict (e.g. `TN-Validation-Passed-A`), sent on the incoming
   * call webhook only (https://www.twilio.com/docs/voice/trusted-calling-with-shakenstir);
   * absent, as for many calls, when not given.
   */
  async call(opts: { from: string; to: string; script: readonly (string | null)[]; maxSteps?: number; stirVerstat?: string }): Promise<CallResult> {
    const callSid = sid('CA');
    const base: Record<string, string> = {
      AccountSid: this.opts.accountSid,
      ApiVersion: '2010-04-01',
      CallSid: callSid,
      CallStatus: 'in-progress',
      Called: opts.to,
      Caller: opts.from,
      Direction: 'inbound',
      From: opts.from,
      To: opts.to,
    };
    const script = [...opts.script];
    const events: CallEvent[] = [];
    const heard: string[] = [];
    let slowestMs = 0;
    let next: { url: string; params: Record<string, string> } | undefined = {
      url: `${this.opts.publicBaseUrl}/twilio/voice`,
      params: { ...base, CallStatus: 'ringing', ...(opts.stirVerstat === undefined ? {} : { StirVerstat: opts.stirVerstat }) },
    };
    for (let step = 0; step < (opts.maxSteps ?? 60) && next; step++) {
      const res = await this.post(next.url, next.params);
      slowestMs = Math.max(slowestMs, res.ms);
      events.push({ kind: 'request', path: new URL(next.url).pathname, status: res.status, ms: res.ms });
      if (res.status !== 200) throw new Error(`webhook ${next.url} answered ${res.status}: ${res.body}`);
      if (!/xml/.test(res.contentType)) throw new Error(`webhook ${next.url} answered ${res.contentType}, not XML`);
      let verbs: Verb[];
      try {
        verbs = parseTwiml(res.body);
      } catch (err) {
        throw new Error(`invalid TwiML from ${next.url}: ${err instanceof Error ? err.message : String(err)}\n${res.body}`);
      }
      next = undefined;
      for (const verb of verbs) {
        if (!VERBS.has(verb.name)) throw new Error(`unknown TwiML verb ${verb.name}`);
        if (verb.name === 'Say') {
          heard.push(verb.text);
          events.push({ kind: 'say', text: verb.text });
        } else if (verb.name === 'Pause') {
          const seconds = Number(verb.attrs.length ?? '1');
          events.push({ kind: 'pause', seconds });
          await new Promise((r) => setTimeout(r, seconds * (this.opts.pauseMsPerSec ?? 1000)));
        } else if (verb.name === 'Gather') {
          const action = verb.attrs.action;
          if (action === undefined) throw new Error('Gather without action');
          if (verb.attrs.input !== 'speech') throw new Error('Gather is not listening for speech');
          events.push({ kind: 'gather', action, language: verb.attrs.language ?? '' });
          for (const child of verb.children) {
            if (child.name === 'Say') {
              heard.push(child.text);
              events.push({ kind: 'say', text: child.text });
            }
          }
          if (script.length === 0) return { callSid, events, heard, ended: 'script-exhausted', slowestMs };
          const speech = script.shift() ?? null;
          events.push({ kind: 'caller', speech });
          if (speech === null) continue; // no input: Twilio runs the next verb
          next = { url: action, params: { ...base, SpeechResult: speech, Confidence: '0.92', Language: verb.attrs.language ?? '' } };
          break;
        } else if (verb.name === 'Redirect') {
          events.push({ kind: 'redirect', url: verb.text });
          next = { url: verb.text, params: base };
          break;
        } else if (verb.name === 'Hangup') {
          events.push({ kind: 'hangup' });
          return { callSid, events, heard, ended: 'hangup', slowestMs };
        }
      }
    }
    return { callSid, events, heard, ended: 'no-more-twiml', slowestMs };
  }

  /** Waits for status callbacks in flight, then stops the server. */
  async close(): Promise<void> {
    await Promise.allSettled([...this.pending]);
    await closeServer(this.server);
  }

  private authorized(req: IncomingMessage): boolean {
    const expected = `Basic ${Buffer.from(`${this.opts.accountSid}:${this.opts.authToken}`).toString('base64')}`;
    return req.headers.authorization === expected;
  }

  private json(res: ServerResponse, status: number, body: unknown): void {
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const raw = await readBody(req);
    const path = new URL(req.url ?? '/', this.apiBase).pathname;
    if (!this.authorized(req)) {
      this.json(res, 401, { code: 20003, message: 'Authenticate', more_info: 'https://www.twilio.com/docs/errors/20003', status: 401 });
      return;
    }
    const media = this.media.get(path);
    if (req.method === 'GET' && media) {
      sendMedia(res, media.bytes, { 'content-type': media.contentType }, media.chunked);
      return;
    }
    if (req.method === 'POST' && path === `/2010-04-01/Accounts/${this.opts.accountSid}/Messages.json`) {
      this.message(new URLSearchParams(raw.toString('utf8')), res);
      return;
    }
    this.json(res, 404, { code: 20404, message: 'The requested resource was not found', status: 404 });
  }

  private message(form: URLSearchParams, res: ServerResponse): void {
    const msg: SentMessage = {
      sid: sid('SM'),
      to: form.get('To') ?? '',
      from: form.get('From') ?? undefined,
      messagingServiceSid: form.get('MessagingServiceSid') ?? undefined,
      body: form.get('Body') ?? undefined,
      contentSid: form.get('ContentSid') ?? undefined,
      statusCallback: form.get('StatusCallback') ?? undefined,
      accepted: false,
      errorCode: undefined,
    };
    this.attempts.push(msg);
    // Twilio's own validation (Message resource): a recipient, a sender, and content.
    if (msg.to === '' || (msg.from === undefined && msg.messagingServiceSid === undefined)) {
      msg.errorCode = 21604;
      this.json(res, 400, { code: 21604, message: "A 'To' and a 'From' or 'MessagingServiceSid' are required.", status: 400 });
      return;
    }
    if (msg.body !== undefined && msg.body.length > 1600) {
      msg.errorCode = 21617;
      this.json(res, 400, { code: 21617, message: 'The concatenated message body exceeds the 1600 character limit.', status: 400 });
      return;
    }
    const rule = this.failures.find((f) => f.times > 0 && f.match(msg));
    if (rule) {
      rule.times -= 1;
      msg.errorCode = rule.failure.code;
      this.json(res, rule.failure.status, { code: rule.failure.code, message: rule.failure.message, status: rule.failure.status });
      return;
    }
    const closed = this.sessionClosed.get(msg.to);
    const freeform = msg.contentSid === undefined;
    if (closed === 'sync' && freeform) {
      msg.errorCode = 63016;
      this.json(res, 400, { code: 63016, message: 'Failed to send freeform message because you are outside the allowed window.', status: 400 });
      return;
    }
    msg.accepted = true;
    this.json(res, 201, { sid: msg.sid, status: 'queued', to: msg.to, from: msg.from ?? null, body: msg.body ?? '', error_code: null });
    if (closed === 'async' && freeform) {
      // Twilio accepts the send, then reports the failure on the status callback.
      msg.errorCode = 63016;
      if (msg.statusCallback !== undefined) this.track(this.statusCallback(msg));
    }
  }

  private track(p: Promise<void>): void {
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
  }

  private async statusCallback(msg: SentMessage): Promise<void> {
    const url = msg.statusCallback;
    if (url === undefined) return;
    await new Promise((r) => setTimeout(r, 20));
    const res = await this.post(url, {
      AccountSid: this.opts.accountSid,
      ApiVersion: '2010-04-01',
      ChannelPrefix: 'whatsapp',
      ErrorCode: '63016',
      From: msg.from ?? '',
      MessageSid: msg.sid,
      MessageStatus: 'failed',
      SmsSid: msg.sid,
      SmsStatus: 'failed',
      To: msg.to,
    }).catch(() => ({ status: 0 }));
    this.statusCallbacks.push({ url, status: res.status });
  }
}

/** Starts the fake on 127.0.0.1 (random port). Always `await fake.close()`. */
export async function startFakeTwilio(opts: FakeTwilioOptions): Promise<FakeTwilio> {
  const { server, port } = await listenLocal('fake Twilio has no TCP address');
  return new FakeTwilio(server, port, opts);
}
