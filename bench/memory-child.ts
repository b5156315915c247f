/**
 * The child process of the memory benchmark (bench/memory.ts), bundled on its own: it loads
 * the worker's Lambda bundle (the file named by argv[2]) as the Lambda runtime does, then
 * runs the SQS events the parent sends over IPC through its `handler` and reports memory.
 * It imports nothing of the project, so the process holds the worker bundle and this loop
 * only, as a Lambda environment does.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Context, SQSBatchResponse, SQSEvent } from 'aws-lambda';

/** What the parent sends: one invocation. */
interface Invoke {
  event: SQSEvent;
  timeoutMs: number;
  memoryMb: number;
}

type Handler = (event: SQSEvent, context: Context) => Promise<SQSBatchResponse>;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isHandler(value: unknown): value is Handler {
  return typeof value === 'function';
}

function isInvoke(value: unknown): value is Invoke {
  return isRecord(value) && isRecord(value.event) && typeof value.timeoutMs === 'number' && typeof value.memoryMb === 'number';
}

/** A Lambda context with the fields the worker reads. */
function context(timeoutMs: number, memoryMb: number): Context {
  const deadline = Date.now() + timeoutMs;
  const unsupported = (): never => {
    throw new Error('not supported: return a promise');
  };
  /* eslint-disable @typescript-eslint/no-deprecated -- Context still declares the callback-era methods */
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName: 'worker',
    functionVersion: '$LATEST',
    invokedFunctionArn: 'arn:aws:lambda:us-east-1:000000000000:function:worker',
    memoryLimitInMB: String(memoryMb),
    awsRequestId: `bench-${Date.now()}`,
    logGroupName: '/aws/lambda/worker',
    logStreamName: 'bench',
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: unsupported,
    fail: unsupported,
    succeed: unsupported,
  };
  /* eslint-enable @typescript-eslint/no-deprecated */
}

/**
 * The kernel's high-water mark of this process's resident memory (`VmHWM`, Linux), in bytes.
 * Not `resourceUsage().maxRSS`: Linux carries the parent's peak into a forked child's maxRSS
 * across exec, so a child of a big parent would report the parent's figure.
 */
function highWaterMark(): number {
  try {
    const kb = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
    return kb === undefined ? 0 : Number(kb) * 1024;
  } catch {
    return 0;
  }
}

let peakRss = 0;
const sample = (): void => {
  const rss = process.memoryUsage.rss();
  if (rss > peakRss) peakRss = rss;
};

async function main(): Promise<void> {
  const bundle = process.argv[2];
  if (bundle === undefined || !process.send) throw new Error('usage: run by bench/memory.ts with the worker bundle as argument');
  const started = performance.now();
  // `require`, as the Lambda runtime loads a CommonJS handler file.
  const mod: unknown = createRequire(__filename)(bundle);
  const handler = isRecord(mod) ? (mod.handler ?? (isRecord(mod.default) ? mod.default.handler : undefined)) : undefined;
  if (!isHandler(handler)) throw new Error(`${bundle} exports no handler`);
  const loadMs = performance.now() - started;
  sample();
  const loadedRss = process.memoryUsage.rss();
  // Every 2 ms while the handler runs; the kernel's high-water mark catches what falls between samples.
  const timer = setInterval(sample, 2);
  process.send({ type: 'ready', loadMs, rss: loadedRss });
  process.on('message', (message: unknown) => {
    if (!isInvoke(message)) return;
    const t0 = performance.now();
    handler(message.event, context(message.timeoutMs, message.memoryMb)).then(
      (response) => {
        sample();
        clearInterval(timer);
        process.send?.({ type: 'done', ms: performance.now() - t0, response, peakRss, maxRss: highWaterMark(), heapUsed: process.memoryUsage().heapUsed });
      },
      (err: unknown) => {
        process.send?.({ type: 'failed', error: err instanceof Error ? `${err.name}: ${err.message}` : String(err) });
      },
    );
  });
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
