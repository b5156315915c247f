/**
 * `npm run cost`: what a message costs, counted on the local stack.
 *
 * Drives a fixed mix of messages through the same handlers Lambda runs (the test gateway:
 * dynalite + fauxqs, fake WeChat / Meta / Twilio, a fake streaming LLM) and counts, per
 * channel:
 *  - HTTP API requests and Lambda requests: every webhook the vendors make (WhatsApp's sent /
 *    delivered / read statuses included), every worker batch; a webhook whose function has a
 *    function URL (`url:` in serverless.yml, what the README tells users to give the vendor)
 *    counts as a function URL request, which has no price of its own;
 *  - Lambda GB-seconds: each handler's wall time × the function's `memorySize` from
 *    serverless.yml (Lambda bills wall time, waiting included);
 *  - DynamoDB read and write units and SQS requests: through counting proxies in front of the
 *    emulators (bench/counting-proxy.ts), from dynalite's ConsumedCapacity plus index copies;
 *  - log bytes: what the functions' structured loggers write to stdout (CloudWatch ingests it).
 * The Lambda event source's own SQS calls (one receive and one delete per batch) are added
 * per worker invocation: they happen in AWS but outside our code.
 *
 * The LLM sends its first token after 1 s and a ~1,200-byte answer over the following
 * seconds (total 7 s for WhatsApp, SMS and voice; spread uniformly over 1-30 s for WeChat).
 * WeChat runs with time scaled by 1/SCALE (its 5 s window is 1 s here) so the run takes
 * minutes, not an hour; every interval the code counts with (polls, progress writes, holds)
 * is scaled with it, so counts do not depend on the scale, and its wall times are multiplied
 * back by SCALE. A WeChat user who saw no answer sends "1" once it is ready, as told.
 *
 * Prints a table in $ per million messages (prices: bench/prices.ts) and exits non-zero when
 * a goal is missed. Not a test: wall times depend on the machine.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { createWeChatHandler } from '../functions/wechat';
import { createTwilioMessagingHandler } from '../functions/twilio-messaging';
import { createTwilioVoiceHandler } from '../functions/twilio-voice';
import { createWhatsAppHandler } from '../functions/whatsapp';
import { sampleTextWebhook } from '../local/samples/whatsapp';
import { createLog } from '../lib/core/log';
import { startFakeGraph } from '../local/fakes/fake-graph';
import { startFakeTwilio } from '../local/fakes/fake-twilio';
import { WeChatPlatform } from '../local/fakes/wechat-platform';
import { MetaClient } from '../local/fakes/meta-client';
import { startGateway } from '../local/gateway';
import { startDynamoCountingProxy, startSqsCountingProxy, type CountingProxy, type DynamoCounts, type IndexSpec, type SqsCounts } from './counting-proxy';
import { PRICES } from './prices';

const root = join(__dirname, '..');
/**
 * WeChat's time scale (see the module comment). 1: real time. A run under 2 minutes at 1/5 scale
 * was tried, but on a loaded machine the emulators' latency no longer fits a 1 s window.
 */
const SCALE = 1;
/** Goals in $ per million messages, LLM tokens excluded (issue 13). */
const GOALS: Record<string, number> = { wechat: 60, whatsapp: 30, sms: 30 };
const ANSWER_BYTES = 1200;

/** serverless.yml's `functions:` section, function by function: name → its lines. */
function functionBlocks(yml: string): Map<string, string[]> {
  const section = yml.slice(yml.indexOf('\nfunctions:\n'));
  const end = section.slice(1).search(/\n[a-zA-Z]/);
  const body = end < 0 ? section : section.slice(0, end + 1);
  const out = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const line of body.split('\n')) {
    const fn = /^ {2}([A-Za-z][\w-]*):\s*$/.exec(line);
    if (fn?.[1]) out.set(fn[1], (current = []));
    else current?.push(line);
  }
  return out;
}

/** Each function's memorySize (MB) from serverless.yml: its own, else the provider's. */
export function memorySizes(yml: string): Record<string, number> {
  const provider = /(?:^|\n)provider:\n(?:(?: {2}.*)?\n)*? {2}memorySize: (\d+)/.exec(yml);
  const fallback = Number(provider?.[1] ?? 1024);
  const out: Record<string, number> = {};
  for (const [fn, lines] of functionBlocks(yml)) {
    const mem = lines.map((line) => /^ {4}memorySize: (\d+)/.exec(line)?.[1]).find((mb) => mb !== undefined);
    out[fn] = mem === undefined ? fallback : Number(mem);
  }
  return out;
}

/**
 * The functions with a function URL (`url:` in serverless.yml). The vendors are pointed at
 * those, and a function URL request has no price of its own (Lambda's request and duration
 * only: https://aws.amazon.com/lambda/pricing/), where an HTTP API request costs $1 per million.
 */
export function functionUrls(yml: string): Set<string> {
  const hasUrl = (lines: string[]): boolean => lines.some((line) => /^ {4}url:/.test(line) && !/^ {4}url:\s*false\s*(#.*)?$/.test(line));
  return new Set([...functionBlocks(yml)].filter(([, lines]) => hasUrl(lines)).map(([fn]) => fn));
}

/** The table's index key attributes and projections, from lib/infra/table.json. */
function tableIndexes(): IndexSpec[] {
  const table: unknown = JSON.parse(readFileSync(join(root, 'lib/infra/table.json'), 'utf8'));
  const out: IndexSpec[] = [];
  const indexes = typeof table === 'object' && table !== null && 'Properties' in table && typeof table.Properties === 'object' && table.Properties !== null && 'GlobalSecondaryIndexes' in table.Properties ? table.Properties.GlobalSecondaryIndexes : [];
  for (const index of Array.isArray(indexes) ? indexes : []) {
    const spec: unknown = index;
    if (typeof spec !== 'object' || spec === null || !('IndexName' in spec) || !('KeySchema' in spec) || !('Projection' in spec)) continue;
    const keys = Array.isArray(spec.KeySchema) ? spec.KeySchema.map((k: unknown) => (typeof k === 'object' && k !== null && 'AttributeName' in k ? String(k.AttributeName) : '')) : [];
    const projection = typeof spec.Projection === 'object' && spec.Projection !== null && 'ProjectionType' in spec.Projection && spec.Projection.ProjectionType === 'KEYS_ONLY' ? 'KEYS_ONLY' : 'ALL';
    out.push({ name: String(spec.IndexName), keys, projection });
  }
  return out;
}

/** The ~1,200-byte answer to question `n`. */
function answerFor(question: string): string {
  const filler = 'The answer goes on with more detail, as a model does. ';
  let answer = `Answer to question ${question}. `;
  while (answer.length < ANSWER_BYTES) answer += filler;
  return answer.slice(0, ANSWER_BYTES).trimEnd();
}

/** A streaming OpenAI-compatible LLM: `latency:<ms>` in the user text sets when the answer is complete; `first:<ms>` the first token. */
async function startCostLlm(): Promise<{ baseUrl: string; close: () => Promise<void> }> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const total = Number(/latency:(\d+)/.exec(body)?.[1] ?? '7000');
      const first = Math.min(total, Number(/first:(\d+)/.exec(body)?.[1] ?? '1000'));
      const question = /question (\d+)/.exec(body)?.[1] ?? '?';
      const parts = answerFor(question).match(/.{1,24}/gs) ?? [];
      const chunk = (content: string | undefined, finish: string | null): string =>
        `data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 0, model: 'm', choices: [{ index: 0, delta: content === undefined ? {} : { content }, finish_reason: finish }] })}\n\n`;
      const step = (total - first) / Math.max(1, parts.length);
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        let i = 0;
        const next = (): void => {
          if (res.destroyed) return;
          const part = parts[i++];
          if (part === undefined) {
            res.write(chunk(undefined, 'stop'));
            res.end('data: [DONE]\n\n');
            return;
          }
          res.write(chunk(part, null));
          setTimeout(next, step);
        };
        next();
      }, first);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no address');
  return {
    baseUrl: `http://127.0.0.1:${address.port}/v1`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Everything counted in one phase. */
interface Meter {
  /** HTTP API requests (billed per request). */
  api: number;
  /** Function URL requests (no charge of their own). */
  urls: number;
  lambdaRequests: Record<string, number>;
  lambdaMs: Record<string, number>;
  logBytes: number;
  workerBatches: number;
}

const freshMeter = (): Meter => ({ api: 0, urls: 0, lambdaRequests: {}, lambdaMs: {}, logBytes: 0, workerBatches: 0 });
let meter = freshMeter();
/** Wall-time multiplier of the current phase (SCALE for WeChat). */
let timeScale = 1;

type Http = (event: APIGatewayProxyEventV2) => Promise<APIGatewayProxyStructuredResultV2>;

/** Functions behind a function URL (set from serverless.yml in main). */
let urlFunctions = new Set<string>();

/**
 * A webhook route to a function: one HTTP API request (or a free function URL request, for a
 * function that has one and a URL the vendor was given: `via: 'api'` for a URL the code builds
 * on PUBLIC_BASE_URL, the HTTP API's), one Lambda request, its wall time.
 */
function timed(fn: string, handler: Http, via: 'vendor' | 'api' = 'vendor'): Http {
  return async (event) => {
    const t0 = performance.now();
    if (via === 'vendor' && urlFunctions.has(fn)) meter.urls++;
    else meter.api++;
    meter.lambdaRequests[fn] = (meter.lambdaRequests[fn] ?? 0) + 1;
    try {
      return await handler(event);
    } finally {
      meter.lambdaMs[fn] = (meter.lambdaMs[fn] ?? 0) + (performance.now() - t0) * timeScale;
    }
  };
}

/** Counts (and swallows) what the loggers write to stdout while a phase runs. */
function captureStdout(): () => void {
  const original = process.stdout.write.bind(process.stdout);
  process.stdout.write = (chunk: string | Uint8Array): boolean => {
    meter.logBytes += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
    return true;
  };
  return () => {
    process.stdout.write = original;
  };
}

/** One channel's counts, turned into dollars. */
interface PhaseResult {
  channel: string;
  messages: number;
  meter: Meter;
  dynamo: DynamoCounts;
  sqs: SqsCounts;
  note: string;
}

function dollars(r: PhaseResult, memory: Record<string, number>): Record<string, number> {
  const perMsg = 1e6 / r.messages;
  const lambdaRequests = Object.values(r.meter.lambdaRequests).reduce((a, b) => a + b, 0);
  const gbSeconds = Object.entries(r.meter.lambdaMs).reduce((a, [fn, ms]) => a + (ms / 1000) * ((memory[fn] ?? 1024) / 1024), 0);
  // The event source's receive and delete per worker batch.
  const sqsRequests = r.sqs.requests + 2 * r.meter.workerBatches;
  return {
    'HTTP API': r.meter.api * PRICES.httpApiPerRequest * perMsg,
    'Lambda requests': lambdaRequests * PRICES.lambdaPerRequest * perMsg,
    'Lambda GB-s': gbSeconds * PRICES.lambdaPerGbSecond * perMsg,
    'DynamoDB writes': r.dynamo.writeUnits * PRICES.dynamoPerWriteUnit * perMsg,
    'DynamoDB reads': r.dynamo.readUnits * PRICES.dynamoPerReadUnit * perMsg,
    'SQS FIFO': sqsRequests * PRICES.sqsFifoPerRequest * perMsg,
    'CloudWatch Logs': r.meter.logBytes * PRICES.logsPerByte * perMsg,
  };
}

async function main(): Promise<void> {
  process.env.AWS_SDK_JS_SUPPRESS_MAINTENANCE_MODE_MESSAGE = '1';
  const yml = readFileSync(join(root, 'serverless.yml'), 'utf8');
  const memory = memorySizes(yml);
  urlFunctions = functionUrls(yml);
  const indexes = tableIndexes();
  const llm = await startCostLlm();
  const graph = await startFakeGraph({ accessToken: 'EAAG-cost' });
  const accountSid = `AC${'0123456789abcdef'.repeat(2)}`;
  const authToken = 'twilio-auth-token-cost';
  const publicBaseUrl = 'https://gateway.example.com';
  const ourNumber = '+15005550006';
  const twilio = await startFakeTwilio({ accountSid, authToken, publicBaseUrl, pauseMsPerSec: 1000 });
  let dynamoProxy: CountingProxy<DynamoCounts> | undefined;
  let sqsProxy: CountingProxy<SqsCounts> | undefined;
  const log = (name: string): ReturnType<typeof createLog> => createLog(name, 'INFO');
  const gw = await startGateway({
    env: {
      OPENAI_API_KEY: 'sk-cost',
      OPENAI_BASE_URL: llm.baseUrl,
      WECHAT_TOKEN: 'costtoken',
      WECHAT_REPLY_WAIT_MS: String(Math.round(4500 / SCALE)),
      WHATSAPP_VERIFY_TOKEN: 'verify',
      WHATSAPP_APP_SECRET: 'meta-app-secret',
      WHATSAPP_ACCESS_TOKEN: 'EAAG-cost',
      WHATSAPP_PHONE_NUMBER_ID: '106540352242922',
      WHATSAPP_GRAPH_BASE: graph.baseUrl,
      WHATSAPP_GRAPH_VERSION: 'v23.0',
      TWILIO_ACCOUNT_SID: accountSid,
      TWILIO_AUTH_TOKEN: authToken,
      TWILIO_FROM: ourNumber,
      TWILIO_API_BASE: twilio.apiBase,
      PUBLIC_BASE_URL: publicBaseUrl,
    },
    endpoints: async (stack) => {
      dynamoProxy = await startDynamoCountingProxy(stack.dynamoEndpoint, indexes);
      sqsProxy = await startSqsCountingProxy(stack.sqsEndpoint);
      return { dynamo: dynamoProxy.url, sqs: sqsProxy.url };
    },
    workerConcurrency: 30,
    visibilityTimeoutSec: 60,
    log: log('worker'),
    // The worker's production progress pacing (1 s at most, WeChat's policy in
    // lib/channels/wechat/progress.ts), scaled like WeChat's time (only WeChat writes progress).
    worker: {
      flushIntervalMs: Math.round(1000 / SCALE),
      wechatTiming: {
        handOverMarginMs: Math.round(1000 / SCALE),
        progress: { retryIntervalMs: 5000 / SCALE, nearDeadlineMs: 2000 / SCALE, slackMs: 1000 / SCALE, idleMs: 3000 / SCALE },
      },
    },
    wrapWorker: (inner) => async (event, context) => {
      const t0 = performance.now();
      meter.workerBatches++;
      meter.lambdaRequests.worker = (meter.lambdaRequests.worker ?? 0) + 1;
      try {
        return await inner(event, context);
      } finally {
        meter.lambdaMs.worker = (meter.lambdaMs.worker ?? 0) + (performance.now() - t0) * timeScale;
      }
    },
    routes: (cfg) => {
      const messagingHandler = createTwilioMessagingHandler(cfg, { log: log('twilio-messaging') });
      const messaging = timed('twilioMessaging', messagingHandler);
      const voice = timed('twilioVoice', createTwilioVoiceHandler(cfg, { log: log('twilio-voice') }));
      return {
        // Replaces the gateway's own WeChat route, with the intervals scaled (module comment).
        '/wechat': timed('wechat', createWeChatHandler(cfg, { log: log('wechat'), pollMs: Math.round(150 / SCALE), holdMs: Math.round(5300 / SCALE) })),
        '/whatsapp': timed('whatsapp', createWhatsAppHandler(cfg, { log: log('whatsapp') })),
        '/twilio/messaging': messaging,
        // The worker asks Twilio for status callbacks at PUBLIC_BASE_URL (the HTTP API).
        '/twilio/messaging/status': timed('twilioMessaging', messagingHandler, 'api'),
        '/twilio/voice': voice,
        '/twilio/voice/gather': voice,
        '/twilio/voice/poll': voice,
      };
    },
  });
  const dynamo = dynamoProxy;
  const sqs = sqsProxy;
  if (!dynamo || !sqs) throw new Error('proxies not started');
  twilio.gatewayUrl = gw.http.url;
  graph.webhook = { url: `${gw.http.url}/whatsapp`, appSecret: 'meta-app-secret' };

  const results: PhaseResult[] = [];
  async function phase(channel: string, messages: number, scale: number, run: () => Promise<string>): Promise<void> {
    meter = freshMeter();
    timeScale = scale;
    dynamo?.reset();
    sqs?.reset();
    const restore = captureStdout();
    let note = '';
    try {
      note = await run();
      await gw.idle();
      // Vendors' status webhooks trail the last send.
      await new Promise((r) => setTimeout(r, 500));
      await gw.idle();
    } finally {
      restore();
    }
    results.push({ channel, messages, meter, dynamo: dynamo?.counts() ?? { requests: 0, readUnits: 0, writeUnits: 0, indexWriteUnits: 0, byOp: {} }, sqs: sqs?.counts() ?? { requests: 0, byOp: {} }, note });
    console.error(`${channel}: ${messages} messages done (${note})`);
  }

  // WeChat passive: 30 messages at once, LLM done after 1-30 s.
  await phase('wechat', 30, SCALE, async () => {
    const windowMs = 5000 / SCALE;
    const platform = new WeChatPlatform({ url: `${gw.http.url}/wechat`, token: 'costtoken', windowMs });
    const n = 30;
    const latencies = Array.from({ length: n }, (_, i) => Math.round((1000 + ((i * 7919) % n) * (29_000 / (n - 1))) / SCALE));
    let passive = 0;
    for (let wave = 0; wave < n; wave += 30) {
      await Promise.all(
        latencies.slice(wave, wave + 30).map(async (ms, j) => {
          const i = wave + j;
          const user = `o-cost-${String(i).padStart(3, '0')}-aaaaaaaaaaaaaaaaaa`;
          const outcome = await platform.send(user, `latency:${ms} first:${Math.round(1000 / SCALE)} question ${i}`);
          // The whole answer fits one page: anything else was partial (or nothing) and needs a "1".
          if (outcome.reply === answerFor(String(i))) {
            passive++;
            return;
          }
          // Told to send "1" for the answer: the user does, once it is ready.
          await new Promise((r) => setTimeout(r, Math.max(0, ms - 3 * windowMs) + 200));
          await platform.send(user, '1');
        }),
      );
    }
    return `${passive} of ${n} answered whole in the passive window, the rest (partly) through "1"`;
  });

  await phase('whatsapp', 20, 1, async () => {
    const meta = new MetaClient(`${gw.http.url}/whatsapp`, 'meta-app-secret');
    await Promise.all(Array.from({ length: 20 }, (_, i) => meta.post(sampleTextWebhook({ phoneNumberId: '106540352242922', from: `1650555${String(1000 + i)}`, text: `question ${i}` }))));
    return 'LLM 1 s to first token, 7 s to the end';
  });

  await phase('sms', 20, 1, async () => {
    await Promise.all(Array.from({ length: 20 }, (_, i) => twilio.sendMessage({ from: `+1555123${String(1000 + i)}`, to: ourNumber, body: `question ${i}` })));
    return 'LLM 1 s to first token, 7 s to the end';
  });

  await phase('voice', 4, 1, async () => {
    await Promise.all(Array.from({ length: 4 }, (_, i) => twilio.call({ from: `+1555222${String(1000 + i)}`, to: ourNumber, script: [`question ${i}`, 'goodbye'] })));
    return 'one question per call, then goodbye';
  });

  await gw.stop();
  await dynamo.close();
  await sqs.close();
  await graph.close();
  await twilio.close();
  await llm.close();

  // The table.
  const costs = results.map((r) => ({ r, d: dollars(r, memory) }));
  const lines = Object.keys(costs[0]?.d ?? {});
  const header = ['$ per 1M messages', ...costs.map((c) => c.r.channel)];
  const rows: string[][] = lines.map((line) => [line, ...costs.map((c) => (c.d[line] ?? 0).toFixed(2))]);
  const totals = costs.map((c) => Object.values(c.d).reduce((a, b) => a + b, 0));
  rows.push(['**total**', ...totals.map((t) => `**${t.toFixed(2)}**`)]);
  const counts: string[][] = [
    ['messages', ...costs.map((c) => String(c.r.messages))],
    ['HTTP API requests / msg', ...costs.map((c) => (c.r.meter.api / c.r.messages).toFixed(2))],
    ['function URL requests / msg (no charge)', ...costs.map((c) => (c.r.meter.urls / c.r.messages).toFixed(2))],
    ['Lambda GB-s / msg', ...costs.map((c) => Object.entries(c.r.meter.lambdaMs).reduce((a, [fn, ms]) => a + (ms / 1000) * ((memory[fn] ?? 1024) / 1024), 0) / c.r.messages).map((v) => v.toFixed(3))],
    ['DynamoDB WCU / msg (of which index)', ...costs.map((c) => `${(c.r.dynamo.writeUnits / c.r.messages).toFixed(1)} (${(c.r.dynamo.indexWriteUnits / c.r.messages).toFixed(1)})`)],
    ['DynamoDB RCU / msg', ...costs.map((c) => (c.r.dynamo.readUnits / c.r.messages).toFixed(1))],
    ['SQS requests / msg', ...costs.map((c) => ((c.r.sqs.requests + 2 * c.r.meter.workerBatches) / c.r.messages).toFixed(1))],
    ['log KB / msg', ...costs.map((c) => (c.r.meter.logBytes / 1024 / c.r.messages).toFixed(1))],
  ];
  const print = (head: string[], body: string[][]): void => {
    const widths = head.map((_, i) => Math.max(...[head, ...body].map((r) => (r[i] ?? '').length)));
    const fmt = (r: string[]): string => `| ${r.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`;
    console.log(fmt(head));
    console.log(`| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`);
    for (const r of body) console.log(fmt(r));
  };
  console.log(`# Cost per message (${new Date().toISOString()}; ${PRICES.source}; LLM tokens excluded)\n`);
  print(header, rows);
  console.log('\nCounted per message:\n');
  print(['', ...costs.map((c) => c.r.channel)], counts);
  console.log(`\nMemory (MB, serverless.yml): ${Object.entries(memory).map(([fn, mb]) => `${fn} ${mb}`).join(', ')}`);
  console.log(`Function URLs (vendors call these, no API Gateway): ${[...urlFunctions].join(', ') || 'none'}`);
  for (const c of costs) console.log(`${c.r.channel}: ${c.r.note}`);
  console.log('\nLambda wall seconds per message, by function (× memory = the GB-s above):');
  for (const c of costs) console.log(`  ${c.r.channel}: ${Object.entries(c.r.meter.lambdaMs).map(([fn, ms]) => `${fn} ${(ms / 1000 / c.r.messages).toFixed(2)} s`).join(', ')}`);
  console.log('\nDynamoDB by operation (calls / units per message):');
  for (const c of costs) console.log(`  ${c.r.channel}: ${Object.entries(c.r.dynamo.byOp).map(([op, v]) => `${op} ${(v.calls / c.r.messages).toFixed(1)}/${(v.units / c.r.messages).toFixed(1)}`).join(', ')}`);
  const total = (channel: string): number => totals[costs.findIndex((c) => c.r.channel === channel)] ?? Number.NaN;
  const missed = Object.entries(GOALS).filter(([channel, goal]) => !(total(channel) <= goal));
  for (const [channel, goal] of missed) console.log(`GOAL MISSED: ${channel} $${total(channel).toFixed(2)} > $${goal} per 1M messages`);
  console.log(`cost per 1M messages: wechat $${total('wechat').toFixed(2)}, whatsapp $${total('whatsapp').toFixed(2)}, sms $${total('sms').toFixed(2)}`);
  if (missed.length > 0) process.exitCode = 1;
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
