/**
 * `npm run bench -- standins`: the raw throughput of the local stand-ins that `npm start` and
 * `npm run bench -- load` run, with none of the product's handlers involved, so the local load
 * figures of bench (b) (WhatsApp: one conditional PutItem + one FIFO SendMessage per
 * acknowledged webhook) can be read against what the stand-ins themselves serve.
 *
 * As bench/load.ts: the emulators run in their own process (spawnEmulators), the table and
 * queues come from lib/infra (createResources), 16 requests are in flight, and the clients are
 * the product's own (lib/store/client.ts, lib/queue/jobs.ts: SDK defaults, stand-in keys from
 * the environment). Each measure runs 200 operations to warm up, then 2000 timed ones, all on
 * distinct keys and deduplication ids. Not a test: figures depend on the machine and its load.
 */
import { availableParallelism, loadavg } from 'node:os';
import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { PutCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { createSqsClient } from '../lib/queue/jobs';
import { createDocumentClient } from '../lib/store/client';
import { spawnEmulators } from '../local/emulator-process';
import { javaOnPath, type DynamoEngine } from '../local/emulators';
import { createResources } from '../local/resources';
import { pct } from './stats';

/** As bench (b) in bench/load.ts. */
const IN_FLIGHT = 16;
const WARM_UP = 200;
const COUNT = 2000;
const ITEM_BYTES = 600;
const BODY_BYTES = 1024;
const region = 'us-east-1';

type Print = (title: string, header: string[], rows: (string | number)[][]) => void;

/** Rate and latency of a run of operations. */
export interface Measured {
  perSec: number;
  p50: number;
  p99: number;
}

/** Filler that brings `bare` (ASCII JSON: one byte per character) up to `bytes`. */
function filler(bytes: number, bare: string): string {
  return 'x'.repeat(Math.max(0, bytes - bare.length));
}

/** Runs ops `from`..`from + count - 1` with IN_FLIGHT of them at a time. */
async function inFlight(from: number, count: number, op: (i: number) => Promise<void>): Promise<Measured> {
  const latencies: number[] = [];
  let next = from;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < from + count) {
        const i = next++;
        const started = performance.now();
        await op(i);
        latencies.push(performance.now() - started);
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  latencies.sort((a, b) => a - b);
  return { perSec: count / seconds, p50: pct(latencies, 50), p99: pct(latencies, 99) };
}

/**
 * Warm-up, then the timed run (op indexes never repeat, so keys and dedup ids stay distinct).
 * The warm-up's rate is kept too: a fresh JVM serves its first requests slower, and bench (b)
 * sends only 300 webhooks.
 */
async function measure(op: (i: number) => Promise<void>): Promise<{ warm: Measured; timed: Measured }> {
  const warm = await inFlight(0, WARM_UP, op);
  return { warm, timed: await inFlight(WARM_UP, COUNT, op) };
}

/** A claim-shaped item (ingress claim: key, pending index, TTL, the job), ~ITEM_BYTES as JSON. */
function put(db: DynamoDBDocumentClient, tableName: string, key: string): Promise<unknown> {
  const nowMs = Date.now();
  const base = { pk: `msg#whatsapp#${key}`, sk: 'msg', pendingPk: `pending#whatsapp#${key}`, pendingSk: `${nowMs}#${key}`, status: 'queued', expiresAtSec: Math.floor(nowMs / 1000) + 86_400 };
  const item = { ...base, job: filler(ITEM_BYTES, JSON.stringify({ ...base, job: '' })) };
  return db.send(new PutCommand({ TableName: tableName, Item: item, ConditionExpression: 'attribute_not_exists(pk)' }));
}

/** A FIFO send as the ingress enqueues a job: one group per 3 messages (a user's), own dedup id. */
function send(sqs: SQSClient, queueUrl: string, key: string, i: number): Promise<unknown> {
  const group = `whatsapp#user${Math.floor(i / 3)}`;
  const bare = { channel: 'whatsapp', msgKey: key, text: '' };
  const body = JSON.stringify({ ...bare, text: filler(BODY_BYTES, JSON.stringify(bare)) });
  return sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: body, MessageGroupId: group, MessageDeduplicationId: `${group}#${key}` }));
}

/**
 * Warms a stand-in pair as a long-running service is warm: `count` claim-shaped puts (keys
 * `warm…`) each followed by a send to `queueUrl` (give a queue no worker reads), 16 in flight.
 * A fresh JVM (DynamoDB Local) serves its first few hundred requests at about a third of its
 * warm rate; AWS's services have no such phase. Returns the rate it reached.
 */
export async function warmStandIns(db: DynamoDBDocumentClient, sqs: SQSClient, tableName: string, queueUrl: string, count = COUNT): Promise<Measured> {
  return inFlight(0, count, async (i) => {
    await put(db, tableName, `warm${i}`);
    await send(sqs, queueUrl, `warm${i}`, i);
  });
}

function row(standIn: string, operation: string, m: { warm: Measured; timed: Measured }): (string | number)[] {
  return [standIn, operation, m.timed.perSec.toFixed(0), m.timed.p50.toFixed(1), m.timed.p99.toFixed(1), m.warm.perSec.toFixed(0)];
}

/** Measures one DynamoDB engine and fauxqs beside it, as the emulator process runs them. */
async function measureEngine(engine: DynamoEngine): Promise<(string | number)[][]> {
  const emulators = await spawnEmulators({ engine });
  const db = createDocumentClient({ region, tableName: '', queueUrl: '', dynamoEndpoint: emulators.dynamoEndpoint, sqsEndpoint: emulators.sqsEndpoint });
  const sqs = createSqsClient({ region, tableName: '', queueUrl: '', dynamoEndpoint: emulators.dynamoEndpoint, sqsEndpoint: emulators.sqsEndpoint });
  try {
    const res = await createResources({ dynamoEndpoint: emulators.dynamoEndpoint, sqsEndpoint: emulators.sqsEndpoint, region, tableName: 'standins', queueName: 'standins-jobs.fifo', deadLetterQueueName: 'standins-dlq.fifo' });
    const name = engine === 'dynamodb-local' ? 'DynamoDB Local' : 'dynalite';
    const puts = await measure(async (i) => {
      await put(db, res.tableName, `put${i}`);
    });
    const sends = await measure(async (i) => {
      await send(sqs, res.queueUrl, `send${i}`, i);
    });
    // As the WhatsApp ingress acknowledges a message: claim, then enqueue, in sequence.
    const pairs = await measure(async (i) => {
      await put(db, res.tableName, `pair${i}`);
      await send(sqs, res.queueUrl, `pair${i}`, i);
    });
    return [
      row(name, 'conditional PutItem', puts),
      row(`fauxqs (beside ${name})`, 'FIFO SendMessage', sends),
      row(`${name} + fauxqs`, 'PutItem then SendMessage (pairs/s)', pairs),
    ];
  } finally {
    db.destroy();
    sqs.destroy();
    await emulators.stop();
  }
}

/** Prints the stand-ins' throughput table. */
export async function standinsBench(print: Print): Promise<void> {
  const load = loadavg().map((l) => l.toFixed(2)).join(' / ');
  const rows: (string | number)[][] = [];
  if (javaOnPath()) rows.push(...(await measureEngine('dynamodb-local')));
  else rows.push(['DynamoDB Local', 'skipped: no java on PATH', '', '', '', '']);
  rows.push(...(await measureEngine('dynalite')));
  print(
    `Stand-ins alone: ${IN_FLIGHT} in flight, ${COUNT} ops after ${WARM_UP} warm-up, ~${ITEM_BYTES} B items, ~${BODY_BYTES} B bodies (${availableParallelism()} cores, load average ${load} at start)`,
    ['stand-in', 'operation', 'ops/s', 'p50 ms', 'p99 ms', `warm-up ops/s (first ${WARM_UP})`],
    rows,
  );
}
