/**
 * A minimal OpenAI-compatible server for the memory benchmark (bench/memory.ts): it takes
 * transcription uploads (`POST /v1/audio/transcriptions`, multipart) and streamed chat
 * requests (`POST /v1/chat/completions`), and records how many media bytes really arrived
 * (the upload's size, the decoded size of each `data:` image URL), so a run that did not
 * send the whole media does not count as a measurement.
 */
import { createServer } from 'node:http';

/** What the server received. */
export interface MediaLlmLog {
  /** Body bytes of each transcription request (multipart framing included), in order. */
  uploads: number[];
  /** Decoded bytes of each `data:` image URL of each chat request, in order. */
  images: number[];
  /** Chat requests. */
  chats: number;
}

/** A running server. */
export interface MediaLlm {
  baseUrl: string;
  log: MediaLlmLog;
  /** Answer the next `n` transcription requests with a 503 (a retry must send the same bytes again). */
  failUploads(n: number): void;
  close(): Promise<void>;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Decoded sizes of the `data:...;base64,` image URLs in a chat request body. */
function imageSizes(body: unknown): number[] {
  const sizes: number[] = [];
  const messages = isRecord(body) && Array.isArray(body.messages) ? body.messages : [];
  for (const message of messages) {
    const content: unknown = isRecord(message) ? message.content : undefined;
    if (!Array.isArray(content)) continue;
    for (const part of content) {
      const image: unknown = isRecord(part) ? part.image_url : undefined;
      const url = isRecord(image) && typeof image.url === 'string' ? image.url : '';
      const comma = url.indexOf(',');
      if (!url.startsWith('data:') || comma < 0) continue;
      sizes.push(Buffer.byteLength(url.slice(comma + 1), 'base64'));
    }
  }
  return sizes;
}

function sse(text: string): string {
  const chunk = (delta: Record<string, unknown>, finish: string | null): string =>
    `data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 0, model: 'm', choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
  return `${chunk({ content: text }, null)}${chunk({}, 'stop')}data: [DONE]\n\n`;
}

/** Starts the server on 127.0.0.1 at a random port. */
export async function startMediaLlm(): Promise<MediaLlm> {
  const log: MediaLlmLog = { uploads: [], images: [], chats: 0 };
  let failing = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    const transcription = (req.url ?? '').endsWith('/audio/transcriptions');
    req.on('data', (c: Buffer) => {
      bytes += c.length;
      // Only chat bodies are parsed; an upload is counted, not kept.
      if (!transcription) chunks.push(c);
    });
    req.on('end', () => {
      if (transcription) {
        log.uploads.push(bytes);
        if (failing > 0) {
          failing--;
          res.writeHead(503, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: 'overloaded', type: 'server_error', param: null, code: null } }));
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ text: 'What is the weather like today?' }));
        return;
      }
      log.chats++;
      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: 'body is not JSON', type: 'invalid_request_error', param: null, code: null } }));
        return;
      }
      log.images.push(...imageSizes(body));
      res.writeHead(200, { 'content-type': 'text/event-stream' }).end(sse('Here is a short answer.'));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no address');
  return {
    baseUrl: `http://127.0.0.1:${address.port}/v1`,
    log,
    failUploads: (n) => {
      failing = n;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
