/**
 * Counting HTTP proxies in front of the DynamoDB and SQS emulators, for `npm run cost`.
 * The functions' clients point at them (DYNAMODB_ENDPOINT / SQS_ENDPOINT), so every call
 * the code really makes is seen and measured, not estimated.
 *
 * DynamoDB: every call gets `ReturnConsumedCapacity: 'TOTAL'` and the units dynalite reports
 * (item size based: 1 WCU per 1 KB written, 1 RCU per 4 KB read strongly consistent, half
 * eventually consistent) are summed. dynalite leaves out what AWS also bills, so the proxy
 * adds it from the items themselves (the item before and after each write: taken from the
 * write's own answer, with `ReturnValues` added and stripped again, and from the last write
 * of the item the proxy saw; an item not seen yet is read once from the emulator, uncounted):
 *  - global secondary index copies: a write that puts an item into an index, takes it out,
 *    or changes what the index holds of it (its keys, or a projected attribute) costs the
 *    index 1 WCU per 1 KB of the projected item (2 when its index key changes); a write
 *    that changes only attributes the index does not project costs it nothing
 *    (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/GSI.html#GSI.ThroughputConsiderations.Writes);
 *  - a conditional write that fails still consumes write units
 *    (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html#write-operation-consumption).
 * SQS: requests counted per 64 KB chunk of payload
 * (https://aws.amazon.com/sqs/pricing/: "each 64 KB chunk of a payload is billed as 1 request").
 */
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';

/** DynamoDB attribute value in the wire (JSON protocol) form. */
type AttributeValue = Record<string, unknown>;
type Item = Record<string, AttributeValue>;

/** What a DynamoDB proxy has counted. */
export interface DynamoCounts {
  requests: number;
  readUnits: number;
  writeUnits: number;
  /** Of `writeUnits`, the global secondary index copies. */
  indexWriteUnits: number;
  byOp: Record<string, { calls: number; units: number }>;
}

/** What an SQS proxy has counted. */
export interface SqsCounts {
  /** Billed requests (64 KB chunks). */
  requests: number;
  byOp: Record<string, number>;
}

/** A running proxy. */
export interface CountingProxy<C> {
  url: string;
  counts(): C;
  reset(): void;
  close(): Promise<void>;
}

/** A GSI's key attributes and projection. */
export interface IndexSpec {
  name: string;
  keys: readonly string[];
  projection: 'ALL' | 'KEYS_ONLY';
}

/** Size of a DynamoDB item as billed: attribute names plus values (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html). */
export function itemBytes(item: Item): number {
  let n = 0;
  for (const [name, value] of Object.entries(item)) n += Buffer.byteLength(name) + valueBytes(value);
  return n;
}

function valueBytes(value: AttributeValue): number {
  const [type, v] = Object.entries(value)[0] ?? ['NULL', true];
  switch (type) {
    case 'S':
      return Buffer.byteLength(String(v));
    case 'N':
      return Math.ceil(String(v).replace(/^-/, '').replace(/^0+/, '').length / 2) + 1;
    case 'B':
      return Buffer.from(String(v), 'base64').length;
    case 'BOOL':
    case 'NULL':
      return 1;
    case 'SS':
    case 'NS':
    case 'BS':
      return Array.isArray(v) ? v.reduce<number>((a, x: unknown) => a + valueBytes({ [type.slice(0, 1)]: x }), 0) : 0;
    case 'L':
      return 3 + (Array.isArray(v) ? v.reduce<number>((a, x: unknown) => a + 1 + (isRecord(x) ? valueBytes(x) : 0), 0) : 0);
    case 'M':
      return 3 + (isItem(v) ? Object.entries(v).reduce((a, [k, x]) => a + Buffer.byteLength(k) + 1 + valueBytes(x), 0) : 0);
    default:
      return 1;
  }
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

interface Outbound {
  method?: string | undefined;
  url?: string | undefined;
  headers: IncomingMessage['headers'];
}

function forward(target: URL, req: Outbound, body: Buffer): Promise<{ status: number; headers: Record<string, string>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string' && k !== 'content-length' && k !== 'host') headers[k] = v;
    headers['content-length'] = String(body.length);
    const out = request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers }, (res) => {
      readBody(res).then((b) => {
        const h: Record<string, string> = {};
        for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string' && k !== 'content-length' && k !== 'transfer-encoding') h[k] = v;
        resolve({ status: res.statusCode ?? 500, headers: h, body: b });
      }, reject);
    });
    out.on('error', reject);
    out.end(body);
  });
}

async function listen(handler: (req: IncomingMessage, res: ServerResponse) => Promise<void>): Promise<{ url: string; close: () => Promise<void> }> {
  const server = createServer((req, res) => {
    handler(req, res).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(502).end(String(err));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no address');
  return {
    url: `http://127.0.0.1:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isItem(v: unknown): v is Item {
  return isRecord(v) && Object.values(v).every(isRecord);
}

const WRITE_OPS = new Set(['PutItem', 'UpdateItem', 'DeleteItem']);

/** Starts a counting proxy in front of a DynamoDB endpoint whose table has `indexes`. */
export async function startDynamoCountingProxy(endpoint: string, indexes: readonly IndexSpec[]): Promise<CountingProxy<DynamoCounts>> {
  const target = new URL(endpoint);
  const fresh = (): DynamoCounts => ({ requests: 0, readUnits: 0, writeUnits: 0, indexWriteUnits: 0, byOp: {} });
  let counts = fresh();

  /** Reads an item straight from the emulator (not counted: the proxy's own bookkeeping). */
  async function peek(tableName: string, key: unknown, headers: IncomingMessage['headers']): Promise<Item | undefined> {
    const body = Buffer.from(JSON.stringify({ TableName: tableName, Key: key, ConsistentRead: true }));
    const fake = { method: 'POST', url: '/', headers: { ...headers, 'x-amz-target': 'DynamoDB_20120810.GetItem' } };
    const res = await forward(target, fake, body);
    const parsed: unknown = JSON.parse(res.body.toString('utf8') || '{}');
    return isRecord(parsed) && isItem(parsed.Item) ? parsed.Item : undefined;
  }

  const indexUnits = (before: Item | undefined, after: Item | undefined): number => {
    let units = 0;
    for (const index of indexes) {
      const inIndex = (item: Item | undefined): item is Item => item !== undefined && index.keys.every((k) => item[k] !== undefined);
      const projected = (item: Item): Item => (index.projection === 'ALL' ? item : Object.fromEntries(Object.entries(item).filter(([k]) => k === 'pk' || k === 'sk' || index.keys.includes(k))));
      const size = (item: Item): number => itemBytes(projected(item));
      const wasIn = inIndex(before);
      const isIn = inIndex(after);
      if (!wasIn && !isIn) continue;
      const keyChanged = wasIn && isIn && index.keys.some((k) => JSON.stringify(before[k]) !== JSON.stringify(after[k]));
      if (wasIn && isIn && !keyChanged && JSON.stringify(projected(before)) === JSON.stringify(projected(after))) continue;
      if (wasIn && (!isIn || keyChanged)) units += Math.max(1, Math.ceil(size(before) / 1024));
      if (isIn) units += Math.max(1, Math.ceil(size(after) / 1024));
    }
    return units;
  };

  // What the proxy knows each item to be after the last write it saw, so that the index
  // units come from the write's own answer instead of extra reads: those would lengthen every
  // write, and the cost bench bills the functions' wall time. An item not yet seen is read once.
  const shadow = new Map<string, Item | undefined>();
  const idOf = (tableName: string, key: unknown): string => (isRecord(key) ? `${tableName}|${JSON.stringify(key.pk)}|${JSON.stringify(key.sk)}` : `${tableName}|?`);
  const known = async (tableName: string, key: unknown, headers: IncomingMessage['headers']): Promise<Item | undefined> => {
    const id = idOf(tableName, key);
    if (!shadow.has(id)) shadow.set(id, await peek(tableName, key, headers));
    return shadow.get(id);
  };
  // Writes to one item pass the proxy one at a time (DynamoDB applies them one at a time too),
  // so each finds the shadow as the previous one left it.
  const queues = new Map<string, Promise<void>>();
  const turnFor = async (id: string): Promise<() => void> => {
    const previous = queues.get(id) ?? Promise.resolve();
    let done = (): void => undefined;
    const mine = new Promise<void>((resolve) => (done = resolve));
    const tail = previous.then(() => mine);
    queues.set(id, tail);
    await previous;
    return () => {
      done();
      if (queues.get(id) === tail) queues.delete(id);
    };
  };

  const proxy = await listen(async (req, res) => {
    const raw = await readBody(req);
    const op = String(req.headers['x-amz-target'] ?? '').split('.')[1] ?? '?';
    let data: Record<string, unknown> = {};
    try {
      const parsed: unknown = JSON.parse(raw.toString('utf8') || '{}');
      if (isRecord(parsed)) data = parsed;
    } catch {
      // not JSON: forwarded as is
    }
    const tableName = typeof data.TableName === 'string' ? data.TableName : '';
    const isWrite = WRITE_OPS.has(op);
    const key = isWrite ? (op === 'PutItem' && isRecord(data.Item) ? Object.fromEntries(Object.entries(data.Item).filter(([k]) => k === 'pk' || k === 'sk')) : data.Key) : undefined;
    const endTurn = isWrite ? await turnFor(idOf(tableName, key)) : (): void => undefined;
    try {
      await measure(op, data, key, tableName, req, res);
    } finally {
      endTurn();
    }
  });

  /** Forwards one call, counts it, answers the caller. */
  async function measure(op: string, data: Record<string, unknown>, key: unknown, tableName: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    // dynalite wants a (any) signature on every call: the proxy's own reads reuse the caller's headers.
    const auth = req.headers;
    const isWrite = WRITE_OPS.has(op);
    // The write answers with the item as it was (PutItem, DeleteItem) or became (UpdateItem)
    // when the caller asked for nothing back; the proxy takes that answer out again.
    const asked = typeof data.ReturnValues === 'string' && data.ReturnValues !== 'NONE' ? data.ReturnValues : undefined;
    const borrowed = isWrite && asked === undefined ? (op === 'UpdateItem' ? 'ALL_NEW' : 'ALL_OLD') : undefined;
    const answers = borrowed ?? asked;
    // The item before the write, when its answer will not hold it (read before the write lands).
    const before = isWrite && answers !== 'ALL_OLD' ? await known(tableName, key, auth) : undefined;
    const body = Buffer.from(JSON.stringify({ ...data, ReturnConsumedCapacity: 'TOTAL', ...(borrowed ? { ReturnValues: borrowed } : {}) }));
    const out = await forward(target, req, body);
    counts.requests++;
    const entry = (counts.byOp[op] ??= { calls: 0, units: 0 });
    entry.calls++;
    let units = 0;
    let parsedOut: unknown = {};
    try {
      parsedOut = JSON.parse(out.body.toString('utf8') || '{}');
    } catch {
      parsedOut = {};
    }
    const consumed = isRecord(parsedOut) ? parsedOut.ConsumedCapacity : undefined;
    const list = Array.isArray(consumed) ? consumed : consumed !== undefined ? [consumed] : [];
    for (const c of list) if (isRecord(c) && typeof c.CapacityUnits === 'number') units += c.CapacityUnits;
    let reply = out;
    if (isWrite) {
      const id = idOf(tableName, key);
      if (out.status !== 200) {
        // A failed conditional write is billed like a write of the existing item (which it left as it was).
        const existing = before ?? (await known(tableName, key, auth));
        units = out.body.includes('ConditionalCheckFailed') ? Math.max(1, Math.ceil((existing ? itemBytes(existing) : 0) / 1024)) : 0;
      } else {
        const returned = isRecord(parsedOut) && isItem(parsedOut.Attributes) ? parsedOut.Attributes : undefined;
        const was = answers === 'ALL_OLD' ? returned : before;
        const after =
          op === 'DeleteItem' ? undefined : op === 'PutItem' ? (isItem(data.Item) ? data.Item : undefined) : answers === 'ALL_NEW' ? returned : await peek(tableName, key, auth);
        shadow.set(id, after);
        const extra = indexUnits(was, after);
        counts.indexWriteUnits += extra;
        units += extra;
        if (borrowed && isRecord(parsedOut)) {
          const rest = Object.fromEntries(Object.entries(parsedOut).filter(([k]) => k !== 'Attributes'));
          // The body changed, so the emulator's checksum of it no longer holds.
          const headers = Object.fromEntries(Object.entries(out.headers).filter(([k]) => k !== 'x-amz-crc32'));
          reply = { ...out, headers, body: Buffer.from(JSON.stringify(rest)) };
        }
      }
      counts.writeUnits += units;
    } else if (op === 'TransactWriteItems' || op === 'BatchWriteItem') {
      // Not used by the functions; their items are not followed by the shadow.
      shadow.clear();
      counts.writeUnits += units;
    } else {
      counts.readUnits += units;
    }
    entry.units += units;
    res.writeHead(reply.status, reply.headers).end(reply.body);
  }
  return { url: proxy.url, counts: () => counts, reset: () => void (counts = fresh()), close: proxy.close };
}

/** Starts a counting proxy in front of an SQS endpoint (JSON protocol). */
export async function startSqsCountingProxy(endpoint: string): Promise<CountingProxy<SqsCounts>> {
  const target = new URL(endpoint);
  const fresh = (): SqsCounts => ({ requests: 0, byOp: {} });
  let counts = fresh();
  const proxy = await listen(async (req, res) => {
    const raw = await readBody(req);
    const op = String(req.headers['x-amz-target'] ?? '').split('.')[1] ?? '?';
    const billed = Math.max(1, Math.ceil(raw.length / 65_536));
    counts.requests += billed;
    counts.byOp[op] = (counts.byOp[op] ?? 0) + billed;
    const out = await forward(target, req, raw);
    res.writeHead(out.status, out.headers).end(out.body);
  });
  return { url: proxy.url, counts: () => counts, reset: () => void (counts = fresh()), close: proxy.close };
}
