/**
 * `npm run bench`: prints tables of
 *  - each function's bundle size and cold start (time to load the bundle in a fresh Node process);
 *  - WeChat ingress latency p50/p99 and messages/s against the embedded DynamoDB and SQS
 *    (LLM excluded: verify → parse → claim → enqueue → acknowledge);
 *  - WeChat delivery with a fake LLM whose latency is spread over 1-30 s: the share of
 *    messages answered without the user sending "1", and LLM calls per message;
 *  - the real-time load benchmarks of bench/load.ts (`npm run bench -- load` runs only those).
 * `npm run bench -- memory` runs only the worker's peak-memory benchmark (bench/memory.ts).
 * `npm run bench -- coldstart` runs only bench/coldstart.ts: each function's cold first response
 * at the CPU share of each candidate memory size (not part of the default run: it takes minutes).
 * `npm run bench -- standins` runs only bench/standins.ts: the stand-ins' own throughput
 * (DynamoDB Local, dynalite, fauxqs) with no handler involved.
 * Not a test: figures depend on the machine. Record them in the README.
 */
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { readFileSync } from 'node:fs';
import { createWeChatHandler } from '../functions/wechat';
import { loadConfig } from '../lib/config';
import { silentLog } from '../lib/types';
import { createWorkerHandler } from '../lib/core/worker';
import { createTurnDeps } from '../functions/compose';
import { spawnEmulators } from '../local/emulator-process';
import { awsClientConfig, createResources } from '../local/resources';
import { startEventSource } from '../local/sqs-event-source';
import { SQSClient } from '@aws-sdk/client-sqs';
import { WeChatPlatform, nextMsgId, textMessageXml } from '../local/fakes/wechat-platform';
import { serveLambdas } from '../local/lambda-http';
import { toEvent } from '../local/lambda-http';
import { wechatSignature } from '../lib/channels/wechat/signature';
import { startLatencyLlm } from './latency-llm';
import { extraBenches } from './extra';
import { loadBenches } from './load';
import { memoryBench } from './memory';
import { coldStartBench } from './coldstart';
import { standinsBench } from './standins';
import { measureSequential, pct } from './stats';

const root = join(__dirname, '..');

function table(title: string, header: string[], rows: (string | number)[][]): void {
  const cells = [header, ...rows.map((r) => r.map((c) => (typeof c === 'number' ? (Number.isInteger(c) ? String(c) : c.toFixed(1)) : c)))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  console.log(`\n## ${title}\n`);
  cells.forEach((r, n) => {
    console.log(`| ${r.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`);
    if (n === 0) console.log(`| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`);
  });
}

/** Bundles each function as serverless-esbuild does and times a cold load of the bundle. */
async function bundles(): Promise<void> {
  const out = mkdtempSync(join(tmpdir(), 'bench-bundles-'));
  const entries = readdirSync(join(root, 'functions')).filter((f) => f.endsWith('.ts'));
  const rows: (string | number)[][] = [];
  const env = {
    ...process.env,
    WECHAT_TOKEN: 't',
    TABLE_NAME: 'bench',
    QUEUE_URL: 'http://127.0.0.1:9/queue/bench.fifo',
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'x',
    AWS_SECRET_ACCESS_KEY: 'x',
    AWS_SDK_JS_SUPPRESS_MAINTENANCE_MODE_MESSAGE: '1',
  };
  for (const entry of entries) {
    const name = entry.replace(/\.ts$/, '');
    const outfile = join(out, `${name}.js`);
    await build({ entryPoints: [join(root, 'functions', entry)], bundle: true, minify: true, platform: 'node', target: 'node24', outfile, logLevel: 'silent' });
    const bytes = statSync(outfile).size;
    const gz = gzipSync(readFileSync(outfile)).length;
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const script = `const t=performance.now();require(${JSON.stringify(outfile)});process.stdout.write(String(performance.now()-t))`;
      times.push(Number(execFileSync(process.execPath, ['-e', script], { env, encoding: 'utf8' })));
    }
    times.sort((a, b) => a - b);
    rows.push([name, (bytes / 1024).toFixed(0), (gz / 1024).toFixed(0), pct(times, 50)]);
  }
  table('Bundles and cold start (load time of the minified bundle in a fresh Node process, median of 5)', ['function', 'bundle KiB', 'gzip KiB', 'cold load ms'], rows);
}

/** Ingress only: customer-service mode with no passive wait acknowledges right after enqueueing. */
async function ingress(): Promise<void> {
  const emulators = await spawnEmulators({ engine: 'dynalite' });
  try {
    const region = 'us-east-1';
    const res = await createResources({ dynamoEndpoint: emulators.dynamoEndpoint, sqsEndpoint: emulators.sqsEndpoint, region, tableName: 'bench', queueName: 'bench-jobs.fifo', deadLetterQueueName: 'bench-dlq.fifo' });
    const cfg = loadConfig({
      TABLE_NAME: res.tableName,
      QUEUE_URL: res.queueUrl,
      DYNAMODB_ENDPOINT: emulators.dynamoEndpoint,
      SQS_ENDPOINT: emulators.sqsEndpoint,
      WECHAT_TOKEN: 'benchtoken',
      WECHAT_APP_ID: 'wxbench',
      WECHAT_APP_SECRET: 'secret',
      WECHAT_REPLY_MODE: 'customer_service',
      WECHAT_CS_PASSIVE_WAIT_MS: '0',
    });
    const handler = createWeChatHandler(cfg, { log: silentLog });
    const event = (i: number): ReturnType<typeof toEvent> => {
      const timestamp = String(Math.floor(Date.now() / 1000));
      const nonce = String(i);
      const q = new URLSearchParams({ signature: wechatSignature(['benchtoken', timestamp, nonce]), timestamp, nonce });
      const body = textMessageXml({ from: `o-bench-${i % 50}`, to: 'gh_bench', content: `message ${i}`, msgId: nextMsgId() });
      return toEvent('POST', `/wechat?${q.toString()}`, { 'content-type': 'text/xml' }, Buffer.from(body));
    };
    const lat = await measureSequential(handler, event);
    const concurrency = 16;
    const total = 1000;
    let next = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < total) await handler(event(next++));
      }),
    );
    const perSec = total / ((performance.now() - t0) / 1000);
    table('WeChat ingress, LLM excluded (dynalite + fauxqs on loopback)', ['metric', 'value'], [
      ['p50 ms (sequential, 500 msgs)', pct(lat, 50)],
      ['p99 ms', pct(lat, 99)],
      [`messages/s (${concurrency} concurrent, ${total} msgs)`, perSec],
    ]);
    for (const row of await extraBenches({ dynamoEndpoint: emulators.dynamoEndpoint, sqsEndpoint: emulators.sqsEndpoint, tableName: res.tableName, queueUrl: res.queueUrl })) {
      table(row.title, ['metric', 'value'], row.rows);
    }
  } finally {
    await emulators.stop();
  }
}

/**
 * WeChat's three deliveries with LLM latency uniform over 1-30 s. Time is scaled by
 * 1/SCALE (a 5 s window is 5000/SCALE ms) so a run takes a minute, not an hour; messages go in waves
 * of 10 so the emulators' own latency stays far below the scaled 5 s window.
 */
async function deliverySimulation(): Promise<void> {
  const SCALE = 5;
  const windowMs = 5000 / SCALE;
  const llm = await startLatencyLlm();
  const emulators = await spawnEmulators({ engine: 'dynalite' });
  try {
    const region = 'us-east-1';
    const res = await createResources({ dynamoEndpoint: emulators.dynamoEndpoint, sqsEndpoint: emulators.sqsEndpoint, region, tableName: 'sim', queueName: 'sim-jobs.fifo', deadLetterQueueName: 'sim-dlq.fifo', visibilityTimeoutSec: 30 });
    const cfg = loadConfig({
      TABLE_NAME: res.tableName,
      QUEUE_URL: res.queueUrl,
      DYNAMODB_ENDPOINT: emulators.dynamoEndpoint,
      SQS_ENDPOINT: emulators.sqsEndpoint,
      OPENAI_API_KEY: 'sk-bench',
      OPENAI_BASE_URL: llm.baseUrl,
      WECHAT_TOKEN: 'simtoken',
      WECHAT_REPLY_WAIT_MS: String(Math.round(4500 / SCALE)),
    });
    const worker = createWorkerHandler(createTurnDeps(cfg, silentLog, { flushIntervalMs: 10 }));
    const sqs = new SQSClient(awsClientConfig(emulators.sqsEndpoint, region));
    // Lambda runs one invocation per active message group, up to the trigger's maximumConcurrency.
    const source = startEventSource({ sqs, queueUrl: res.queueUrl, queueArn: res.queueArn, region, handler: worker, waitTimeSec: 1, maxConcurrency: 50 });
    const http = await serveLambdas({ '/wechat': createWeChatHandler(cfg, { log: silentLog, pollMs: 30, holdMs: Math.round(5300 / SCALE) }) });
    const platform = new WeChatPlatform({ url: `${http.url}/wechat`, token: 'simtoken', windowMs });
    const n = 60;
    // Deterministic spread of latencies over 1..30 s (scaled).
    const latencies = Array.from({ length: n }, (_, i) => (1000 + ((i * 7919) % n) * (29_000 / (n - 1))) / SCALE);
    let answered = 0;
    for (let wave = 0; wave < n; wave += 10) {
      await Promise.all(
        latencies.slice(wave, wave + 10).map(async (ms, j) => {
          const i = wave + j;
          const outcome = await platform.send(`o-sim-${i}`, `latency:${ms.toFixed(0)} question ${i}`);
          if (outcome.reply === `Answer to question ${i}`) answered++;
        }),
      );
    }
    await source.idle();
    await source.stop();
    await http.close();
    sqs.destroy();
    table('WeChat passive delivery, LLM latency uniform 1-30 s (time scaled 1/5)', ['metric', 'value'], [
      ['messages', n],
      ['answered without sending "1"', `${((100 * answered) / n).toFixed(1)} %`],
      ['LLM calls per message', (llm.calls() / n).toFixed(2)],
    ]);
  } finally {
    await llm.close();
    await emulators.stop();
  }
}

async function main(): Promise<void> {
  process.env.AWS_SDK_JS_SUPPRESS_MAINTENANCE_MODE_MESSAGE = '1';
  console.log(`# Benchmarks (${new Date().toISOString()}, node ${process.version})`);
  // `npm run bench -- load`: only the real-time load benchmarks (bench/load.ts).
  if (process.argv.includes('load')) {
    await loadBenches();
    return;
  }
  // `npm run bench -- memory [--memory MB] [--runs n] [--node path] [--root dir] [--only text]`:
  // only the worker's peak memory with media (bench/memory.ts).
  if (process.argv.includes('memory')) {
    await memoryBench();
    return;
  }
  // `npm run bench -- coldstart`: only the cold first response per memory size (bench/coldstart.ts).
  if (process.argv.includes('coldstart')) {
    await coldStartBench(table);
    return;
  }
  // `npm run bench -- standins`: only the stand-ins' raw throughput (bench/standins.ts).
  if (process.argv.includes('standins')) {
    await standinsBench(table);
    return;
  }
  await bundles();
  await ingress();
  await deliverySimulation();
  await loadBenches();
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
