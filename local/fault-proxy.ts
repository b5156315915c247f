/**
 * A fault-injecting HTTP proxy in front of an AWS emulator endpoint (dynalite, fauxqs).
 * Point a function's `DYNAMODB_ENDPOINT` / `SQS_ENDPOINT` at it and it forwards every call
 * unchanged, except the calls a rule matches, which it fails or freezes the way a sick
 * service would:
 *
 * - `fail`: answers 500 with the service's JSON error body (`InternalServerError` /
 *   `InternalFailure`), which the SDK retries and then throws;
 * - `freeze`: holds the call (no answer) until `thaw()` or the given time, then forwards
 *   it: a late write that lands after the caller gave up;
 * - `drop`: holds the call, then destroys the connection without forwarding it.
 *
 * The operation is read from `X-Amz-Target` (`DynamoDB_20120810.PutItem` → `PutItem`,
 * `AmazonSQS.SendMessage` → `SendMessage`): both SDK clients speak the JSON protocol.
 */
import { request, type IncomingMessage, type ServerResponse } from 'node:http';
import { closeServer, listenLocal, readBody } from './fakes/fake-http';

/** What a matched call suffers. */
export type Fault = { kind: 'fail' } | { kind: 'freeze'; maxMs?: number } | { kind: 'drop'; afterMs?: number };

/** A call seen by the proxy. */
export interface ProxiedCall {
  op: string;
  body: string;
  fault: Fault['kind'] | 'none';
}

interface Rule {
  match: (call: { op: string; body: string }) => boolean;
  fault: Fault;
  times: number;
}

/** A running proxy. Create with {@link startFaultProxy}. */
export class FaultProxy {
  /** Every call, in arrival order. */
  readonly calls: ProxiedCall[] = [];
  private rules: Rule[] = [];
  private thawers = new Set<() => void>();

  constructor(
    readonly url: string,
    private readonly target: URL,
    private readonly close_: () => Promise<void>,
  ) {}

  /**
   * Makes the next `times` calls of `op` (an operation name, or a predicate over the
   * operation and the raw JSON body) suffer `fault`. Default: until {@link clear}.
   */
  inject(op: string | ((call: { op: string; body: string }) => boolean), fault: Fault, times = Number.POSITIVE_INFINITY): this {
    const match = typeof op === 'string' ? (call: { op: string }): boolean => call.op === op : op;
    this.rules.push({ match, fault, times });
    return this;
  }

  /** Removes every rule and releases frozen calls (they are forwarded now). */
  clear(): void {
    this.rules = [];
    this.thaw();
  }

  /** Releases frozen calls. */
  thaw(): void {
    const waiting = [...this.thawers];
    this.thawers.clear();
    for (const release of waiting) release();
  }

  /** Calls of `op` seen so far. */
  count(op: string): number {
    return this.calls.filter((c) => c.op === op).length;
  }

  async close(): Promise<void> {
    this.thaw();
    await this.close_();
  }

  /** @internal the request handler */
  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req);
    const target = String(req.headers['x-amz-target'] ?? '');
    const op = target.slice(target.lastIndexOf('.') + 1);
    const text = body.toString('utf8');
    const rule = this.rules.find((r) => r.times > 0 && r.match({ op, body: text }));
    if (rule) rule.times -= 1;
    this.calls.push({ op, body: text, fault: rule?.fault.kind ?? 'none' });
    if (rule?.fault.kind === 'fail') {
      const dynamo = target.startsWith('DynamoDB');
      res
        .writeHead(500, { 'content-type': 'application/x-amz-json-1.0', 'x-amzn-requestid': 'fault-proxy' })
        .end(JSON.stringify({ __type: dynamo ? 'com.amazonaws.dynamodb.v20120810#InternalServerError' : 'InternalFailure', message: 'injected fault' }));
      return;
    }
    if (rule?.fault.kind === 'freeze') await this.hold(rule.fault.maxMs);
    if (rule?.fault.kind === 'drop') {
      await this.hold(rule.fault.afterMs);
      res.destroy();
      return;
    }
    await this.forward(req, body, res);
  }

  private hold(maxMs = 60_000): Promise<void> {
    return new Promise((resolve) => {
      const release = (): void => {
        clearTimeout(timer);
        this.thawers.delete(release);
        resolve();
      };
      const timer = setTimeout(release, maxMs);
      this.thawers.add(release);
    });
  }

  private forward(req: IncomingMessage, body: Buffer, res: ServerResponse): Promise<void> {
    return new Promise((resolve) => {
      const headers = { ...req.headers, host: this.target.host };
      const out = request(
        { host: this.target.hostname, port: this.target.port, method: req.method, path: req.url, headers },
        (upstream) => {
          const chunks: Buffer[] = [];
          upstream.on('data', (chunk: Buffer) => chunks.push(chunk));
          upstream.on('end', () => {
            if (!res.destroyed) res.writeHead(upstream.statusCode ?? 502, upstream.headers).end(Buffer.concat(chunks));
            resolve();
          });
          upstream.on('error', () => {
            res.destroy();
            resolve();
          });
        },
      );
      out.on('error', () => {
        res.destroy();
        resolve();
      });
      out.end(body);
    });
  }
}

/** Starts a proxy on 127.0.0.1 (random port) forwarding to `targetUrl`. */
export async function startFaultProxy(targetUrl: string): Promise<FaultProxy> {
  const { server, port } = await listenLocal('fault proxy has no TCP address');
  const proxy = new FaultProxy(`http://127.0.0.1:${port}`, new URL(targetUrl), () => closeServer(server));
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    proxy.handle(req, res).catch(() => res.destroy());
  });
  return proxy;
}
