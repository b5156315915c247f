/**
 * Reads a media download into one buffer with a byte cap, without holding the bytes twice.
 *
 * The worker's memory size (and so its cost, billed per MB while it waits on the LLM) is set
 * by its largest media: a 25 MB voice note. `Response.arrayBuffer()` keeps every network
 * chunk and then joins them into one buffer (twice the size at the peak). Here, when the
 * response says its `Content-Length` (Meta, Twilio and WeChat do), the buffer is allocated
 * once at that size and each chunk is copied into it as it arrives; without one, the chunks
 * are kept and joined once at the end. Either way the download stops as soon as the body
 * runs past the cap. The bytes are then handed on as views (`subarray`), never copied again:
 * see `transcribe` in lib/llm/openai.ts and lib/llm/inline-images.ts.
 *
 * @module
 */

/** The body was longer than allowed: the download was stopped (a permanent failure). */
export class MediaTooLargeError extends Error {
  constructor(
    /** Bytes received (or declared by `Content-Length`) when the download was stopped. */
    readonly bytes: number,
    /** The cap. */
    readonly maxBytes: number,
  ) {
    super(`media of ${bytes} bytes is over the ${maxBytes}-byte limit`);
    this.name = 'MediaTooLargeError';
  }
}

/**
 * Reads `res`'s body, refusing more than `maxBytes`: a `Content-Length` over the cap fails
 * before any byte is read, and a body that runs past the cap or past its own `Content-Length`
 * is cancelled as soon as it does, so a huge or endless body costs at most `maxBytes`.
 * @throws MediaTooLargeError over the cap; the stream's own error when the download fails
 *   midway (the connection dropped, the timeout fired).
 */
export async function readBodyCapped(res: Response, maxBytes: number): Promise<Uint8Array> {
  const header = res.headers.get('content-length');
  const declared = header === null || header.trim() === '' ? Number.NaN : Number(header);
  // A compressed body's Content-Length counts the compressed bytes; fetch hands over decoded ones.
  const encoded = (res.headers.get('content-encoding') ?? 'identity').trim().toLowerCase() !== 'identity';
  if (declared > maxBytes) {
    await res.body?.cancel().catch(() => undefined);
    throw new MediaTooLargeError(declared, maxBytes);
  }
  if (!res.body) return new Uint8Array(0);
  const reader = res.body.getReader();
  // One allocation of the announced size; chunks only when the size is unknown.
  const sized = !encoded && Number.isSafeInteger(declared) && declared >= 0 ? new Uint8Array(declared) : undefined;
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const result = await reader.read();
    if (result.done) break;
    // fetch bodies are byte streams (Node's types say `any`).
    const chunk: unknown = result.value;
    if (!(chunk instanceof Uint8Array)) {
      await reader.cancel().catch(() => undefined);
      throw new TypeError('response body chunk is not bytes');
    }
    if (total + chunk.byteLength > maxBytes) {
      await reader.cancel().catch(() => undefined);
      throw new MediaTooLargeError(total + chunk.byteLength, maxBytes);
    }
    if (sized) {
      if (total + chunk.byteLength > sized.byteLength) {
        await reader.cancel().catch(() => undefined);
        throw new TypeError(`the body is longer than its Content-Length of ${sized.byteLength} bytes`);
      }
      sized.set(chunk, total);
    } else {
      chunks.push(chunk);
    }
    total += chunk.byteLength;
  }
  if (sized) {
    // A shorter body than announced is a broken download, not a smaller file.
    if (total !== sized.byteLength) throw new TypeError(`the body ended after ${total} of its ${sized.byteLength} bytes`);
    return sized;
  }
  if (chunks.length === 1 && chunks[0]) return chunks[0];
  const joined = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    joined.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return joined;
}
