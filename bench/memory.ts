/**
 * `npm run bench -- memory`: the worker's peak memory with the largest media it accepts, measured
 * as Lambda would run it, against the worker's `memorySize` in serverless.yml.
 *
 * The worker is bundled as serverless-esbuild bundles it and loaded in a fresh child process per
 * job (a cold environment, as after a deploy), with V8's heap limits set as the Lambda Node.js
 * runtime sets them for the function's memory (`--max-old-space-size` 90 % of it). Each child runs
 * one SQS batch through the bundle's `handler`: a job that a real webhook handler claimed and
 * enqueued (embedded DynamoDB and SQS), whose media comes from the fake Graph / Twilio servers
 * and goes to a fake OpenAI-compatible server, all over HTTP on 127.0.0.1. The child samples
 * `process.memoryUsage().rss` every 2 ms and reports the kernel's high-water mark of its resident
 * memory (`VmHWM`, loading included; not `resourceUsage().maxRSS`, which Linux seeds with the
 * parent's peak in a forked child); the larger is the figure.
 *
 * A case passes when its peak stays under the memory size less a 15 % margin (Lambda ends an
 * invocation that goes over the size), and counts only when the fake LLM received every byte of
 * the media and the answer reached the user. Options:
 *   --memory <MB>   the size to check against (default: the worker's memorySize in serverless.yml)
 *   --root <dir>    bundle the worker from another checkout (e.g. an older commit) for comparison
 *   --node <path>   the Node binary of the child (Lambda runs Node 24; default: this one)
 *   --only <text>   run only the jobs whose name contains this
 *   --runs <n>      children per job (default 3); the table shows the highest peak and the median
 * Peaks vary from run to run by tens of MB: they depend on when V8 collects the network
 * buffers a download leaves behind, which depends on timing.
 * Not a test: figures depend on the Node version and the machine. Record them in serverless.yml.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { build } from 'esbuild';
import { createTwilioMessagingHandler } from '../functions/twilio-messaging';
import { createWhatsAppHandler } from '../functions/whatsapp';
import { silentLog } from '../lib/types';
import { startFakeGraph, type FakeGraph } from '../local/fakes/fake-graph';
import { startFakeTwilio, type FakeTwilio } from '../local/fakes/fake-twilio';
import { MetaClient } from '../local/fakes/meta-client';
import { startGateway, type Gateway } from '../local/gateway';
import { metaJson, sampleWamid, webhookEnvelope } from '../local/samples/whatsapp';
import { toLambdaRecord } from '../local/sqs-event-source';
import { MAX_AUDIO_BYTES, MAX_IMAGE_BYTES } from '../lib/channels/media-limits';
import { startMediaLlm, type MediaLlm } from './media-llm';

const root = join(__dirname, '..');
const MiB = 1024 * 1024;
/** The largest media the WhatsApp and Twilio adapters accept, by kind (lib/channels/media-limits.ts). */
const MAX_VOICE = MAX_AUDIO_BYTES;
const MAX_IMAGE = MAX_IMAGE_BYTES;
/** Headroom left under the memory size for what a benchmark cannot see (runtime client, GC timing). */
const SAFETY = 0.15;
/**
 * V8's heap limits as the Lambda Node.js runtime's bootstrap sets them for the function's
 * memory: a tenth for the new space (two semi-spaces), the rest for the old space, so
 * `--max-old-space-size` is 90 % of the memory.
 */
function lambdaNodeFlags(memoryMb: number): string[] {
  const newSpace = Math.floor(memoryMb / 10);
  return ['--expose-gc', `--max-semi-space-size=${Math.floor(newSpace / 2)}`, `--max-old-space-size=${memoryMb - newSpace}`];
}

const APP_SECRET = 'memory-bench-app-secret';
const ACCESS_TOKEN = 'EAAG-memory-bench';
const PNID = '106540352242922';
const ACCOUNT_SID = `AC${'0123456789abcdef'.repeat(2)}`;
const AUTH_TOKEN = 'memory-bench-twilio-token';
const PUBLIC_BASE_URL = 'https://gateway.example.com';
const OUR_NUMBER = '+15005550006';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

/** The worker's `memorySize` in serverless.yml. */
function workerMemory(): number {
  const yml = readFileSync(join(root, 'serverless.yml'), 'utf8');
  const block = /\n {2}worker:\n((?: {4,}.*\n|\s*\n)*)/.exec(yml)?.[1] ?? '';
  const mb = /^ {4}memorySize: (\d+)/m.exec(block)?.[1];
  if (mb === undefined) throw new Error('no memorySize for the worker in serverless.yml');
  return Number(mb);
}

/** Media bytes: the format's magic, then random bytes (incompressible, as real media). */
function media(magic: number[], size: number): Buffer {
  const bytes = randomBytes(size);
  Buffer.from(magic).copy(bytes);
  return bytes;
}

const OGG = [0x4f, 0x67, 0x67, 0x53, 0x00, 0x02];
const JPEG = [0xff, 0xd8, 0xff, 0xe0];

/** One measured job. */
interface Case {
  name: string;
  kind: 'voice' | 'image' | 'text';
  bytes: number;
  /** Transcription uploads to fail with a 503 first. */
  failUploads?: number;
  /** Puts the job on the queue through the channel's webhook; returns how to tell it was answered. */
  send(): Promise<() => boolean>;
}

/** A row of the result table. */
interface Row {
  name: string;
  loadMs: number;
  loadedMb: number;
  peakMb: number;
  /** Median peak over the runs (the highest is {@link peakMb}). */
  medianMb: number;
  heapMb: number;
  ms: number;
  check: string;
}

interface ChildReady {
  type: 'ready';
  loadMs: number;
  rss: number;
}
interface ChildDone {
  type: 'done';
  ms: number;
  response: SQSBatchResponse;
  peakRss: number;
  maxRss: number;
  heapUsed: number;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isReady(value: unknown): value is ChildReady {
  return isRecord(value) && value.type === 'ready' && typeof value.loadMs === 'number' && typeof value.rss === 'number';
}

function isDone(value: unknown): value is ChildDone {
  return isRecord(value) && value.type === 'done' && typeof value.peakRss === 'number' && typeof value.maxRss === 'number' && isRecord(value.response);
}

/** The next message from the child (or its failure / exit). */
function nextMessage(child: ChildProcess, timeoutMs: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => finish(() => reject(new Error(`the child sent nothing for ${timeoutMs} ms`))), timeoutMs);
    const onMessage = (message: unknown): void => finish(() => resolve(message));
    const onExit = (code: number | null, signal: string | null): void => finish(() => reject(new Error(`the child exited (code ${String(code)}, signal ${String(signal)}): out of memory?`)));
    function finish(then: () => void): void {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
      then();
    }
    child.on('message', onMessage);
    child.on('exit', onExit);
  });
}

async function bundle(sourceRoot: string, out: string): Promise<{ worker: string; child: string }> {
  const worker = join(out, 'worker.js');
  const child = join(out, 'child.js');
  // As serverless.yml's esbuild settings: bundled, minified, node24, no source map.
  await build({ entryPoints: [join(sourceRoot, 'functions', 'worker.ts')], bundle: true, minify: true, platform: 'node', target: 'node24', outfile: worker, logLevel: 'error' });
  await build({ entryPoints: [join(root, 'bench', 'memory-child.ts')], bundle: true, minify: true, platform: 'node', target: 'node24', outfile: child, logLevel: 'error' });
  return { worker, child };
}

/** Polls the job queue until the webhook's job is there, as Lambda's event source would. */
async function nextBatch(gw: Gateway): Promise<SQSEvent> {
  for (let i = 0; i < 100; i++) {
    const messages = await gw.stack.receiveAll(gw.stack.queueUrl);
    if (messages.length > 0) return { Records: messages.map((m) => toLambdaRecord(m, gw.stack.queueArn, gw.stack.region)) };
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('no job reached the queue');
}

/** Runs one case in a fresh child with the old space of `memoryMb`. */
async function measure(c: Case, opts: { gw: Gateway; llm: MediaLlm; env: Record<string, string>; files: { worker: string; child: string }; memoryMb: number; node: string }): Promise<Row> {
  opts.llm.log.uploads.length = 0;
  opts.llm.log.images.length = 0;
  opts.llm.failUploads(c.failUploads ?? 0);
  const child = fork(opts.files.child, [opts.files.worker], {
    execPath: opts.node,
    execArgv: lambdaNodeFlags(opts.memoryMb),
    env: { PATH: process.env.PATH ?? '', ...opts.env, AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(opts.memoryMb) },
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  try {
    const ready = await nextMessage(child, 30_000);
    if (!isReady(ready)) throw new Error(`unexpected message from the child: ${JSON.stringify(ready)}`);
    // Whatever an earlier job left on the queue (a follow-up the worker enqueued) is not this job's.
    const leftovers = await opts.gw.stack.receiveAll(opts.gw.stack.queueUrl);
    const answered = await c.send();
    const event = await nextBatch(opts.gw);
    child.send({ event, timeoutMs: 300_000, memoryMb: opts.memoryMb });
    const done = await nextMessage(child, 120_000);
    if (!isDone(done)) throw new Error(`the worker failed: ${JSON.stringify(done)}`);
    const failures = done.response.batchItemFailures.length;
    const got = c.kind === 'voice' ? opts.llm.log.uploads : c.kind === 'image' ? opts.llm.log.images : [];
    // A multipart upload is the file plus a few hundred bytes of framing; an image arrives decoded.
    const whole = c.kind === 'text' || (got.length > 0 && got.every((n) => n >= c.bytes && n < c.bytes + 4096));
    const attempts = c.kind === 'voice' ? `, ${got.length} upload${got.length === 1 ? '' : 's'}` : '';
    const extra = leftovers.length > 0 ? `, ${leftovers.length} leftover message${leftovers.length === 1 ? '' : 's'} dropped` : '';
    const batch = event.Records.length === 1 ? '' : `, batch of ${event.Records.length}`;
    const check = failures > 0 ? 'FAILED: batch item failure' : !whole ? `INCOMPLETE: LLM got ${JSON.stringify(got)} bytes` : !answered() ? 'FAILED: no answer delivered' : `ok${attempts}${batch}${extra}`;
    return {
      name: c.name,
      loadMs: ready.loadMs,
      loadedMb: ready.rss / MiB,
      peakMb: Math.max(done.peakRss, done.maxRss) / MiB,
      medianMb: Math.max(done.peakRss, done.maxRss) / MiB,
      heapMb: done.heapUsed / MiB,
      ms: done.ms,
      check,
    };
  } finally {
    child.kill();
  }
}

/** One row for several runs of a case: the worst peak, the median peak, the first failed check. */
function summarise(results: readonly Row[]): Row {
  const peaks = results.map((r) => r.peakMb).sort((a, b) => a - b);
  const worst = results.reduce((a, b) => (b.peakMb > a.peakMb || Number.isNaN(b.peakMb) ? b : a));
  const failed = results.find((r) => !r.check.startsWith('ok'));
  const median = (values: number[]): number => values[Math.floor(values.length / 2)] ?? Number.NaN;
  return {
    ...worst,
    loadMs: median(results.map((r) => r.loadMs).sort((a, b) => a - b)),
    medianMb: median(peaks),
    check: failed?.check ?? worst.check,
  };
}

function whatsappCases(graph: FakeGraph, meta: MetaClient): Case[] {
  let n = 0;
  const user = (): string => `1555030${String(++n).padStart(4, '0')}`;
  const post = async (from: string, message: Record<string, unknown>): Promise<() => boolean> => {
    const body = metaJson(webhookEnvelope(PNID, { contacts: [{ profile: { name: 'Bench' }, wa_id: from }], messages: [{ from, id: sampleWamid(), timestamp: String(Math.floor(Date.now() / 1000)), ...message }] }));
    const res = await meta.post(body);
    if (res.status !== 200) throw new Error(`webhook answered ${res.status}: ${res.text}`);
    return () => graph.sentTo(from).some((m) => m.accepted);
  };
  const voice = (name: string, bytes: number, failUploads: number): Case => ({
    name,
    kind: 'voice',
    bytes,
    failUploads,
    send: () => {
      const id = `voice-${n}-${bytes}-${failUploads}`;
      graph.addMedia(id, media(OGG, bytes), 'audio/ogg; codecs=opus');
      return post(user(), { type: 'audio', audio: { id, mime_type: 'audio/ogg; codecs=opus', voice: true } });
    },
  });
  const image = (name: string, bytes: number): Case => ({
    name,
    kind: 'image',
    bytes,
    send: () => {
      const id = `image-${n}-${bytes}`;
      graph.addMedia(id, media(JPEG, bytes), 'image/jpeg');
      return post(user(), { type: 'image', image: { id, mime_type: 'image/jpeg', caption: 'What is this?' } });
    },
  });
  return [
    { name: 'whatsapp text (no media)', kind: 'text', bytes: 0, send: () => post(user(), { type: 'text', text: { body: 'Hello' } }) },
    // The largest media Meta lets a user send, and the adapters accept: audio 16 MB, images 5 MB
    // (https://developers.facebook.com/docs/whatsapp/cloud-api/reference/media#supported-media-types).
    voice('whatsapp voice 16 MiB', MAX_VOICE, 0),
    voice('whatsapp voice 16 MiB, first upload 503', MAX_VOICE, 1),
    image('whatsapp image 5 MiB', MAX_IMAGE),
  ];
}

function twilioCases(twilio: FakeTwilio): Case[] {
  let n = 0;
  // A new number per job, so no job finds an earlier one's conversation.
  const number = (): string => `+1555124${String(++n).padStart(4, '0')}`;
  const send = async (from: string, bytes: Buffer, contentType: string): Promise<() => boolean> => {
    const url = twilio.addMedia(bytes, contentType);
    const res = await twilio.sendMessage({ from, to: OUR_NUMBER, body: '', media: [{ url, contentType }] });
    if (res.status !== 200) throw new Error(`webhook answered ${res.status}: ${res.body}`);
    return () => twilio.delivered(from).length > 0;
  };
  return [
    { name: 'twilio voice 16 MiB', kind: 'voice', bytes: MAX_VOICE, send: () => send(number(), media(OGG, MAX_VOICE), 'audio/ogg') },
    { name: 'twilio image 5 MiB', kind: 'image', bytes: MAX_IMAGE, send: () => send(number(), media(JPEG, MAX_IMAGE), 'image/jpeg') },
  ];
}

/** Runs the benchmark and prints the table; exit code 1 when a case fails. */
export async function memoryBench(): Promise<void> {
  const memoryMb = Number(arg('memory') ?? workerMemory());
  const sourceRoot = arg('root') ?? root;
  const node = arg('node') ?? process.execPath;
  const limitMb = memoryMb * (1 - SAFETY);
  const files = await bundle(sourceRoot, mkdtempSync(join(tmpdir(), 'bench-memory-')));
  const llm = await startMediaLlm();
  const graph = await startFakeGraph({ accessToken: ACCESS_TOKEN });
  const twilio = await startFakeTwilio({ accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN, publicBaseUrl: PUBLIC_BASE_URL });
  const env: Record<string, string> = {
    OPENAI_API_KEY: 'sk-bench',
    OPENAI_BASE_URL: llm.baseUrl,
    OPENAI_VISION: '1',
    OPENAI_TRANSCRIPTION_MODEL: 'gpt-4o-mini-transcribe',
    OPENAI_MAX_RETRIES: '2',
    WHATSAPP_VERIFY_TOKEN: 'vt',
    WHATSAPP_APP_SECRET: APP_SECRET,
    WHATSAPP_ACCESS_TOKEN: ACCESS_TOKEN,
    WHATSAPP_PHONE_NUMBER_ID: PNID,
    WHATSAPP_GRAPH_BASE: graph.baseUrl,
    WHATSAPP_PAIR_INTERVAL_MS: '0',
    TWILIO_ACCOUNT_SID: ACCOUNT_SID,
    TWILIO_AUTH_TOKEN: AUTH_TOKEN,
    TWILIO_FROM: OUR_NUMBER,
    TWILIO_API_BASE: twilio.apiBase,
    PUBLIC_BASE_URL,
    LOG_LEVEL: 'ERROR',
  };
  const gw = await startGateway({
    env,
    startWorker: false,
    deadLetterFunction: false,
    routes: (cfg) => ({
      '/whatsapp': createWhatsAppHandler(cfg, { log: silentLog }),
      '/twilio/messaging': createTwilioMessagingHandler(cfg, { log: silentLog }),
    }),
  });
  twilio.gatewayUrl = gw.http.url;
  const rows: Row[] = [];
  const runs = Number(arg('runs') ?? '3');
  try {
    const childEnv = { ...gw.stack.env, ...env, AWS_SDK_JS_SUPPRESS_MAINTENANCE_MODE_MESSAGE: '1' };
    const only = arg('only');
    const cases = [...whatsappCases(graph, new MetaClient(`${gw.http.url}/whatsapp`, APP_SECRET)), ...twilioCases(twilio)].filter((c) => only === undefined || c.name.includes(only));
    for (const c of cases) {
      const results: Row[] = [];
      for (let run = 0; run < runs; run++) {
        try {
          results.push(await measure(c, { gw, llm, env: childEnv, files, memoryMb, node }));
        } catch (err) {
          results.push({ name: c.name, loadMs: Number.NaN, loadedMb: Number.NaN, peakMb: Number.NaN, medianMb: Number.NaN, heapMb: Number.NaN, ms: Number.NaN, check: `FAILED: ${err instanceof Error ? err.message : String(err)}` });
        }
      }
      rows.push(summarise(results));
    }
  } finally {
    await gw.stop();
    await twilio.close();
    await graph.close();
    await llm.close();
  }
  const nodeVersion = node === process.execPath ? process.version : node;
  console.log(`\n## Worker peak memory per job (bundle of ${sourceRoot === root ? 'this checkout' : sourceRoot}; ${runs} runs per job; child ${nodeVersion} ${lambdaNodeFlags(memoryMb).join(' ')}; limit ${memoryMb} MB − ${SAFETY * 100} % = ${limitMb.toFixed(0)} MB)\n`);
  const header = ['job', 'cold load ms', 'RSS loaded MB', 'peak RSS MB (max)', 'peak RSS MB (median)', 'heap after MB', 'job ms', 'checks', 'result'];
  const table = rows.map((r) => [r.name, r.loadMs.toFixed(0), r.loadedMb.toFixed(1), r.peakMb.toFixed(1), r.medianMb.toFixed(1), r.heapMb.toFixed(1), r.ms.toFixed(0), r.check, r.check.startsWith('ok') && r.peakMb <= limitMb ? 'PASS' : 'FAIL']);
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  console.log(line(header));
  console.log(`| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`);
  for (const r of table) console.log(line(r));
  if (table.some((r) => r[8] !== 'PASS')) process.exitCode = 1;
}

if (require.main === module) {
  memoryBench().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
