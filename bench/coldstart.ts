/**
 * `npm run bench -- coldstart`: the cold first response of each ingress function and of the
 * worker at the CPU share of each candidate Lambda memory size.
 *
 * Each function is bundled as deployment does (esbuild: bundle, minify, platform node,
 * target node24, as serverless.yml's `custom.esbuild`) and run in a fresh Node 24 process
 * (the Lambda runtime, nodejs24.x), configured as a deployed stage: `SSM_SECRETS_PATH` set,
 * so its first invocation reads its secrets through Powertools Parameters from SSM (a fake
 * over HTTP here), then talks to DynamoDB and SQS (dynalite and fauxqs in their own process).
 * The child requires the bundle and calls its `handler` export (what the Lambda runtime
 * calls) with one realistic signed request; we time from spawning the process to its
 * response. While it runs, the child is duty-cycled with SIGSTOP/SIGCONT to the CPU share of
 * the memory size (bench/duty-cycle.ts) and pinned to one core; the stand-ins, fakes and
 * this process run unthrottled, as AWS's services would.
 *
 * Not emulated: Lambda's own init (runtime bootstrap, fetching the zip), Graviton's speed,
 * the network latency to SSM, DynamoDB and SQS (here loopback). Not a test: figures depend
 * on the machine and its load.
 */
import { SQSClient, ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import type { APIGatewayProxyEventV2, SQSEvent } from 'aws-lambda';
import { build } from 'esbuild';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { createWhatsAppHandler } from '../functions/whatsapp';
import { loadConfig } from '../lib/config';
import { silentLog } from '../lib/types';
import { spawnEmulators } from '../local/emulator-process';
import { startFakeGraph, type FakeGraph } from '../local/fakes/fake-graph';
import { isRecord } from '../local/fakes/fake-http';
import { startFakeSsm, type FakeSsm } from '../local/fakes/fake-ssm';
import { startFakeTwilio, type FakeTwilio } from '../local/fakes/fake-twilio';
import { nextMsgId, textMessageXml, WeChatPlatform } from '../local/fakes/wechat-platform';
import { toEvent } from '../local/lambda-http';
import { awsClientConfig, createResources, LOCAL_CREDENTIALS, type LocalResources } from '../local/resources';
import { sampleTextWebhook, signedWebhookEvent } from '../local/samples/whatsapp';
import { toLambdaRecord } from '../local/sqs-event-source';
import { cpuShare, throttle } from './duty-cycle';
import { startLatencyLlm, type LatencyLlm } from './latency-llm';
import { pct } from './stats';

const root = join(__dirname, '..');

/** Candidate memory sizes (MB), and 1,769 MB (one full vCPU, no throttling) for reference. */
export const COLD_START_MEMORIES = [128, 192, 256, 320, 512, 1769] as const;

/** The functions measured, by their file under functions/. */
const FUNCTIONS = ['worker', 'wechat', 'whatsapp', 'twilio-messaging', 'twilio-voice'] as const;
type Fn = (typeof FUNCTIONS)[number];

/** WeChat waits 5 s for a delivery (https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Passive_user_reply_message.html); the bench wants half of it at most. */
const WECHAT_BUDGET_MS = 2500;
const RUNS = 3;
const PERIOD_MS = 100;

const SSM_PATH = '/llm-gateway/bench';
const REGION = 'us-east-1';
const SECRETS = {
  WECHAT_TOKEN: 'benchtoken',
  WECHAT_ENCODING_AES_KEY: 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG',
  WECHAT_APP_SECRET: 'bench-app-secret',
  WHATSAPP_VERIFY_TOKEN: 'bench-verify',
  WHATSAPP_APP_SECRET: 'bench-meta-secret',
  WHATSAPP_ACCESS_TOKEN: 'test-access-token',
  TWILIO_AUTH_TOKEN: 'bench-twilio-token',
  OPENAI_API_KEY: 'sk-bench',
} as const;
const WECHAT_APP_ID = 'wxbench0000000001';
const PHONE_NUMBER_ID = '106540352242922';
const TWILIO_SID = 'AC00000000000000000000000000000000';
const PUBLIC_BASE_URL = 'https://bench.execute-api.us-east-1.amazonaws.com';

/** What the child process reports on fd 3. */
interface ChildReport {
  ok: boolean;
  requireMs?: number;
  handlerMs?: number;
  /** CPU time (user + system, all threads) the process used up to its response. */
  cpuMs?: number;
  status?: number;
  failures?: number;
  error?: string;
}

function parseReport(line: string): ChildReport {
  const raw: unknown = JSON.parse(line);
  if (!isRecord(raw)) throw new Error(`bad report: ${line}`);
  const num = (name: string): number | undefined => (typeof raw[name] === 'number' ? raw[name] : undefined);
  const error = raw.error;
  return {
    ok: raw.ok === true,
    requireMs: num('requireMs'),
    handlerMs: num('handlerMs'),
    cpuMs: num('cpuMs'),
    status: num('status'),
    failures: num('failures'),
    ...(typeof error === 'string' ? { error } : {}),
  };
}

/** One cold start. */
interface Sample {
  requireMs: number;
  /** CPU time the process used (all threads), whatever the throttle. */
  cpuMs: number;
  /** From spawning the process to the handler's response, measured here. */
  firstResponseMs: number;
  /** CPU time granted by the throttle over that span, as a share of one vCPU. */
  grantedShare: number;
}

/**
 * The child: requires the bundle, calls `handler` once with the event, writes one JSON line
 * on fd 3 (stdout carries the function's own logs, as in Lambda) and exits.
 */
const CHILD = `
const t0 = performance.now();
const fs = require('node:fs');
const input = JSON.parse(fs.readFileSync(process.env.COLDSTART_INPUT, 'utf8'));
const mod = require(input.bundle);
const t1 = performance.now();
const context = input.context && { ...input.context, getRemainingTimeInMillis: () => input.deadlineMs - Date.now() };
const cpuMs = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
const report = (r, code) => { fs.writeSync(3, JSON.stringify({ ...r, cpuMs: cpuMs() }) + '\\n'); process.exit(code); };
Promise.resolve(mod.handler(input.event, context)).then(
  (res) => report({ ok: true, requireMs: t1 - t0, handlerMs: performance.now() - t1, status: res && res.statusCode, failures: res && res.batchItemFailures ? res.batchItemFailures.length : undefined }, 0),
  (err) => report({ ok: false, error: String((err && err.stack) || err) }, 1),
);
`;

/** The Node 24 binary (the npm registry serves Node as the package `node`), resolved once. */
function node24(): string {
  return execFileSync('npx', ['-y', 'node@24', '-p', 'process.execPath'], { encoding: 'utf8' }).trim();
}

async function bundle(out: string, fn: Fn): Promise<string> {
  const outfile = join(out, `${fn}.js`);
  await build({ entryPoints: [join(root, 'functions', `${fn}.ts`)], bundle: true, minify: true, platform: 'node', target: 'node24', outfile, logLevel: 'silent' });
  return outfile;
}

/** The environment of a deployed function (serverless.yml's groups), pointed at the stand-ins. */
function functionEnv(fn: Fn, res: LocalResources, endpoints: { dynamo: string; sqs: string; ssm: string; graph: string; llm: string; twilio: string }): Record<string, string> {
  const base: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    NODE_OPTIONS: '--enable-source-maps',
    LOG_LEVEL: 'INFO',
    SSM_SECRETS_PATH: SSM_PATH,
    SSM_ENDPOINT: endpoints.ssm,
    AWS_REGION: REGION,
    AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
    AWS_SDK_JS_SUPPRESS_MAINTENANCE_MODE_MESSAGE: '1',
    DYNAMODB_ENDPOINT: endpoints.dynamo,
    SQS_ENDPOINT: endpoints.sqs,
    TABLE_NAME: res.tableName,
    QUEUE_URL: res.queueUrl,
  };
  const wechat = { WECHAT_APP_ID, WECHAT_REPLY_MODE: 'customer_service', WECHAT_CS_PASSIVE_WAIT_MS: '0' };
  const whatsapp = { WHATSAPP_PHONE_NUMBER_ID: PHONE_NUMBER_ID, WHATSAPP_GRAPH_BASE: endpoints.graph };
  const twilio = { TWILIO_ACCOUNT_SID: TWILIO_SID, TWILIO_FROM: '+15005550006', TWILIO_API_BASE: endpoints.twilio, PUBLIC_BASE_URL };
  switch (fn) {
    case 'wechat':
      return { ...base, ...wechat };
    case 'whatsapp':
      return { ...base, ...whatsapp };
    case 'twilio-messaging':
    case 'twilio-voice':
      return { ...base, ...twilio };
    case 'worker':
      return { ...base, ...wechat, ...whatsapp, ...twilio, OPENAI_BASE_URL: endpoints.llm, OPENAI_MAX_RETRIES: '0' };
  }
}

/** An API Gateway event for a signed Twilio form post to `path`. */
function twilioEvent(twilio: FakeTwilio, path: string, params: Record<string, string>): APIGatewayProxyEventV2 {
  const headers = {
    'content-type': 'application/x-www-form-urlencoded; charset=utf-8',
    'user-agent': 'TwilioProxy/1.1',
    'x-twilio-signature': twilio.sign(`${PUBLIC_BASE_URL}${path}`, params),
  };
  return toEvent('POST', path, headers, Buffer.from(new URLSearchParams(params).toString()));
}

/** The request of one run: as the vendor posts it (ingress), or an SQS batch of one fresh job (worker). */
async function firstRequest(fn: Fn, n: number, deps: { twilio: FakeTwilio; makeJob: (n: number) => Promise<SQSEvent> }): Promise<unknown> {
  const user = `cold-${Date.now()}-${n}`;
  switch (fn) {
    case 'wechat': {
      const platform = new WeChatPlatform({ url: 'unused', token: SECRETS.WECHAT_TOKEN, windowMs: 5000, aes: { encodingAesKey: SECRETS.WECHAT_ENCODING_AES_KEY, appId: WECHAT_APP_ID } });
      const signed = platform.signedQuery(textMessageXml({ from: `o-${user}`, to: 'gh_10f6c3c3ac5a', content: 'hello', msgId: nextMsgId() }));
      return toEvent('POST', `/wechat?${signed.query}`, { 'content-type': 'text/xml', 'user-agent': 'Mozilla/4.0' }, Buffer.from(signed.body));
    }
    case 'whatsapp':
      return signedWebhookEvent(SECRETS.WHATSAPP_APP_SECRET, sampleTextWebhook({ phoneNumberId: PHONE_NUMBER_ID, from: `1650555${String(n).padStart(4, '0')}`, text: 'hello' }));
    case 'twilio-messaging':
      return twilioEvent(deps.twilio, '/twilio/messaging', deps.twilio.messageParams({ from: `+1650555${String(n).padStart(4, '0')}`, to: '+15005550006', body: 'hello' }));
    case 'twilio-voice':
      return twilioEvent(deps.twilio, '/twilio/voice', {
        AccountSid: TWILIO_SID,
        ApiVersion: '2010-04-01',
        CallSid: `CA${String(n).padStart(32, '0')}`,
        CallStatus: 'ringing',
        Called: '+15005550006',
        Caller: `+1650555${String(n).padStart(4, '0')}`,
        Direction: 'inbound',
        From: `+1650555${String(n).padStart(4, '0')}`,
        To: '+15005550006',
      });
    case 'worker':
      return deps.makeJob(n);
  }
}

/** Spawns one cold process at `memoryMb`'s CPU share and waits for its report. */
async function coldRun(nodeBin: string, bundlePath: string, env: Record<string, string>, event: unknown, memoryMb: number, cpu: string | undefined, out: string): Promise<Sample> {
  const input = join(out, `input-${process.hrtime.bigint()}.json`);
  const isWorker = bundlePath.endsWith('worker.js');
  const deadlineMs = Date.now() + 300_000;
  writeFileSync(
    input,
    JSON.stringify({
      bundle: bundlePath,
      event,
      deadlineMs,
      ...(isWorker ? { context: { functionName: 'worker', functionVersion: '$LATEST', memoryLimitInMB: String(memoryMb), awsRequestId: `req-${deadlineMs}` } } : {}),
    }),
  );
  const command = cpu === undefined ? nodeBin : 'taskset';
  const args = cpu === undefined ? ['-e', CHILD] : ['-c', cpu, nodeBin, '-e', CHILD];
  const started = performance.now();
  const child = spawn(command, args, { env: { ...env, COLDSTART_INPUT: input }, stdio: ['ignore', 'pipe', 'pipe', 'pipe'] });
  const pid = child.pid;
  if (pid === undefined) throw new Error('child has no pid');
  const limiter = throttle(pid, memoryMb, PERIOD_MS);
  let stderr = '';
  child.stdout?.resume();
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const channel = child.stdio[3];
  if (!(channel instanceof Readable)) throw new Error('no fd 3');
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: channel }).once('line', resolve);
    child.once('exit', (code) => setTimeout(() => reject(new Error(`child exited ${code ?? '?'} without a report: ${stderr.slice(-2000)}`)), 100));
  });
  const firstResponseMs = performance.now() - started;
  const granted = limiter.granted();
  limiter.stop();
  await new Promise<void>((resolve) => (child.exitCode === null ? child.once('exit', () => resolve()) : resolve()));
  const report = parseReport(line);
  if (!report.ok) throw new Error(`cold run failed: ${report.error ?? '?'}`);
  if (report.status !== undefined && report.status !== 200) throw new Error(`first response ${report.status}: ${stderr.slice(-2000)}`);
  if (report.failures !== undefined && report.failures > 0) throw new Error('the worker reported a failed record');
  return { requireMs: report.requireMs ?? NaN, cpuMs: report.cpuMs ?? NaN, firstResponseMs, grantedShare: granted.runMs / granted.elapsedMs };
}

/** A job made by the WhatsApp ingress (in this process), received from the worker's queue as Lambda's event source would hand it over. */
function jobMaker(res: LocalResources, endpoints: { dynamo: string; sqs: string }): { makeJob: (n: number) => Promise<SQSEvent>; close: () => void } {
  const cfg = loadConfig({
    TABLE_NAME: res.tableName,
    QUEUE_URL: res.queueUrl,
    DYNAMODB_ENDPOINT: endpoints.dynamo,
    SQS_ENDPOINT: endpoints.sqs,
    AWS_REGION: REGION,
    WHATSAPP_PHONE_NUMBER_ID: PHONE_NUMBER_ID,
    WHATSAPP_VERIFY_TOKEN: SECRETS.WHATSAPP_VERIFY_TOKEN,
    WHATSAPP_APP_SECRET: SECRETS.WHATSAPP_APP_SECRET,
    WHATSAPP_ACCESS_TOKEN: SECRETS.WHATSAPP_ACCESS_TOKEN,
  }, { usesLlm: false });
  const ingress = createWhatsAppHandler(cfg, { log: silentLog });
  const sqs = new SQSClient(awsClientConfig(endpoints.sqs, REGION));
  return {
    makeJob: async (n) => {
      const from = `4420700${String(n).padStart(5, '0')}`;
      const ack = await ingress(signedWebhookEvent(SECRETS.WHATSAPP_APP_SECRET, sampleTextWebhook({ phoneNumberId: PHONE_NUMBER_ID, from, text: `question cold-${n}` })));
      if (ack.statusCode !== 200) throw new Error(`ingress answered ${ack.statusCode ?? '?'}`);
      const got = await sqs.send(new ReceiveMessageCommand({ QueueUrl: res.queueUrl, MaxNumberOfMessages: 1, WaitTimeSeconds: 5, VisibilityTimeout: 300, MessageAttributeNames: ['All'], MessageSystemAttributeNames: ['All'] }));
      const message = got.Messages?.[0];
      if (message === undefined) throw new Error('no job on the queue');
      return { Records: [toLambdaRecord(message, res.queueArn, REGION)] };
    },
    close: () => sqs.destroy(),
  };
}

function firstCpu(): string | undefined {
  try {
    execFileSync('taskset', ['-c', '0', 'true']);
    return '0';
  } catch {
    return undefined;
  }
}

function putSecrets(ssm: FakeSsm): void {
  for (const [name, value] of Object.entries(SECRETS)) ssm.put(`${SSM_PATH}/${name}`, value);
}

/** Prints the table and the WeChat verdict. */
export async function coldStartBench(print: (title: string, header: string[], rows: (string | number)[][]) => void, memories: readonly number[] = COLD_START_MEMORIES): Promise<void> {
  const nodeBin = node24();
  const out = mkdtempSync(join(tmpdir(), 'bench-coldstart-'));
  const bundles = new Map<Fn, string>();
  for (const fn of FUNCTIONS) bundles.set(fn, await bundle(out, fn));
  const cpu = firstCpu();
  const emulators = await spawnEmulators({ engine: 'dynalite' });
  let ssm: FakeSsm | undefined;
  let graph: FakeGraph | undefined;
  let llm: LatencyLlm | undefined;
  let twilio: FakeTwilio | undefined;
  try {
    const ingressRes = await createResources({ dynamoEndpoint: emulators.dynamoEndpoint, sqsEndpoint: emulators.sqsEndpoint, region: REGION, tableName: 'cold', queueName: 'cold-jobs.fifo', deadLetterQueueName: 'cold-dlq.fifo' });
    // The worker's jobs have a queue of their own, so each run receives exactly the job it made.
    const workerRes = await createResources({ dynamoEndpoint: emulators.dynamoEndpoint, sqsEndpoint: emulators.sqsEndpoint, region: REGION, tableName: 'cold-w', queueName: 'cold-w-jobs.fifo', deadLetterQueueName: 'cold-w-dlq.fifo' });
    ssm = await startFakeSsm(REGION);
    putSecrets(ssm);
    graph = await startFakeGraph();
    llm = await startLatencyLlm();
    twilio = await startFakeTwilio({ accountSid: TWILIO_SID, authToken: SECRETS.TWILIO_AUTH_TOKEN, publicBaseUrl: PUBLIC_BASE_URL });
    const endpoints = { dynamo: emulators.dynamoEndpoint, sqs: emulators.sqsEndpoint, ssm: ssm.url, graph: graph.baseUrl, llm: llm.baseUrl, twilio: twilio.apiBase };
    const jobs = jobMaker(workerRes, endpoints);
    // Runs go round-robin (run 1 of every function and size, then run 2, ...), so a burst of
    // load from other work on this machine spreads over the table instead of one cell.
    const samples = new Map<string, Sample[]>();
    const key = (fn: Fn, memoryMb: number): string => `${fn}@${memoryMb}`;
    let n = 0;
    try {
      for (let run = 0; run < RUNS; run++) {
        for (const fn of FUNCTIONS) {
          const env = functionEnv(fn, fn === 'worker' ? workerRes : ingressRes, endpoints);
          for (const memoryMb of memories) {
            const sentBefore = graph.sent.length;
            const ssmBefore = ssm.calls.length;
            const job = n++;
            const event = await firstRequest(fn, job, { twilio, makeJob: jobs.makeJob });
            const sample = await coldRun(nodeBin, bundles.get(fn) ?? '', env, event, memoryMb, cpu, out);
            // Each cold start must have read its secrets, and the worker must have answered its job.
            if (ssm.calls.length === ssmBefore) throw new Error(`${fn} read no secret from SSM`);
            if (fn === 'worker' && graph.sent.slice(sentBefore).map((m) => m.text).join() !== `Answer to question cold-${job}`) throw new Error('the worker did not answer its job');
            samples.set(key(fn, memoryMb), [...(samples.get(key(fn, memoryMb)) ?? []), sample]);
            console.error(`[coldstart] run ${run + 1} ${fn} ${memoryMb} MB: first response ${Math.round(sample.firstResponseMs)} ms, require ${Math.round(sample.requireMs)} ms, CPU ${Math.round(sample.cpuMs)} ms`);
          }
        }
      }
    } finally {
      jobs.close();
    }
    const median = (fn: Fn, memoryMb: number, pick: (s: Sample) => number): number => pct((samples.get(key(fn, memoryMb)) ?? []).map(pick).sort((a, b) => a - b), 50);
    const worst = (fn: Fn, memoryMb: number): number => Math.max(...(samples.get(key(fn, memoryMb)) ?? []).map((s) => s.firstResponseMs));
    const rows = FUNCTIONS.map((fn) => [fn, ...memories.map((mb) => Math.round(median(fn, mb, (s) => s.firstResponseMs)))]);
    const requireRows = FUNCTIONS.map((fn) => [
      fn,
      ...memories.map((mb) => `${Math.round(median(fn, mb, (s) => s.requireMs))} / ${Math.round(median(fn, mb, (s) => s.cpuMs))} (${(100 * median(fn, mb, (s) => s.grantedShare)).toFixed(1)} %)`),
    ]);
    const wechatMedians = new Map(memories.map((mb) => [mb, median('wechat', mb, (s) => s.firstResponseMs)]));
    const header = ['function', ...memories.map((mb) => `${mb} MB (${(100 * cpuShare(mb)).toFixed(1)} % vCPU)`)];
    print(`Cold first response, ms from process start (median of ${RUNS}; Node 24, bundle + SSM read + first request, CPU duty-cycled to the memory's share${cpu === undefined ? '' : ', one core'})`, header, rows);
    print('require() of the bundle / CPU time used up to the response (user + system, all threads), ms, medians; in brackets the share of wall time the throttle let it run', header, requireRows);
    const fits = memories.filter((mb) => (wechatMedians.get(mb) ?? Infinity) <= WECHAT_BUDGET_MS);
    const smallest = fits.length === 0 ? undefined : Math.min(...fits);
    console.log(
      smallest === undefined
        ? `\nWeChat webhook: no candidate size answers a cold first request within ${WECHAT_BUDGET_MS} ms (half of WeChat's 5 s window).`
        : `\nWeChat webhook: ${smallest} MB is the smallest size whose cold first response (median ${Math.round(wechatMedians.get(smallest) ?? NaN)} ms, worst of ${RUNS} ${Math.round(worst('wechat', smallest))} ms) stays within ${WECHAT_BUDGET_MS} ms, half of WeChat's 5 s window.`,
    );
  } finally {
    await twilio?.close();
    await llm?.close();
    await graph?.close();
    await ssm?.close();
    await emulators.stop();
  }
}
