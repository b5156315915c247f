/**
 * Images sent inline (`data:` URLs) in an OpenAI-compatible chat request without building the
 * base64 text in memory.
 *
 * Chat Completions takes an image as an `image_url` content part whose URL may be
 * `data:<type>;base64,<bytes>` (https://platform.openai.com/docs/guides/images-vision). The
 * SDK serialises the request with `JSON.stringify`, so a 25 MB image would be held as bytes,
 * as a 33 MB base64 string, inside a 33 MB JSON string and as a 33 MB encoded body at once,
 * about 125 MB at the peak: more than the worker's whole memory. Instead the message carries
 * a short placeholder where the base64 text goes, and the `fetch` handed to the SDK sends a
 * body whose placeholders are replaced by the image's base64 text, encoded slice by slice as
 * the request streams out, with the exact `Content-Length`. The image stays the one buffer it
 * was downloaded into; a retry builds the body again from it.
 *
 * @module
 */
import { randomUUID } from 'node:crypto';

/** Bytes encoded at a time: a multiple of 3, so slices encode to base64 without padding between them. */
const SLICE_BYTES = 3 * 16 * 1024;

/** Placeholders for the images of one request, and the `fetch` that expands them. */
export interface InlineImages {
  /** The `data:` URL to put in the message for these bytes (a placeholder until sent). */
  readonly urlFor: (bytes: Uint8Array, mimeType: string) => string;
  /** Sends string bodies with placeholders as a stream of the expanded text; anything else as is. */
  readonly fetch: typeof fetch;
}

type Segment = { text: Uint8Array } | { image: Uint8Array };

const base64Length = (bytes: number): number => 4 * Math.ceil(bytes / 3);

const ALPHABET = new TextEncoder().encode('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/');
const PAD = 0x3d;

/**
 * Base64 (RFC 4648 §4) of `bytes`, written straight into the chunk that is sent: no string in
 * between (`toString('base64')` then `Buffer.from` would make two objects per slice to collect).
 */
export function encodeBase64(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(base64Length(bytes.byteLength));
  const at = (i: number): number => bytes[i] ?? 0;
  const letter = (index: number): number => ALPHABET[index & 0x3f] ?? PAD;
  let o = 0;
  let i = 0;
  for (; i + 2 < bytes.byteLength; i += 3) {
    const n = (at(i) << 16) | (at(i + 1) << 8) | at(i + 2);
    out[o++] = letter(n >> 18);
    out[o++] = letter(n >> 12);
    out[o++] = letter(n >> 6);
    out[o++] = letter(n);
  }
  const rest = bytes.byteLength - i;
  if (rest > 0) {
    const n = (at(i) << 16) | (rest === 2 ? at(i + 1) << 8 : 0);
    out[o++] = letter(n >> 18);
    out[o++] = letter(n >> 12);
    out[o++] = rest === 2 ? letter(n >> 6) : PAD;
    out[o++] = PAD;
  }
  return out;
}

/** Streams `segments`: text as it is, images base64-encoded slice by slice. */
function bodyStream(segments: readonly Segment[]): ReadableStream<Uint8Array> {
  const pieces = segments[Symbol.iterator]();
  let current: { image: Uint8Array; offset: number } | undefined;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      for (;;) {
        if (current) {
          const { image, offset } = current;
          if (offset < image.byteLength) {
            const slice = image.subarray(offset, offset + SLICE_BYTES);
            current.offset += SLICE_BYTES;
            controller.enqueue(encodeBase64(slice));
            return;
          }
          current = undefined;
        }
        const next = pieces.next();
        if (next.done) {
          controller.close();
          return;
        }
        if ('text' in next.value) {
          if (next.value.text.byteLength === 0) continue;
          controller.enqueue(next.value.text);
          return;
        }
        current = { image: next.value.image, offset: 0 };
      }
    },
  });
}

/**
 * Creates the placeholders of one request. `inner` is the real `fetch` (the call guard's);
 * placeholders carry a random nonce, so text from the user can never be taken for one.
 */
export function createInlineImages(inner: typeof fetch): InlineImages {
  const nonce = randomUUID().replaceAll('-', '');
  const images: Uint8Array[] = [];
  // Letters and digits only: JSON.stringify leaves it as it is.
  const pattern = new RegExp(`inline${nonce}n(\\d+)x`, 'g');

  function split(body: string): Segment[] | undefined {
    const encoder = new TextEncoder();
    const segments: Segment[] = [];
    let last = 0;
    for (const match of body.matchAll(pattern)) {
      const image = images[Number(match[1])];
      if (!image) continue;
      segments.push({ text: encoder.encode(body.slice(last, match.index)) }, { image });
      last = match.index + match[0].length;
    }
    if (segments.length === 0) return undefined;
    segments.push({ text: encoder.encode(body.slice(last)) });
    return segments;
  }

  const expandingFetch: typeof fetch = (input, init) => {
    const body = init?.body;
    const segments = typeof body === 'string' && images.length > 0 ? split(body) : undefined;
    if (!segments) return inner(input, init);
    const length = segments.reduce((sum, s) => sum + ('text' in s ? s.text.byteLength : base64Length(s.image.byteLength)), 0);
    const headers = new Headers(init?.headers);
    headers.set('content-length', String(length));
    // A stream body needs `duplex: 'half'` (https://fetch.spec.whatwg.org/#dom-requestinit-duplex).
    return inner(input, { ...init, headers, body: bodyStream(segments), duplex: 'half' });
  };

  return {
    urlFor: (bytes, mimeType) => {
      images.push(bytes);
      return `data:${mimeType};base64,inline${nonce}n${images.length - 1}x`;
    },
    fetch: expandingFetch,
  };
}
