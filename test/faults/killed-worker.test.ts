/**
 * A worker killed mid-answer (SIGKILL of the process running it, as when Lambda's runtime
 * dies) and the job redelivered by SQS after the visibility timeout to a fresh worker.
 * Asserts on what the fake Graph received: every answer exactly once, parts in order.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createWhatsAppHandler } from '../../functions/whatsapp';
import { sampleTextWebhook, sampleWamid } from '../../local/samples/whatsapp';
import { splitForChannel, WHATSAPP_MAX_CHARS } from '../../lib/core/chunking';
import { silentLog } from '../../lib/types';
import { startFakeGraph, type FakeGraph } from '../../local/fakes/fake-graph';
import { startFakeOpenAi, type FakeOpenAi } from '../fakes/fake-openai';
import { FIXTURE_PHONE_NUMBER_ID as PNID } from '../channels/whatsapp/support';
import { MetaClient } from '../../local/fakes/meta-client';
import { startGateway, type Gateway } from '../../local/gateway';
import { until } from '../support/until';

const APP_SECRET = 'kill_app_secret';
const ACCESS_TOKEN = 'EAAG-kill';
/** Pause between two parts to one user: long enough to kill the worker in between. */
const PAIR_MS = 1_500;

describe('a worker killed mid-answer', () => {
  let llm: FakeOpenAi;
  let graph: FakeGraph;
  let gw: Gateway;
  let meta: MetaClient;
  const workers: ChildProcess[] = [];

  /** Starts a worker process on the job queue and waits until it polls. */
  async function startWorker(): Promise<ChildProcess> {
    const env = { ...gw.stack.env, ...workerEnv, QUEUE_ARN: gw.stack.queueArn, TEST_STREAM_LEASE_MS: '500' };
    const child = spawn(process.execPath, ['--import', pathToFileURL(require.resolve('tsx')).href, join(__dirname, 'worker-process.ts')], {
      env: { ...process.env, WORKER_ENV: JSON.stringify(env) },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    workers.push(child);
    await new Promise<void>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`worker exited early (${String(code)})`)));
      child.stdout.on('data', (chunk: Buffer) => {
        if (chunk.toString().includes('ready')) resolve();
      });
    });
    return child;
  }

  async function kill(child: ChildProcess): Promise<void> {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }

  let workerEnv: Record<string, string>;

  beforeAll(async () => {
    llm = await startFakeOpenAi();
    graph = await startFakeGraph({ accessToken: ACCESS_TOKEN });
    workerEnv = {
      OPENAI_API_KEY: 'sk-test',
      OPENAI_BASE_URL: llm.baseUrl,
      OPENAI_MAX_RETRIES: '0',
      WHATSAPP_VERIFY_TOKEN: 'verify',
      WHATSAPP_APP_SECRET: APP_SECRET,
      WHATSAPP_ACCESS_TOKEN: ACCESS_TOKEN,
      WHATSAPP_PHONE_NUMBER_ID: PNID,
      WHATSAPP_GRAPH_BASE: graph.baseUrl,
      WHATSAPP_PAIR_INTERVAL_MS: String(PAIR_MS),
    };
    gw = await startGateway({
      env: workerEnv,
      routes: (cfg) => ({ '/whatsapp': createWhatsAppHandler(cfg, { log: silentLog }) }),
      // Redelivery of a dead worker's job after 2 s (Lambda: the queue's visibility timeout).
      visibilityTimeoutSec: 2,
      startWorker: false,
    });
    meta = new MetaClient(`${gw.http.url}/whatsapp`, APP_SECRET);
  });

  afterEach(async () => {
    await Promise.all(workers.splice(0).filter((w) => w.exitCode === null && w.signalCode === null).map(kill));
  });

  afterAll(async () => {
    await gw.stop();
    await graph.close();
    await llm.close();
  });

  it('while the answer streams: the next worker takes over the stale answer and sends it once', async () => {
    // Arrange: a slow stream.
    const user = '15550600001';
    const answer = `Echo: ${'slowly streamed words '.repeat(12).trim()}`;
    llm.answer = () => answer;
    llm.chunkChars = 4;
    llm.chunkDelayMs = 40;
    const calls = llm.chatCalls;
    const first = await startWorker();
    const id = sampleWamid();
    const key = { channel: 'whatsapp' as const, userId: user, msgKey: id };
    // Act: kill the worker while it streams (WhatsApp answers are stored only when finished:
    // nobody reads a partial one, so the worker writes no progress for them).
    await meta.post(sampleTextWebhook({ phoneNumberId: PNID, from: user, text: 'stream it', id }));
    await until(async () => (await gw.messages.get(key, Date.now()))?.status === 'streaming' && llm.chatCalls > calls, 20_000);
    await new Promise((r) => setTimeout(r, 200));
    await kill(first);
    const sentBeforeKill = graph.textsTo(user).length;
    llm.chunkDelayMs = 0;
    await startWorker();
    await until(() => graph.textsTo(user).length >= 1, 20_000);
    await until(async () => (await gw.messages.get(key, Date.now()))?.pending === false, 10_000);
    // Assert
    expect(sentBeforeKill).toBe(0);
    expect(graph.textsTo(user)).toEqual([answer]);
    expect(llm.chatCalls - calls).toBe(2);
  });

  it('between two parts: the next worker resumes at the part not yet sent, so every part arrives once', async () => {
    // Arrange: an answer of three WhatsApp parts, paced PAIR_MS apart.
    const user = '15550600002';
    const answer = `Echo: ${Array.from({ length: 1_500 }, (_, i) => `word${i}`).join(' ')}.`;
    const parts = splitForChannel(answer, WHATSAPP_MAX_CHARS);
    expect(parts.length).toBeGreaterThanOrEqual(3);
    llm.answer = () => answer;
    llm.chunkChars = 4_000;
    llm.chunkDelayMs = 0;
    const first = await startWorker();
    const id = sampleWamid();
    const key = { channel: 'whatsapp' as const, userId: user, msgKey: id };
    // Act: kill it right after the first part is recorded as sent.
    await meta.post(sampleTextWebhook({ phoneNumberId: PNID, from: user, text: 'long one', id }));
    await until(async () => ((await gw.messages.get(key, Date.now()))?.deliveredParts ?? 0) >= 1, 20_000);
    await kill(first);
    expect(graph.textsTo(user)).toEqual(parts.slice(0, 1));
    await startWorker();
    await until(async () => (await gw.messages.get(key, Date.now()))?.pending === false, 30_000);
    // Assert
    expect(graph.textsTo(user)).toEqual(parts);
  });
});
