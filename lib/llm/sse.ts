/**
 * Incremental Server-Sent Events parser (pure, no I/O).
 *
 * Follows the WHATWG HTML "event stream interpretation" rules
 * (https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation):
 * - a line ends with CRLF, LF or CR — and a chunk may end between the CR and the LF;
 * - `field:value` drops one leading space from the value; a line without `:` is a field with an empty value;
 * - lines starting with `:` are comments (Dify and OpenAI proxies use them, and `event: ping`, as keep-alives);
 * - `data:` lines accumulate, joined with `\n`; a blank line dispatches the event;
 * - an event whose data buffer is empty is not dispatched (so Dify's bare `event: ping` yields nothing);
 * - a leading U+FEFF byte-order mark is skipped.
 *
 * One deliberate leniency: at end of stream, a final event not followed by a blank line is still
 * dispatched, because some OpenAI-compatible proxies close the connection right after the last `data:` line.
 */

/** One dispatched SSE event. */
export interface SseEvent {
  /** The `event:` field, or `message` when the event had none (the spec's default). */
  event: string;
  /** The `data:` lines joined with `\n`. */
  data: string;
  /** The last `id:` seen (the spec's "last event ID"), or undefined. */
  id: string | undefined;
}

/**
 * Feed text in arbitrary pieces with {@link SseParser.push}; call {@link SseParser.end} when the
 * stream closes. Both return the events completed by that call, in order.
 */
export class SseParser {
  private buffer = '';
  /** The previous chunk ended with CR: a LF starting the next chunk belongs to that line ending. */
  private pendingCr = false;
  private started = false;
  private eventType = '';
  private dataLines: string[] = [];
  private lastId: string | undefined;

  /** Parses `chunk` (decoded text) and returns the events it completes. */
  push(chunk: string): SseEvent[] {
    let text = chunk;
    if (!this.started && text.length > 0) {
      this.started = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    if (text.length === 0) return [];
    if (this.pendingCr && text.startsWith('\n')) text = text.slice(1);
    this.pendingCr = false;
    this.buffer += text;

    const events: SseEvent[] = [];
    let start = 0;
    for (let i = 0; i < this.buffer.length; i++) {
      const ch = this.buffer.charCodeAt(i);
      if (ch !== 0x0a && ch !== 0x0d) continue;
      const line = this.buffer.slice(start, i);
      if (ch === 0x0d) {
        if (i + 1 < this.buffer.length) {
          if (this.buffer.charCodeAt(i + 1) === 0x0a) i++;
        } else {
          // CR is the last character we have: the LF, if any, arrives in the next chunk.
          this.pendingCr = true;
        }
      }
      start = i + 1;
      const event = this.line(line);
      if (event) events.push(event);
    }
    this.buffer = this.buffer.slice(start);
    return events;
  }

  /** Flushes an unterminated last line and event (see the leniency note above). */
  end(): SseEvent[] {
    const events: SseEvent[] = [];
    if (this.buffer.length > 0) {
      const event = this.line(this.buffer);
      if (event) events.push(event);
      this.buffer = '';
    }
    const last = this.dispatch();
    if (last) events.push(last);
    this.pendingCr = false;
    return events;
  }

  private line(line: string): SseEvent | undefined {
    if (line === '') return this.dispatch();
    if (line.startsWith(':')) return undefined; // comment / keep-alive
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    switch (field) {
      case 'data':
        this.dataLines.push(value);
        break;
      case 'event':
        this.eventType = value;
        break;
      case 'id':
        // The spec ignores ids containing NUL.
        if (!value.includes('\0')) this.lastId = value;
        break;
      default:
        // `retry:` and unknown fields carry nothing we use.
        break;
    }
    return undefined;
  }

  private dispatch(): SseEvent | undefined {
    const hadData = this.dataLines.length > 0;
    const event: SseEvent = { event: this.eventType || 'message', data: this.dataLines.join('\n'), id: this.lastId };
    this.eventType = '';
    this.dataLines = [];
    return hadData ? event : undefined;
  }
}

/** Parses a complete SSE text in one go (handy for tests and fixtures). */
export function parseSseText(text: string): SseEvent[] {
  const parser = new SseParser();
  return [...parser.push(text), ...parser.end()];
}

/** A byte source: a WHATWG `ReadableStream` (fetch `Response.body`) or any async iterable of bytes. */
export type ByteSource = ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>;

async function* bytesOf(source: ByteSource): AsyncGenerator<Uint8Array> {
  if ('getReader' in source) {
    const reader = source.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        yield value;
      }
    } finally {
      // Cancelling (not just releasing) frees the connection when the consumer stops early.
      await reader.cancel().catch(() => undefined);
    }
  } else {
    yield* source;
  }
}

/**
 * Decodes UTF-8 bytes to text pieces. `TextDecoder` with `stream: true` holds back an incomplete
 * multibyte sequence (e.g. a Chinese character split across TCP reads) until its remaining bytes arrive.
 */
export async function* decodeUtf8(source: ByteSource): AsyncGenerator<string> {
  const decoder = new TextDecoder('utf-8');
  for await (const bytes of bytesOf(source)) {
    const text = decoder.decode(bytes, { stream: true });
    if (text !== '') yield text;
  }
  const tail = decoder.decode();
  if (tail !== '') yield tail;
}

/** Reads SSE events from a byte stream (decoding UTF-8 incrementally). */
export async function* readSseEvents(source: ByteSource): AsyncGenerator<SseEvent> {
  const parser = new SseParser();
  for await (const text of decodeUtf8(source)) {
    yield* parser.push(text);
  }
  yield* parser.end();
}
