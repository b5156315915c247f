/**
 * The channel simulator's HTTP server, run by `npm start` (local/start.ts) and never
 * deployed: the page (plain HTML/JS/CSS from ./public), its small JSON API, and the vendors'
 * outbound API stand-ins the local stack points at. It also watches the worker's jobs, so each
 * message's timeline shows when the worker ran, when the first token was stored, how many LLM
 * calls it took and which path delivered the answer.
 *
 * Page API (JSON):
 * - `GET /api/config`: which channels work and how WeChat is set up.
 * - `GET /api/conversation?channel=&user=`: one conversation (lines, timelines, typing).
 * - `POST /api/send {channel, user, text, safeMode}`: the simulated user sends `text`.
 * - `POST /api/window {user, closed}`: WhatsApp's 24 h window of the user, closed or open.
 * - `POST /api/hangup {user}`: ends the user's call. `POST /api/clear {channel, user}`: clears the view.
 */
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import type { AppConfig } from '../../lib/config';
import type { SqsBatchHandler } from '../sqs-event-source';
import { parseJob } from '../../lib/queue/jobs';
import { createDocumentClient } from '../../lib/store/client';
import { MessageStore, type MessageRecord } from '../../lib/store/messages';
import { formatNote } from '../../lib/store/notes';
import type { Job } from '../../lib/types';
import { Conversations, isSimChannel, isUserName, type Conversation, type Line, type SimChannel } from './conversations';
import type { SimulatedChannels } from './env';
import { StandIns } from './standins';
import { Vendors, type SampleMedia } from './vendors';

/** Options of {@link startSimulator}. */
export interface SimulatorOptions {
  /** Interface to bind (the local stack's HOST). */
  host: string;
  /** TCP port; 0 picks a free one. */
  port: number;
}

/** What the simulator needs once the local stack is configured. */
export interface SimulatorContext {
  cfg: AppConfig;
  /** Where the gateway's HTTP API listens. */
  gatewayUrl: string;
  /** Channels whose settings the simulator made up (their outbound calls reach the stand-ins). */
  simulated: SimulatedChannels;
  /** WeChat's wait per delivery: 5 s, as WeChat. */
  wechatLimitMs?: number;
}

/** A running simulator. */
export interface Simulator {
  /** Base URL, e.g. `http://127.0.0.1:3100`; the page is at `/`. */
  url: string;
  /** Connects the simulator to the configured stack (before that, the API answers 503). */
  configure(ctx: SimulatorContext): void;
  /** Wraps the worker's handler so every job's progress reaches the message's timeline. */
  observeWorker(handler: SqsBatchHandler): SqsBatchHandler;
  stop(): Promise<void>;
}

const PUBLIC_DIR = join(__dirname, 'public');
/** The files the page is made of: nothing else under the folder is served. */
const STATIC_FILES: Readonly<Record<string, { file: string; type: string }>> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/style.css': { file: 'style.css', type: 'text/css; charset=utf-8' },
  '/samples/photo.jpg': { file: '../samples/photo.jpg', type: 'image/jpeg' },
  '/samples/voice.amr': { file: '../samples/voice.amr', type: 'audio/amr' },
};
const MAX_BODY_BYTES = 1024 * 1024;
/** Channels that can send each sample (WhatsApp and WeChat take both; SMS only MMS pictures). */
const MEDIA_CHANNELS: Readonly<Record<SampleMedia, readonly SimChannel[]>> = { image: ['wechat', 'whatsapp', 'sms'], voice: ['wechat', 'whatsapp'] };

/** Which path delivered an answer (the record's delivery owner). */
const OWNER_NAMES: Readonly<Record<string, string>> = { passive: 'passive reply', push: 'customer-service push (custom/send)', fetch: '"reply 1" fetches' };

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

class BodyTooLargeError extends Error {
  constructor() {
    super(`request body over ${MAX_BODY_BYTES} bytes`);
    this.name = 'BodyTooLargeError';
  }
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new BodyTooLargeError());
        // Stop reading; the 413 still goes out on this socket.
        req.pause();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/** Starts the simulator's server; call {@link Simulator.configure} once the stack's settings are known. */
export async function startSimulator(opts: SimulatorOptions): Promise<Simulator> {
  const convs = new Conversations();
  let ctx: SimulatorContext | undefined;
  let vendors: Vendors | undefined;
  let standIns: StandIns | undefined;
  let store: MessageStore | undefined;
  const llmCalls = new Map<Line, number>();
  /** The message the worker is answering for each conversation (one at a time: a FIFO group per user). */
  const answering = new Map<Conversation, Line>();

  function lineOf(messageId: string): { conv: Conversation; line: Line } | undefined {
    return vendors?.lineOfMsgKey.get(messageId);
  }

  function configPayload(c: SimulatorContext): unknown {
    const { cfg } = c;
    return {
      gatewayUrl: c.gatewayUrl,
      llmProvider: cfg.llm.provider,
      channels: { wechat: cfg.wechat !== undefined, whatsapp: cfg.whatsapp !== undefined, sms: cfg.twilio !== undefined, voice: cfg.twilio !== undefined },
      simulated: c.simulated,
      wechat: cfg.wechat && {
        replyMode: cfg.wechat.replyMode,
        safeMode: cfg.wechat.encodingAesKey !== '',
        fetchKeyword: cfg.wechat.fetchKeyword,
        limitMs: c.wechatLimitMs ?? 5000,
        deliveries: cfg.wechat.deliveries,
      },
    };
  }

  async function api(req: IncomingMessage, res: ServerResponse, url: URL, body: Buffer): Promise<void> {
    if (!ctx || !vendors) return json(res, 503, { error: 'the local stack is still starting' });
    if (req.method === 'GET' && url.pathname === '/api/config') return json(res, 200, configPayload(ctx));
    if (req.method === 'GET' && url.pathname === '/api/conversation') {
      const channel = url.searchParams.get('channel');
      const user = url.searchParams.get('user');
      if (!isSimChannel(channel) || !isUserName(user)) return json(res, 400, { error: 'channel must be wechat, whatsapp, sms or voice; user 1-24 of A-Z a-z 0-9 _ -' });
      return json(res, 200, convs.get(channel, user));
    }
    if (req.method !== 'POST') return json(res, 404, { error: 'not found' });
    let input: unknown;
    try {
      input = JSON.parse(body.toString('utf8'));
    } catch {
      return json(res, 400, { error: 'body must be JSON' });
    }
    if (!isRecord(input)) return json(res, 400, { error: 'body must be a JSON object' });
    const user = input.user;
    if (!isUserName(user)) return json(res, 400, { error: 'user must be 1-24 of A-Z a-z 0-9 _ -' });
    if (url.pathname === '/api/hangup') return json(res, 200, { ended: vendors.hangUp(convs.get('voice', user)) });
    if (url.pathname === '/api/window') {
      if (typeof input.closed !== 'boolean') return json(res, 400, { error: 'closed must be true or false' });
      convs.setWindowClosed(convs.get('whatsapp', user), input.closed);
      return json(res, 200, { closed: input.closed });
    }
    const channel = input.channel;
    if (!isSimChannel(channel)) return json(res, 400, { error: 'channel must be wechat, whatsapp, sms or voice' });
    const conv = convs.get(channel, user);
    if (url.pathname === '/api/clear') {
      convs.clear(conv);
      return json(res, 200, { cleared: true });
    }
    if (url.pathname !== '/api/send') return json(res, 404, { error: 'not found' });
    const media = input.media === 'image' || input.media === 'voice' ? input.media : undefined;
    if (input.media !== undefined && media === undefined) return json(res, 400, { error: 'media must be image or voice' });
    if (media !== undefined && !MEDIA_CHANNELS[media].includes(channel)) return json(res, 400, { error: `${channel} has no ${media} messages here` });
    const text = media === 'image' ? '[photo: samples/photo.jpg]' : media === 'voice' ? '[voice message: samples/voice.amr, 2.7 s]' : typeof input.text === 'string' ? input.text.trim() : '';
    if (text === '' || text.length > 4000) return json(res, 400, { error: 'text must be 1-4000 characters' });
    const safeMode = input.safeMode === true;
    const v = vendors;
    // A call is placed (and its greeting heard) before the caller speaks.
    const dialled = channel === 'voice' && !v.inCall(conv) ? v.placeCall(conv) : Promise.resolve();
    void dialled
      .then(async () => {
        const line = convs.add(conv, 'user', text, channel);
        await send(v, channel, conv, line, text, safeMode, media).catch((err: unknown) => convs.step(conv, line, `simulator error: ${String(err)}`));
      })
      .catch((err: unknown) => convs.add(conv, 'note', `simulator error: ${String(err)}`, 'simulator'));
    return json(res, 202, { accepted: true });
  }

  function send(v: Vendors, channel: SimChannel, conv: Conversation, line: Line, text: string, safeMode: boolean, media: SampleMedia | undefined): Promise<void> {
    switch (channel) {
      case 'wechat':
        return v.wechatText(conv, line, text, safeMode, media);
      case 'whatsapp':
        return v.whatsappText(conv, line, text, media);
      case 'sms':
        return v.smsText(conv, line, text, media);
      case 'voice':
        return v.voiceSay(conv, line, text);
    }
  }

  /** The conversation and message a worker job belongs to. */
  function locate(job: Job): { conv: Conversation; line: Line } | undefined {
    const known = lineOf(job.msgKey);
    if (known) return known;
    const bare = job.userId.replace(/^whatsapp:/, '');
    const channels: SimChannel[] =
      job.channel === 'wechat' ? ['wechat'] : job.channel === 'whatsapp' ? ['whatsapp'] : job.reply.channel === 'twilio' && job.reply.medium === 'voice' ? ['voice'] : ['sms'];
    const conv = convs.findByVendorId(channels, bare) ?? convs.findByVendorId(channels, bare.startsWith('+') ? bare.slice(1) : `+${bare}`);
    const line = conv && convs.lastUserLine(conv);
    return conv && line ? { conv, line } : undefined;
  }

  /** Polls the message record while (and after) the worker runs, for first token and delivery. */
  function watch(job: Job, where: { conv: Conversation; line: Line }, before: MessageRecord | undefined): { stop(): void; streamed(): boolean } {
    const { conv, line } = where;
    const key = { channel: job.channel, userId: job.userId, msgKey: job.msgKey };
    let sawToken = (before?.answer ?? '') !== '';
    // Only an LLM answer passes through `streaming` (fixed answers such as refusals are stored done).
    let sawStreaming = false;
    let stopped = false;
    const timer = setInterval(() => {
      if (stopped || !store) return;
      void store.get(key, Date.now()).then((record) => {
        if (record?.status === 'streaming') sawStreaming = true;
        if (!sawToken && record && record.answer !== '') {
          sawToken = true;
          convs.step(conv, line, `first token stored ${seconds(Date.now() - job.arrivedAtMs)} after the message arrived`);
        }
      }).catch(() => undefined);
    }, 50);
    return {
      stop() {
        stopped = true;
        clearInterval(timer);
      },
      streamed: () => sawStreaming,
    };
  }

  /** After the worker: the answer's state, then which path delivered it once it has been. */
  function followDelivery(job: Job, where: { conv: Conversation; line: Line }): void {
    const { conv, line } = where;
    const key = { channel: job.channel, userId: job.userId, msgKey: job.msgKey };
    const deadline = Date.now() + 120_000;
    const tick = (): void => {
      if (!store) return;
      void store.get(key, Date.now()).then((record) => {
        if (record && !record.pending) {
          convs.step(conv, line, `answer delivered by ${OWNER_NAMES[record.deliveryOwner ?? ''] ?? (job.channel === 'wechat' ? 'passive reply' : 'the worker')}${record.deliveredParts > 0 ? `, ${record.deliveredParts} part${record.deliveredParts === 1 ? '' : 's'} sent` : ''}${record.note.kind !== 'none' ? ` (${formatNote(record.note)})` : ''}`);
          return;
        }
        if (Date.now() < deadline) setTimeout(tick, 400);
        else convs.step(conv, line, 'answer still not delivered after 2 min (send "1" on WeChat to fetch it)');
      }).catch(() => undefined);
    };
    tick();
  }

  function observeWorker(handler: SqsBatchHandler): SqsBatchHandler {
    return async (event, context) => {
      const runs: { job: Job; where: { conv: Conversation; line: Line }; watcher: { stop(): void; streamed(): boolean } }[] = [];
      for (const record of event.Records) {
        let job: Job;
        try {
          job = parseJob(record.body);
        } catch {
          continue;
        }
        const where = locate(job);
        if (!where) continue;
        const before = store ? await store.get({ channel: job.channel, userId: job.userId, msgKey: job.msgKey }, Date.now()).catch(() => undefined) : undefined;
        const receive = record.attributes.ApproximateReceiveCount;
        convs.step(where.conv, where.line, `worker picked the job from SQS after ${seconds(Date.now() - job.arrivedAtMs)}${receive !== '1' ? ` (receive #${receive})` : ''}`);
        answering.set(where.conv, where.line);
        runs.push({ job, where, watcher: watch(job, where, before) });
      }
      try {
        return await handler(event, context);
      } finally {
        for (const run of runs) {
          run.watcher.stop();
          if (answering.get(run.where.conv) === run.where.line) answering.delete(run.where.conv);
          const after = store ? await store.get({ channel: run.job.channel, userId: run.job.userId, msgKey: run.job.msgKey }, Date.now()).catch(() => undefined) : undefined;
          if (run.watcher.streamed() || after?.status === 'streaming') llmCalls.set(run.where.line, (llmCalls.get(run.where.line) ?? 0) + 1);
          const calls = llmCalls.get(run.where.line) ?? 0;
          convs.step(
            run.where.conv,
            run.where.line,
            `worker done after ${seconds(Date.now() - run.job.arrivedAtMs)}: answer ${after?.status ?? 'unknown'}, ${after ? Array.from(after.answer).length : 0} chars; LLM calls: ${calls}`,
          );
          followDelivery(run.job, run.where);
        }
      }
    };
  }

  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://simulator.local');
    readBody(req)
      .then(async (body) => {
        if (standIns?.handle(req, res, url, body)) return;
        if (url.pathname.startsWith('/api/')) return await api(req, res, url, body);
        const asset = req.method === 'GET' ? STATIC_FILES[url.pathname] : undefined;
        if (asset) {
          res.writeHead(200, { 'content-type': asset.type, 'cache-control': 'no-store' });
          res.end(readFileSync(join(PUBLIC_DIR, asset.file)));
          return;
        }
        json(res, 404, { error: 'not found' });
      })
      .catch((err: unknown) => {
        if (res.headersSent) return;
        if (err instanceof BodyTooLargeError) json(res, 413, { error: err.message });
        else json(res, 500, { error: err instanceof Error ? err.message : String(err) });
      });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('the simulator did not get a port');
  const clientHost = opts.host === '0.0.0.0' || opts.host === '::' ? '127.0.0.1' : opts.host;

  const simulatorUrl = `http://${clientHost}:${address.port}`;
  return {
    url: simulatorUrl,
    configure(c) {
      ctx = c;
      const { cfg } = c;
      store = new MessageStore(createDocumentClient(cfg.aws), cfg.aws.tableName);
      vendors = new Vendors(
        {
          simulatorUrl: simulatorUrl,
          gatewayUrl: c.gatewayUrl,
          wechat: cfg.wechat && { token: cfg.wechat.token, appId: cfg.wechat.appId, encodingAesKey: cfg.wechat.encodingAesKey, accountId: 'gh_simulator' },
          whatsapp: cfg.whatsapp && { appSecret: cfg.whatsapp.appSecret, phoneNumberId: cfg.whatsapp.phoneNumberId },
          twilio: cfg.twilio && { accountSid: cfg.twilio.accountSid, authToken: cfg.twilio.authToken, number: cfg.twilio.from || '+15550001000', publicBaseUrl: cfg.publicBaseUrl, apiBase: cfg.twilio.apiBase },
          wechatLimitMs: c.wechatLimitMs ?? 5000,
          wechatDeliveries: cfg.wechat?.deliveries ?? 3,
        },
        convs,
      );
      standIns = new StandIns(
        simulatorUrl,
        {
          wechat: c.simulated.wechat && cfg.wechat ? { appId: cfg.wechat.appId, appSecret: cfg.wechat.appSecret } : undefined,
          whatsapp: c.simulated.whatsapp && cfg.whatsapp ? { accessToken: cfg.whatsapp.accessToken, phoneNumberId: cfg.whatsapp.phoneNumberId } : undefined,
          twilio: c.simulated.twilio && cfg.twilio ? { accountSid: cfg.twilio.accountSid, authToken: cfg.twilio.authToken } : undefined,
        },
        convs,
        lineOf,
        (conv) => answering.get(conv),
      );
    },
    observeWorker,
    async stop() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
