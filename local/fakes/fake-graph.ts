/**
 * A fake of Meta's Graph API for the WhatsApp Cloud API: a real `node:http` server on
 * 127.0.0.1 (random port) that speaks the calls the gateway makes, records them, and
 * fails on demand with Meta's error bodies.
 *
 * - `POST /{version}/{phone_number_id}/messages`: text and template sends (answered with a
 *   fresh `wamid`) and mark-read / typing-indicator calls (`{"success":true}`);
 * - `GET /{version}/{media_id}`: media metadata `{url, mime_type, sha256, file_size, id}`;
 * - `GET /media/{media_id}`: the bytes behind that URL.
 * Every call needs `Authorization: Bearer <accessToken>` (else 401 with code 190, as Meta).
 *
 * Faults are rules matched against each send attempt (per call, per recipient, per part):
 * ```ts
 * graph.failWhen((m, ctx) => m.to === user && ctx.acceptedBefore === 1, { code: 131056 }, 5);
 * graph.failNext({ code: 131047 });
 * ```
 * With `webhook` set, every accepted send is followed by signed `sent`, `delivered` and
 * `read` status webhooks to the gateway, as Meta does, and {@link FakeGraph.failLater}
 * accepts a send and reports it `failed` afterwards (131047 often arrives that way).
 */
import { createHash, randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders, IncomingMessage, Server, ServerResponse } from 'node:http';
import { setTimeout as delay } from 'node:timers/promises';
import { sampleStatusWebhook, signedHeaders } from '../samples/whatsapp';
import { closeServer, isRecord, listenLocal, pathOf, readBody, sendMedia, serveWith } from './fake-http';

/** A Graph error to answer with. */
export interface GraphFault {
  /** Meta's `error.code`, e.g. 131056, 131047, 190. */
  code: number;
  /** HTTP status (default 401 for 190, else 400, as Meta answers most Cloud API errors). */
  httpStatus?: number;
  message?: string;
  subcode?: number;
}

/** A message send the fake received. */
export interface FakeGraphMessage {
  phoneNumberId: string;
  to: string;
  type: string;
  /** `text.body` of a text message. */
  text: string | undefined;
  /** `template.name` / `template.language.code` of a template message. */
  template: { name: string; language: string } | undefined;
  /** The `wamid` we answered with ('' for a failed attempt). */
  id: string;
  /** Whether the fake accepted it. */
  accepted: boolean;
  /** The error code it was failed with. */
  failedWith: number | undefined;
  atMs: number;
  body: Record<string, unknown>;
}

/** A mark-read call. */
export interface FakeGraphRead {
  phoneNumberId: string;
  messageId: string;
  /** `typing_indicator.type`, when asked for. */
  typing: string | undefined;
  atMs: number;
}

/** What a fault rule sees besides the message. */
export interface FaultContext {
  /** Accepted text messages to the same recipient before this attempt (0 = this would be part 1). */
  acceptedBefore: number;
  /** Attempts (accepted or not) to the same recipient before this one. */
  attemptsBefore: number;
}

/** Any request the fake received. */
export interface FakeGraphRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  atMs: number;
}

interface FaultRule {
  match: (message: FakeGraphMessage, ctx: FaultContext) => boolean;
  fault: GraphFault;
  times: number;
  /** Accept the send, then report a `failed` status webhook with this code. */
  later: boolean;
}

interface MediaItem {
  bytes: Buffer;
  mimeType: string;
  /** Served without Content-Length, in chunks. */
  chunked: boolean;
}

/** Options of {@link startFakeGraph}. */
export interface FakeGraphOptions {
  /** Expected bearer token (default `test-access-token`). */
  accessToken?: string;
  /** Pause before every answer (default 0). */
  latencyMs?: number;
}

function str(obj: Record<string, unknown> | undefined, name: string): string | undefined {
  const v = obj?.[name];
  return typeof v === 'string' ? v : undefined;
}

function sub(obj: Record<string, unknown> | undefined, name: string): Record<string, unknown> | undefined {
  const v = obj?.[name];
  return isRecord(v) ? v : undefined;
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  if (res.destroyed) return;
  res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8', 'x-fb-trace-id': randomBytes(8).toString('base64') });
  res.end(JSON.stringify(body));
}

function errorBody(fault: GraphFault): { status: number; body: unknown } {
  const message = fault.message ?? (fault.code === 190 ? 'Error validating access token: Session has expired.' : `(#${fault.code}) Fake Graph error`);
  return {
    status: fault.httpStatus ?? (fault.code === 190 ? 401 : 400),
    body: {
      error: {
        message,
        type: 'OAuthException',
        code: fault.code,
        ...(fault.subcode !== undefined ? { error_subcode: fault.subcode } : {}),
        error_data: { messaging_product: 'whatsapp', details: message },
        fbtrace_id: `A${randomBytes(10).toString('base64')}`,
      },
    },
  };
}

/** A running fake Graph API. Create with {@link startFakeGraph}. */
export class FakeGraph {
  /** For `WHATSAPP_GRAPH_BASE` (no version, no trailing slash). */
  readonly baseUrl: string;
  /** Every request, in order. */
  readonly requests: FakeGraphRequest[] = [];
  /** Every send attempt (text and template), accepted or not, in order. */
  readonly attempts: FakeGraphMessage[] = [];
  /** Mark-read / typing-indicator calls, in order. */
  readonly reads: FakeGraphRead[] = [];
  /** Media ids whose metadata was asked for, and ids downloaded. */
  readonly mediaInfoCalls: string[] = [];
  readonly downloads: string[] = [];
  /** The bearer token the fake accepts; change it to make every call fail with 190. */
  accessToken: string;
  latencyMs: number;
  /** Where to post status webhooks (none when undefined). */
  webhook: { url: string; appSecret: string } | undefined;

  private rules: FaultRule[] = [];
  private readonly media = new Map<string, MediaItem>();
  private readonly pendingPosts = new Set<Promise<void>>();
  private readonly server: Server;
  private readonly closing = new AbortController();

  /** @internal use {@link startFakeGraph}. */
  constructor(server: Server, baseUrl: string, opts: FakeGraphOptions) {
    this.server = server;
    this.baseUrl = baseUrl;
    this.accessToken = opts.accessToken ?? 'test-access-token';
    this.latencyMs = opts.latencyMs ?? 0;
    serveWith(server, (req, res) => this.handle(req, res));
  }

  /** Accepted sends (text and template), in order. */
  get sent(): FakeGraphMessage[] {
    return this.attempts.filter((m) => m.accepted);
  }

  /** Accepted sends to one recipient. */
  sentTo(to: string): FakeGraphMessage[] {
    return this.sent.filter((m) => m.to === to);
  }

  /** Texts accepted for one recipient, in order. */
  textsTo(to: string): string[] {
    return this.sentTo(to).flatMap((m) => (m.text === undefined ? [] : [m.text]));
  }

  /** The next `times` send attempts (any recipient) fail with `fault`. */
  failNext(fault: GraphFault, times = 1): this {
    return this.failWhen(() => true, fault, times);
  }

  /** Send attempts matching `match` fail with `fault`, up to `times` times (default: always). */
  failWhen(match: (message: FakeGraphMessage, ctx: FaultContext) => boolean, fault: GraphFault, times = Number.POSITIVE_INFINITY): this {
    this.rules.push({ match, fault, times, later: false });
    return this;
  }

  /** Sends matching `match` are accepted but then reported `failed` with `code` by status webhook. */
  failLater(match: (message: FakeGraphMessage, ctx: FaultContext) => boolean, code: number, times = 1): this {
    this.rules.push({ match, fault: { code }, times, later: true });
    return this;
  }

  /** Registers media the gateway may download; `chunked` serves it without Content-Length. */
  addMedia(id: string, bytes: Uint8Array, mimeType: string, opts: { chunked?: boolean } = {}): void {
    this.media.set(id, { bytes: Buffer.from(bytes), mimeType, chunked: opts.chunked ?? false });
  }

  /** Forgets media (Meta's media ids expire). */
  removeMedia(id: string): void {
    this.media.delete(id);
  }

  /** Clears recordings and fault rules (media and token stay). */
  reset(): void {
    this.requests.length = 0;
    this.attempts.length = 0;
    this.reads.length = 0;
    this.mediaInfoCalls.length = 0;
    this.downloads.length = 0;
    this.rules = [];
  }

  /** Waits for status webhooks still being posted. */
  async settle(): Promise<void> {
    while (this.pendingPosts.size > 0) await Promise.all([...this.pendingPosts]);
  }

  /** Stops the server, dropping open connections and pending delays. */
  async close(): Promise<void> {
    this.closing.abort();
    await this.settle().catch(() => undefined);
    await closeServer(this.server);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const raw = (await readBody(req)).toString('utf8');
    const path = pathOf(req);
    const atMs = Date.now();
    this.requests.push({ method: req.method ?? '', path, headers: req.headers, atMs });
    if (this.latencyMs > 0) {
      try {
        await delay(this.latencyMs, undefined, { signal: this.closing.signal });
      } catch {
        res.destroy();
        return;
      }
    }
    if (req.headers.authorization !== `Bearer ${this.accessToken}`) {
      const { status, body } = errorBody({ code: 190, subcode: 463 });
      sendJson(res, status, body);
      return;
    }
    const segments = path.split('/').filter((s) => s !== '');
    if (req.method === 'GET' && segments[0] === 'media' && segments[1] !== undefined) {
      this.download(segments[1], res);
      return;
    }
    if (segments.length < 2 || !/^v\d+\.\d+$/.test(segments[0] ?? '')) {
      sendJson(res, 400, errorBody({ code: 100, message: 'Unknown path components' }).body);
      return;
    }
    if (req.method === 'GET' && segments.length === 2 && segments[1] !== undefined) {
      this.mediaInfo(segments[1], res);
      return;
    }
    if (req.method === 'POST' && segments.length === 3 && segments[2] === 'messages' && segments[1] !== undefined) {
      this.messages(segments[1], raw, res, atMs);
      return;
    }
    sendJson(res, 400, errorBody({ code: 100, message: `Unsupported ${req.method ?? ''} request` }).body);
  }

  private mediaInfo(id: string, res: ServerResponse): void {
    this.mediaInfoCalls.push(id);
    const item = this.media.get(id);
    if (!item) {
      sendJson(res, 400, errorBody({ code: 100, subcode: 33, message: `Unsupported get request. Object with ID '${id}' does not exist` }).body);
      return;
    }
    sendJson(res, 200, {
      messaging_product: 'whatsapp',
      url: `${this.baseUrl}/media/${encodeURIComponent(id)}?ext=${Date.now()}&hash=${randomBytes(4).toString('hex')}`,
      mime_type: item.mimeType,
      sha256: createHash('sha256').update(item.bytes).digest('base64'),
      file_size: item.bytes.length,
      id,
    });
  }

  private download(id: string, res: ServerResponse): void {
    const decoded = decodeURIComponent(id);
    this.downloads.push(decoded);
    const item = this.media.get(decoded);
    if (!item) {
      res.writeHead(404).end();
      return;
    }
    sendMedia(res, item.bytes, { 'content-type': item.mimeType }, item.chunked);
  }

  private messages(phoneNumberId: string, raw: string, res: ServerResponse, atMs: number): void {
    let body: unknown;
    try {
      body = JSON.parse(raw);
    } catch {
      sendJson(res, 400, errorBody({ code: 100, message: 'Invalid JSON' }).body);
      return;
    }
    if (!isRecord(body) || body.messaging_product !== 'whatsapp') {
      sendJson(res, 400, errorBody({ code: 100, message: 'The parameter messaging_product is required.' }).body);
      return;
    }
    if (body.status === 'read') {
      this.reads.push({ phoneNumberId, messageId: str(body, 'message_id') ?? '', typing: str(sub(body, 'typing_indicator'), 'type'), atMs });
      sendJson(res, 200, { success: true });
      return;
    }
    const to = str(body, 'to') ?? '';
    const template = sub(body, 'template');
    const message: FakeGraphMessage = {
      phoneNumberId,
      to,
      type: str(body, 'type') ?? 'text',
      text: str(sub(body, 'text'), 'body'),
      template: template ? { name: str(template, 'name') ?? '', language: str(sub(template, 'language'), 'code') ?? '' } : undefined,
      id: '',
      accepted: false,
      failedWith: undefined,
      atMs,
      body,
    };
    const previous = this.attempts.filter((m) => m.to === to);
    const ctx: FaultContext = { acceptedBefore: previous.filter((m) => m.accepted && m.type === 'text').length, attemptsBefore: previous.length };
    this.attempts.push(message);
    if (message.type === 'text' && (message.text === undefined || message.text.length > 4096 || message.text.trim() === '')) {
      message.failedWith = 100;
      sendJson(res, 400, errorBody({ code: 100, message: 'Invalid parameter: text.body must be 1-4096 characters' }).body);
      return;
    }
    const rule = this.rules.find((r) => r.times > 0 && r.match(message, ctx));
    if (rule) rule.times--;
    if (rule && !rule.later) {
      message.failedWith = rule.fault.code;
      const { status, body: errBody } = errorBody(rule.fault);
      sendJson(res, status, errBody);
      return;
    }
    message.accepted = true;
    message.id = `wamid.${randomBytes(24).toString('base64')}`;
    sendJson(res, 200, { messaging_product: 'whatsapp', contacts: [{ input: to, wa_id: to }], messages: [{ id: message.id }] });
    if (rule) this.postStatuses(phoneNumberId, to, message.id, [{ status: 'failed', code: rule.fault.code }]);
    else this.postStatuses(phoneNumberId, to, message.id, [{ status: 'sent' }, { status: 'delivered' }, { status: 'read' }]);
  }

  /** Posts status webhooks in the background, like Meta after a send. */
  private postStatuses(phoneNumberId: string, to: string, id: string, statuses: { status: 'sent' | 'delivered' | 'read' | 'failed'; code?: number }[]): void {
    const hook = this.webhook;
    if (!hook) return;
    const post = (async () => {
      for (const s of statuses) {
        const body = sampleStatusWebhook({ phoneNumberId, recipientId: to, id, status: s.status, ...(s.code !== undefined ? { errorCode: s.code } : {}) });
        await fetch(hook.url, { method: 'POST', headers: signedHeaders(hook.appSecret, body), body, signal: AbortSignal.timeout(5_000) })
          .then((r) => r.arrayBuffer())
          .catch(() => undefined);
      }
    })();
    this.pendingPosts.add(post);
    void post.finally(() => this.pendingPosts.delete(post));
  }
}

/**
 * Starts a fake Graph API on 127.0.0.1 (random port).
 * Always `await graph.close()` (e.g. in `afterAll`).
 */
export async function startFakeGraph(opts: FakeGraphOptions = {}): Promise<FakeGraph> {
  const { server, port } = await listenLocal('fake Graph server has no TCP address');
  return new FakeGraph(server, `http://127.0.0.1:${port}`, opts);
}
