/**
 * The emulators in a child process, for callers that cannot load fauxqs themselves.
 *
 * Why: fauxqs is ESM-only (its package exports only an `import` condition). Jest 30 on
 * Node 20 runs test files in its own CommonJS sandbox: `require('fauxqs')` and `import()`
 * both fail there ("Cannot find module", "--experimental-vm-modules"), and so does
 * `createRequire(...)(absolutePath)` (Jest intercepts it; it only supports require(esm) on
 * Node ≥ 24.9). So tests run this file under `node --import tsx` and talk to the emulators
 * over HTTP, which is how the code under test talks to AWS anyway.
 *
 * Protocol: the child prints one JSON line `{"type":"ready",...}` on stdout once both
 * emulators answer, and shuts them down (awaiting the JVM's exit for DynamoDB Local) on
 * SIGTERM/SIGINT or when its stdin closes, so a crashed parent leaves nothing behind.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { startDynamo, startSqs, type DynamoEngine } from './emulators';
import { useStandInCredentials } from './credentials';

/** Emulators running in a child process. */
export interface SpawnedEmulators {
  dynamoEndpoint: string;
  sqsEndpoint: string;
  engine: DynamoEngine;
  /** The child's pid (for diagnostics). */
  pid: number;
  /** Stops both emulators and resolves once the child has exited. */
  stop(): Promise<void>;
}

/** Options of {@link spawnEmulators}. */
export interface SpawnEmulatorsOptions {
  /** DynamoDB engine (default dynalite: starts in milliseconds). */
  engine?: 'auto' | DynamoEngine;
  /** Default 45 s: a cold JVM plus tsx can take a while on a busy CI machine. */
  readyTimeoutMs?: number;
}

interface ReadyMessage {
  type: 'ready';
  dynamoEndpoint: string;
  sqsEndpoint: string;
  engine: DynamoEngine;
}

function isReadyMessage(value: unknown): value is ReadyMessage {
  if (typeof value !== 'object' || value === null) return false;
  const v: Record<string, unknown> = { ...value };
  return (
    v.type === 'ready' &&
    typeof v.dynamoEndpoint === 'string' &&
    typeof v.sqsEndpoint === 'string' &&
    (v.engine === 'dynalite' || v.engine === 'dynamodb-local')
  );
}

function parseEngine(raw: string | undefined): 'auto' | DynamoEngine {
  if (raw === undefined || raw === '' || raw === 'dynalite') return 'dynalite';
  if (raw === 'auto' || raw === 'dynamodb-local') return raw;
  throw new Error(`EMULATOR_DYNAMO_ENGINE must be auto, dynalite or dynamodb-local, got "${raw}"`);
}

/** Starts the emulators in a child Node process (see the module comment for why). */
export function spawnEmulators(opts: SpawnEmulatorsOptions = {}): Promise<SpawnedEmulators> {
  // Whoever starts the stand-ins talks to them: lib/ builds its AWS clients on the SDK's
  // default chain, which must find keys here (the stand-ins take any) and never look for a
  // profile or instance metadata.
  useStandInCredentials();
  const readyTimeoutMs = opts.readyTimeoutMs ?? 45_000;
  // An absolute file URL: `--import tsx` would resolve against the child's cwd.
  const tsxLoader = pathToFileURL(require.resolve('tsx')).href;
  const child = spawn(process.execPath, ['--import', tsxLoader, join(__dirname, 'emulator-process.ts')], {
    cwd: join(__dirname, '..'),
    env: { ...process.env, EMULATOR_DYNAMO_ENGINE: opts.engine ?? 'dynalite' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString('utf8')).slice(-4000);
  });

  let exited = child.exitCode !== null;
  const exit = new Promise<void>((resolve) => {
    child.once('exit', () => {
      exited = true;
      resolve();
    });
  });
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (!exited) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exit;
        clearTimeout(timer);
      }
      child.stdin.destroy();
    })();
    return stopping;
  };

  return new Promise<SpawnedEmulators>((resolve, reject) => {
    let stdout = '';
    let settled = false;
    const fail = (reason: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      void stop().then(() => reject(new Error(`${reason}\n--- emulator stderr ---\n${stderr}`)));
    };
    const timer = setTimeout(() => fail(`emulators not ready after ${readyTimeoutMs} ms`), readyTimeoutMs);
    child.once('error', (err) => fail(`could not start the emulator process: ${err.message}`));
    child.once('exit', (code, signal) => fail(`emulator process exited early (${code ?? signal})`));
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString('utf8');
      const newline = stdout.indexOf('\n');
      if (newline === -1) return;
      const line = stdout.slice(0, newline);
      stdout = stdout.slice(newline + 1);
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch {
        return; // not our protocol line (a library printing to stdout)
      }
      if (!isReadyMessage(parsed) || settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({
        dynamoEndpoint: parsed.dynamoEndpoint,
        sqsEndpoint: parsed.sqsEndpoint,
        engine: parsed.engine,
        pid: child.pid ?? -1,
        stop,
      });
    });
  });
}

/** Child side: start, announce, and stop on signal or when the parent goes away. */
async function main(): Promise<void> {
  const engine = parseEngine(process.env.EMULATOR_DYNAMO_ENGINE);
  const [dynamo, sqs] = await Promise.all([startDynamo({ engine }), startSqs({})]);
  let stopping = false;
  const shutdown = (): void => {
    if (stopping) return;
    stopping = true;
    void Promise.allSettled([dynamo.stop(), sqs.stop()]).then(() => process.exit(0));
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  // stdin is a pipe from the parent: EOF means the parent exited, however it died.
  process.stdin.on('end', shutdown);
  process.stdin.on('error', shutdown);
  process.stdin.resume();
  const ready: ReadyMessage = { type: 'ready', dynamoEndpoint: dynamo.endpoint, sqsEndpoint: sqs.endpoint, engine: dynamo.engine };
  process.stdout.write(`${JSON.stringify(ready)}\n`);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
}
