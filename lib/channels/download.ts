/**
 * Reads a media download into one `Blob` with a byte cap, without ever holding the bytes twice.
 *
 * The worker's memory size (and so its cost, billed per MB while it waits on the LLM) is set
 * by its largest media: a 25 MB voice note. `Response.arrayBuffer()` keeps every network
 * chunk and then copies them into one buffer (twice the size at the peak), and a `File` built
 * from that buffer for the transcription upload copies it once more. Here each chunk is
 * moved into a small `Blob` as it arrives (the chunk is then garbage) and the parts are joined
 * into one `Blob` by reference (Node does not copy the parts of a `Blob` made of `Blob`s), so
 * the bytes exist once, outside the JavaScript heap, from download to upload; a `File` made
 * from that `Blob` for the multipart upload is again a reference, and a retry re-reads it.
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

/** Chunks gathered before they are moved into one part (fewer, larger parts; no large copies). */
const PART_BYTES = 1024 * 1024;

/**
 * Reads `res`'s body into a `Blob` of type `type`, refusing more than `maxBytes`: a
 * `Content-Length` over the cap fails before any byte is read, and a body that runs past the
 * cap (no or a false `Content-Length`) is cancelled as soon as it does, so a huge or endless
 * body costs at most `maxBytes` of memory.
 * @throws MediaTooLargeError over the cap; the stream's own error when the download fails midway.
 */
export async function readBodyCapped(res: Response, maxBytes: number, type = ''): Promise<Blob> {
  const declared = Number(res.headers.get('content-length') ?? '');
  if (Number.isFinite(declared) && declared > maxBytes) {
    await res.body?.cancel().catch(() => undefined);
    throw new MediaTooLargeError(declared, maxBytes);
  }
  if (!res.body) return new Blob([], { type });
  const reader = res.body.getReader();
  const parts: Blob[] = [];
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    // fetch bodies are byte streams (Node's types say `any`).
    const chunk: unknown = value;
    if (!(chunk instanceof Uint8Array)) {
      await reader.cancel().catch(() => undefined);
      throw new TypeError('response body chunk is not bytes');
    }
    total += chunk.byteLength;
    if (total > maxBytes) {
      await reader.cancel().catch(() => undefined);
      throw new MediaTooLargeError(total, maxBytes);
    }
    pending.push(chunk);
    pendingBytes += chunk.byteLength;
    if (pendingBytes >= PART_BYTES) {
      parts.push(new Blob(pending));
      pending = [];
      pendingBytes = 0;
    }
  }
  if (pending.length > 0) parts.push(new Blob(pending));
  return new Blob(parts, { type });
}

/** The first `n` bytes of `blob` (for magic-byte sniffing), without reading the rest. */
export async function headBytes(blob: Blob, n: number): Promise<Uint8Array> {
  return new Uint8Array(await blob.slice(0, n).arrayBuffer());
}
