/**
 * The `node:http` plumbing the fakes share: a server on 127.0.0.1 at a random port, the
 * request body and path, JSON objects, canned responses and the scripted steps every
 * streaming fake knows, abortable pauses, and a close that drops every open connection
 * (keep-alive included) so suites end promptly.
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http';
import { setTimeout as delay } from 'node:timers/promises';

/** A canned HTTP response. `body`: a string is sent as-is, anything else as JSON. */
export interface FakeHttpResponse {
  status: number;
  headers?: Readonly<Record<string, string>>;
  body: unknown;
}

/** Any request a fake received. */
export interface FakeRecordedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  /** The raw body (UTF-8 decoded). */
  body: string;
}

/**
 * The scripted steps the streaming fakes share:
 * - `http`: reply with this status/headers/body;
 * - `raw`: send this SSE text verbatim (e.g. a recorded transcript);
 * - `disconnect`: destroy the socket without answering (a network error).
 */
export type FakeBasicStep = { kind: 'http'; response: FakeHttpResponse } | { kind: 'raw'; body: string } | { kind: 'disconnect' };

/** A listening fake server. */
export interface LocalServer {
  server: Server;
  /** The random port it listens on, on 127.0.0.1. */
  port: number;
}

/**
 * Creates a `node:http` server and listens on 127.0.0.1 at a random port.
 * @param noAddressMessage - the message of the error thrown when the server reports no TCP address.
 * @param listener - a request listener to attach before listening (optional).
 * @returns the server and its port.
 */
export async function listenLocal(noAddressMessage: string, listener?: RequestListener): Promise<LocalServer> {
  const server = listener ? createServer(listener) : createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error(noAddressMessage);
  return { server, port: address.port };
}

/** Serves `server`'s requests with `handle`; a request it fails on gets its response destroyed. */
export function serveWith(server: Server, handle: (req: IncomingMessage, res: ServerResponse) => Promise<void>): void {
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    handle(req, res).catch(() => res.destroy());
  });
}

/** Stops `server`: resolves once it is closed, after dropping every open connection. */
export async function closeServer(server: Server): Promise<void> {
  await new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

/** Whether `value` is a plain JSON object (not null, not an array). */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Splits into pieces of `size` code points (never inside a surrogate pair). */
export function pieces(text: string, size: number): string[] {
  const chars = Array.from(text);
  const step = Math.max(1, size);
  const out: string[] = [];
  for (let i = 0; i < chars.length; i += step) out.push(chars.slice(i, i + step).join(''));
  return out;
}

/** Reads the whole body of a request. */
export async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
  return Buffer.concat(chunks);
}

/** The path of a request's URL, without the query. */
export function pathOf(req: IncomingMessage): string {
  return (req.url ?? '/').split('?')[0] ?? '/';
}

/**
 * Sends a canned response (unless the response is already destroyed): a string body as
 * `text/plain`, anything else as JSON; `extraHeaders` and then the response's own headers
 * are added after the content type.
 */
export function sendResponse(res: ServerResponse, response: FakeHttpResponse, extraHeaders: Readonly<Record<string, string>> = {}): void {
  if (res.destroyed) return;
  const isText = typeof response.body === 'string';
  const body = typeof response.body === 'string' ? response.body : JSON.stringify(response.body);
  res.writeHead(response.status, {
    'content-type': isText ? 'text/plain; charset=utf-8' : 'application/json',
    ...extraHeaders,
    ...response.headers,
  });
  res.end(body);
}

/**
 * Plays `step` when it is one of the {@link FakeBasicStep}s (an `http` one through `send`) and
 * returns true; returns false, sending nothing, for any other step (or none).
 */
export function playBasicStep<Step extends { kind: string }>(
  res: ServerResponse,
  step: Step | undefined,
  send: (res: ServerResponse, response: FakeHttpResponse) => void,
): step is Extract<Step, FakeBasicStep> {
  if (!isBasicStep(step)) return false;
  const basic: FakeBasicStep = step;
  if (basic.kind === 'disconnect') {
    res.socket?.destroy();
  } else if (basic.kind === 'http') {
    send(res, basic.response);
  } else {
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8' });
    res.end(basic.body);
  }
  return true;
}

function isBasicStep<Step extends { kind: string }>(step: Step | undefined): step is Extract<Step, FakeBasicStep> {
  return step?.kind === 'disconnect' || step?.kind === 'http' || step?.kind === 'raw';
}

/**
 * Reads a request and records it in `requests`.
 * @returns the raw body, the path, and a signal to stop writing on: it aborts when either side
 * goes away (`res` closes, or `closing` aborts as the fake shuts down).
 */
export async function receive(
  req: IncomingMessage,
  res: ServerResponse,
  requests: FakeRecordedRequest[],
  closing: AbortSignal,
): Promise<{ raw: Buffer; path: string; signal: AbortSignal }> {
  const raw = await readBody(req);
  const path = pathOf(req);
  requests.push({ method: req.method ?? '', path, headers: req.headers, body: raw.toString('utf8') });
  const gone = new AbortController();
  res.on('close', () => gone.abort());
  return { raw, path, signal: AbortSignal.any([gone.signal, closing]) };
}

/** Waits `ms` unless aborted; returns false when aborted (the caller should stop). */
export async function pause(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return false;
  if (ms <= 0) return true;
  try {
    await delay(ms, undefined, { signal });
    return true;
  } catch {
    return false;
  }
}

/** Parses a `multipart/form-data` body, or undefined when it is not one. */
export async function parseFormData(raw: Buffer, contentType: string | undefined): Promise<FormData | undefined> {
  // Node's fetch Request parses multipart/form-data for us.
  return new Request('http://fake/upload', {
    method: 'POST',
    headers: { 'content-type': contentType ?? '' },
    body: raw,
  })
    // eslint-disable-next-line @typescript-eslint/no-deprecated -- a test fake with tiny bodies; undici's parser is the natural reference for what fetch sends
    .formData()
    .catch(() => undefined);
}

/**
 * Sends media bytes with status 200: by default in one piece with `Content-Length`; with
 * `chunked`, without it, 64 KiB at a time as the client reads (chunked transfer encoding), so
 * the client only learns the size by reading, and a client that stops reading stops the fake.
 */
export function sendMedia(res: ServerResponse, bytes: Uint8Array, headers: Readonly<Record<string, string>>, chunked = false): void {
  const body = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (!chunked) {
    res.writeHead(200, { ...headers, 'content-length': String(body.length) }).end(body);
    return;
  }
  res.writeHead(200, headers);
  let offset = 0;
  const pump = (): void => {
    while (offset < body.length) {
      if (res.destroyed) return;
      const piece = body.subarray(offset, offset + 64 * 1024);
      offset += piece.length;
      if (!res.write(piece)) {
        res.once('drain', pump);
        return;
      }
    }
    res.end();
  };
  pump();
}
