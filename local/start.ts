/**
 * `npm start`: the whole gateway on this machine, offline.
 *
 *   .env → loadConfig (fail fast) → DynamoDB + SQS emulators → table and queues from
 *   lib/infra/*.json (stage `local`) → `serverless offline` (HTTP routes, handlers bundled by
 *   serverless-esbuild, as deployed) → the worker in this process, fed by the SQS event
 *   source emulator (serverless-offline-sqs does not work with fauxqs), and the dead-letter
 *   function fed the same way from the DLQ.
 *
 * Environment knobs (besides the app's own, see lib/config.ts):
 * - PORT (3000), HOST (localhost), LAMBDA_PORT (3002): serverless-offline's listeners.
 * - LOCAL_DYNAMO_ENGINE: auto (default: DynamoDB Local when java is on PATH) | dynalite | dynamodb-local.
 * - LOCAL_VISIBILITY_TIMEOUT_SEC: job queue visibility timeout (default: queue.json's).
 * - LOCAL_WORKER_CONCURRENCY: most worker batches in flight, one per active message group (default
 *   50, as the worker trigger's maximumConcurrency in serverless.yml; Lambda scales the same way).
 * - LOCAL_WARM_HANDLERS: warm handler instances kept per webhook function (default 8; 0: none).
 *   serverless offline runs each request in a worker thread of its own and keeps the thread
 *   (the handler stays loaded, as in a warm Lambda) for the next request; a request that
 *   finds none idle pays a cold load, as Lambda's scale-out does. Pre-warming these at start
 *   is the local counterpart of provisioned concurrency: a burst of that many webhooks finds
 *   warm handlers, each still isolated (one request per thread at a time).
 * - SIMULATOR (on): `off` serves no channel simulator; SIMULATOR_PORT (3100) is where it listens.
 * With the simulator on (local/simulator/), every channel without settings gets local ones and
 * its outbound API points at the simulator's stand-ins. With it off and no channel configured,
 * WeChat is enabled with the token `local-dev-token`.
 *
 * Ctrl+C (SIGINT) or SIGTERM stops everything and exits 0; if serverless offline dies on its
 * own, the rest is torn down and the exit code is non-zero.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, rmdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { SQSClient } from '@aws-sdk/client-sqs';
import { ConfigError, enabledChannels, FUNCTION_SECRETS, functionSecrets, loadConfig, type AppConfig, type FunctionName } from '../lib/config';
import { readDotEnv } from './dotenv';
import { spawnEmulators, type SpawnedEmulators } from './emulator-process';
import type { DynamoEngine } from './emulators';
import { awsClientConfig, createResources, LOCAL_CREDENTIALS, type LocalResources } from './resources';
import { startEventSource, type EventSource } from './sqs-event-source';
import { simulatorEnv, type SimulatedChannels } from './simulator/env';
import { startSimulator, type Simulator } from './simulator/server';

const STAGE = 'local';
const ROOT = resolve(__dirname, '..');

/**
 * With no channel configured, WeChat is switched on with this token so a fresh clone can
 * be tried with curl at once (README, Quick start). Never used when any channel is set.
 */
const LOCAL_WECHAT_TOKEN = 'local-dev-token';

/** Webhook paths per channel, for the banner (serverless.yml's httpApi events). */
const CHANNEL_PATHS: Readonly<Record<string, readonly string[]>> = {
  wechat: ['/wechat'],
  whatsapp: ['/whatsapp'],
  twilio: ['/twilio/messaging', '/twilio/voice'],
};

/** serverless.yml's function keys (the same names as lib/config.ts FUNCTION_SECRETS). */
const FUNCTION_NAMES = Object.keys(FUNCTION_SECRETS).filter((name): name is FunctionName => name in FUNCTION_SECRETS);

function log(line: string): void {
  process.stdout.write(`[local] ${line}\n`);
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/** The `service:` name in serverless.yml, so resource names follow `${self:service}-${sls:stage}`. */
function serviceName(): string {
  const match = /^service:\s*([A-Za-z0-9-]+)\s*$/m.exec(readFileSync(join(ROOT, 'serverless.yml'), 'utf8'));
  if (!match?.[1]) throw new Error('serverless.yml has no service: line');
  return match[1];
}

function parseEngine(raw: string | undefined): 'auto' | DynamoEngine {
  const value = (raw ?? '').trim();
  if (value === '' || value === 'auto') return 'auto';
  if (value === 'dynalite' || value === 'dynamodb-local') return value;
  throw new ConfigError(`LOCAL_DYNAMO_ENGINE must be auto, dynalite or dynamodb-local, got "${value}"`);
}

function positiveInt(raw: string | undefined, name: string, fallback: number): number {
  const value = (raw ?? '').trim();
  if (value === '') return fallback;
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new ConfigError(`${name} must be a positive integer, got "${value}"`);
  return Number(value);
}

/** The set variables of `env`, without those named in `drop`. */
function definedOnly(env: Readonly<Record<string, string | undefined>>, drop: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) if (value !== undefined && !drop.includes(key)) out[key] = value;
  return out;
}

/** Kills a whole process group (the offline CLI and its workers), ignoring "already gone". */
function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // the group has exited already
  }
}

/**
 * Removes `.build/offline-<pid>` folders of earlier runs that are no longer alive (a run that
 * was SIGKILLed cannot clean up after itself), then `.build` itself if that leaves it empty.
 */
function cleanBuildFolders(keepPid: number): void {
  const dir = join(ROOT, '.build');
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return;
  }
  for (const entry of entries) {
    const match = /^offline-(\d+)$/.exec(entry);
    if (!match) continue;
    const pid = Number(match[1]);
    if (pid !== keepPid && !alive(pid)) rmSync(join(dir, entry), { recursive: true, force: true });
  }
  try {
    if (readdirSync(dir).length === 0) rmdirSync(dir);
  } catch {
    // someone else is using it
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    return err instanceof Error && 'code' in err && err.code === 'EPERM';
  }
}

/** Polls until the HTTP server answers anything at all (a 500 from /health still means "up"). */
async function waitForHttp(url: string, offlineExited: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (offlineExited()) throw new Error('serverless offline exited during start');
    try {
      // Generous: the first request cold-starts a worker thread; aborting it early only queues more.
      const res = await fetch(url, { signal: AbortSignal.timeout(30_000) });
      await res.arrayBuffer();
      return;
    } catch {
      if (Date.now() > deadline) throw new Error(`${url} did not answer within ${seconds(timeoutMs)}`);
    }
    await new Promise((r) => setTimeout(r, 150));
  }
}

/**
 * Sends `count` requests at once to each path (GET, or POST for Twilio's form routes),
 * unsigned: the handlers load and refuse them (403) without touching any state, and
 * serverless offline keeps each of those worker threads for later requests.
 */
async function warmHandlers(url: string, paths: readonly string[], count: number): Promise<void> {
  await Promise.all(
    paths.flatMap((path) =>
      Array.from({ length: count }, async () => {
        try {
          const res = await fetch(url + path, { method: path.startsWith('/twilio/') ? 'POST' : 'GET', signal: AbortSignal.timeout(60_000) });
          await res.arrayBuffer();
        } catch {
          // A handler that failed to warm loads on its first real request instead.
        }
      }),
    ),
  );
}

function banner(cfg: AppConfig, url: string, emulators: SpawnedEmulators, res: LocalResources, startedMs: number, devWeChat: boolean): string {
  const channels = enabledChannels(cfg).map((name) => `${name} (${(CHANNEL_PATHS[name] ?? [`/${name}`]).map((path) => url + path).join(', ')})`);
  if (devWeChat) channels.push(`token "${LOCAL_WECHAT_TOKEN}" because no channel is configured`);
  const lines = [
    '',
    `LLM gateway running locally (ready in ${seconds(startedMs)})`,
    `  URL:          ${url}`,
    `  Health:       ${url}/health`,
    `  LLM provider: ${cfg.llm.provider}${cfg.llm.provider === 'dev' ? ' (offline echo model; set OPENAI_API_KEY or DIFY_API_KEY in .env)' : ''}`,
    `  Channels:     ${channels.join(', ')}`,
    `  DynamoDB:     ${emulators.engine} at ${emulators.dynamoEndpoint}, table ${res.tableName}${res.ttlEnabled ? '' : ' (no TTL API; expired items are filtered on read)'}`,
    `  SQS:          fauxqs at ${emulators.sqsEndpoint}, queue ${res.queueUrl}`,
    `  Worker:       in this process, fed by the local SQS event source; the deadLetter function on ${res.deadLetterQueueUrl}`,
    `  Dead letters: npm run dlq -- list --stage ${STAGE} --dynamodb-endpoint ${emulators.dynamoEndpoint} --sqs-endpoint ${emulators.sqsEndpoint}`,
    'Press Ctrl+C to stop.',
    '',
  ];
  return lines.join('\n');
}

async function main(): Promise<void> {
  const started = Date.now();
  // Lambda runs from the bundle's root.
  process.chdir(ROOT);
  let merged = readDotEnv(ROOT, process.env);
  let devWeChat = false;
  const simulatorOn = !['off', '0', 'false'].includes((merged.SIMULATOR ?? '').trim().toLowerCase());
  let simulator: Simulator | undefined;
  let simulated: SimulatedChannels | undefined;
  let cfg: AppConfig;
  let engine: 'auto' | DynamoEngine;
  let visibilityTimeoutSec: number | undefined;
  let concurrency: number;
  let warm: number;
  try {
    if (simulatorOn) {
      // The simulator listens first: the local settings point the channels' APIs at it.
      const simHost = merged.HOST?.trim() || 'localhost';
      const simPort = positiveInt(merged.SIMULATOR_PORT, 'SIMULATOR_PORT', 3100);
      simulator = await startSimulator({ host: simHost, port: simPort }).catch((err: unknown) => {
        const inUse = typeof err === 'object' && err !== null && 'code' in err && err.code === 'EADDRINUSE';
        throw inUse ? new ConfigError(`the simulator's port ${simPort} is in use: set SIMULATOR_PORT, or SIMULATOR=off`) : err;
      });
      const gatewayHost = simHost === '0.0.0.0' || simHost === '::' ? '127.0.0.1' : simHost;
      const sim = simulatorEnv(merged, simulator.url, `http://${gatewayHost}:${merged.PORT?.trim() || '3000'}`);
      merged = { ...merged, ...sim.add };
      simulated = sim.simulated;
      for (const [key, value] of Object.entries(sim.add)) process.env[key] = value;
    }
    cfg = loadConfig(merged);
    if (enabledChannels(cfg).length === 0) {
      merged = { ...merged, WECHAT_TOKEN: LOCAL_WECHAT_TOKEN };
      cfg = loadConfig(merged);
      devWeChat = true;
    }
    engine = parseEngine(merged.LOCAL_DYNAMO_ENGINE);
    visibilityTimeoutSec = merged.LOCAL_VISIBILITY_TIMEOUT_SEC ? positiveInt(merged.LOCAL_VISIBILITY_TIMEOUT_SEC, 'LOCAL_VISIBILITY_TIMEOUT_SEC', 1) : undefined;
    concurrency = positiveInt(merged.LOCAL_WORKER_CONCURRENCY, 'LOCAL_WORKER_CONCURRENCY', 50);
    warm = merged.LOCAL_WARM_HANDLERS?.trim() === '0' ? 0 : positiveInt(merged.LOCAL_WARM_HANDLERS, 'LOCAL_WARM_HANDLERS', 8);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`Configuration error: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  const region = cfg.aws.region;
  const host = merged.HOST?.trim() || 'localhost';
  const port = merged.PORT?.trim() || '3000';

  let emulators: SpawnedEmulators | undefined;
  let offline: ChildProcess | undefined;
  let offlineExit: Promise<void> | undefined;
  let source: EventSource | undefined;
  let deadLetterSource: EventSource | undefined;
  let sqsClient: SQSClient | undefined;
  let shuttingDown = false;
  // Read through a function: signal handlers flip the flag while main() is awaiting.
  const stopping = (): boolean => shuttingDown;
  // serverless-esbuild's work folder for this run, under .build/ (git- and watch-ignored) and
  // apart from `serverless package`'s .esbuild/, which that command deletes when it is done.
  const buildFolder = `.build/offline-${process.pid}`;

  // Last resort if this process dies some other way: never leave the offline group behind.
  process.once('exit', () => {
    if (offline && offline.exitCode === null && offline.signalCode === null) killGroup(offline, 'SIGKILL');
  });

  async function shutdown(code: number, why: string): Promise<never> {
    if (shuttingDown) return new Promise<never>(() => undefined);
    shuttingDown = true;
    log(`${why}; stopping…`);
    await Promise.all([source?.stop(), deadLetterSource?.stop(), simulator?.stop()]);
    sqsClient?.destroy();
    if (offline && offlineExit && offline.exitCode === null && offline.signalCode === null) {
      killGroup(offline, 'SIGINT');
      const timer = setTimeout(() => offline && killGroup(offline, 'SIGKILL'), 10_000);
      await offlineExit;
      clearTimeout(timer);
      // Workers or watchers of the CLI that outlived it.
      killGroup(offline, 'SIGKILL');
    }
    await emulators?.stop();
    rmSync(join(ROOT, buildFolder), { recursive: true, force: true });
    cleanBuildFolders(process.pid);
    log('stopped');
    process.exit(code);
  }
  process.on('SIGINT', () => void shutdown(0, 'SIGINT'));
  process.on('SIGTERM', () => void shutdown(0, 'SIGTERM'));

  cleanBuildFolders(process.pid);
  try {
    // Credentials and region are known now; the table, queue and endpoints only once the
    // emulators run. Real AWS credentials from the shell are replaced: nothing local should
    // ever be able to reach an account.
    const awsEnv: Record<string, string> = {
      AWS_REGION: region,
      AWS_DEFAULT_REGION: region,
      AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
    };
    const inherited = definedOnly(merged, ['AWS_SESSION_TOKEN', 'AWS_PROFILE']);

    // serverless offline starts first and in parallel with the emulators: booting the CLI and
    // bundling the handlers takes as long as the JVM. serverless-offline-env.js waits for the
    // table/queue/endpoints on stdin before the functions are created.
    // Own process group (detached), so Ctrl+C reaches only us and we stop things in order.
    // stdin stays open until this process is gone, which also stops offline if we are killed.
    const cli = require.resolve('serverless/bin/serverless.js');
    const child = spawn(process.execPath, [cli, 'offline', 'start', '--stage', STAGE], {
      cwd: ROOT,
      env: {
        ...inherited,
        ...awsEnv,
        HOST: host,
        PORT: port,
        SLS_TELEMETRY_DISABLED: '1',
        SLS_NOTIFICATIONS_MODE: 'off',
        SLS_ESBUILD_WORK_FOLDER: buildFolder,
        SLS_OFFLINE_ENV_FROM_STDIN: '1',
        SLS_OFFLINE_EXIT_WITH_PARENT: '1',
      },
      detached: true,
      stdio: ['pipe', 'inherit', 'inherit'],
    });
    offline = child;
    offlineExit = new Promise<void>((done) => child.once('exit', () => done()));
    child.once('exit', (code, signal) => {
      if (!shuttingDown) void shutdown(code && code !== 0 ? code : 1, `serverless offline exited unexpectedly (${code ?? signal})`);
    });
    // EPIPE if offline died first: its exit handler above reports that.
    child.stdin.on('error', () => undefined);

    // The emulators run in a child that stops them (and DynamoDB Local's JVM) as soon as its
    // stdin closes: even if this process is SIGKILLed (tsx does that to a child that does not
    // acknowledge a relayed signal within 30 ms), no emulator is left running.
    const t0 = Date.now();
    emulators = await spawnEmulators({ engine });
    const { dynamoEndpoint, sqsEndpoint } = emulators;
    log(`emulators up in ${seconds(Date.now() - t0)} (DynamoDB: ${emulators.engine})`);

    const service = serviceName();
    const resources = await createResources({
      dynamoEndpoint,
      sqsEndpoint,
      region,
      tableName: `${service}-${STAGE}`,
      queueName: `${service}-${STAGE}-jobs.fifo`,
      deadLetterQueueName: `${service}-${STAGE}-dlq.fifo`,
      ...(visibilityTimeoutSec !== undefined ? { visibilityTimeoutSec } : {}),
    });
    const localEnv: Record<string, string> = {
      TABLE_NAME: resources.tableName,
      QUEUE_URL: resources.queueUrl,
      DYNAMODB_ENDPOINT: dynamoEndpoint,
      SQS_ENDPOINT: sqsEndpoint,
      // serverless.yml defaults it to the deployed API's URL, which does not exist here.
      PUBLIC_BASE_URL: merged.PUBLIC_BASE_URL?.trim() ?? '',
    };
    // Deployed functions read their secrets from SSM; offline they come from here (the shell,
    // .env, the local WeChat token), over the pipe, never through serverless.yml, and each
    // function gets only the secrets it would get deployed (lib/config.ts FUNCTION_SECRETS).
    const secretsByFunction = Object.fromEntries(FUNCTION_NAMES.map((fn) => [fn, functionSecrets(fn, merged)]));
    child.stdin.write(`${JSON.stringify({ env: localEnv, functions: secretsByFunction })}\n`);

    // The worker runs here, so it needs the same environment before its first invocation reads it.
    // .env included: functionConfig() reads only process.env.
    for (const [key, value] of Object.entries({ ...merged, ...awsEnv, ...localEnv })) if (value !== undefined) process.env[key] = value;
    if (devWeChat) process.env.WECHAT_TOKEN = LOCAL_WECHAT_TOKEN;
    delete process.env.AWS_SESSION_TOKEN;
    delete process.env.AWS_PROFILE;
    const worker = await import('../functions/worker');
    const deadLetter = await import('../functions/dead-letter');
    sqsClient = new SQSClient(awsClientConfig(sqsEndpoint, region));
    // The dead-letter function on the DLQ, as serverless.yml deploys it.
    deadLetterSource = startEventSource({
      sqs: sqsClient,
      queueUrl: resources.deadLetterQueueUrl,
      queueArn: resources.deadLetterQueueArn,
      region,
      handler: deadLetter.handler,
      batchSize: 5,
      waitTimeSec: 20,
      functionName: 'deadLetter',
      timeoutSec: 30, // as serverless.yml
      log: (line) => process.stderr.write(`${line}\n`),
    });
    source = startEventSource({
      sqs: sqsClient,
      queueUrl: resources.queueUrl,
      queueArn: resources.queueArn,
      region,
      handler: simulator ? simulator.observeWorker(worker.handler) : worker.handler,
      batchSize: 5, // as serverless.yml
      waitTimeSec: 20,
      maxConcurrency: concurrency,
      timeoutSec: 300,
      log: (line) => process.stderr.write(`${line}\n`),
    });

    const clientHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
    const url = `http://${clientHost}:${port}`;
    simulator?.configure({ cfg: loadConfig({ ...merged, ...awsEnv, ...localEnv }), gatewayUrl: url, simulated: simulated ?? { wechat: false, whatsapp: false, twilio: false } });
    await waitForHttp(`${url}/health`, () => child.exitCode !== null || child.signalCode !== null, 120_000);
    if (warm > 0) {
      const t1 = Date.now();
      const paths = enabledChannels(cfg).flatMap((name) => CHANNEL_PATHS[name] ?? []);
      await warmHandlers(url, paths, warm);
      log(`${warm} warm handler(s) per webhook function in ${seconds(Date.now() - t1)}`);
    }
    if (!stopping()) process.stdout.write(banner(cfg, url, emulators, resources, Date.now() - started, devWeChat));
    if (simulator && !stopping()) process.stdout.write(`Simulator: ${simulator.url}/\n`);
  } catch (err) {
    if (stopping()) return;
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    await shutdown(1, 'start failed');
  }
}

void main();
