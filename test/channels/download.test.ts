/**
 * readBodyCapped against a real HTTP server on 127.0.0.1: the bytes arrive whole into one
 * buffer, with or without Content-Length (and compressed), and a body over the cap is refused
 * before (declared) or while (streamed) it is read, without reading on.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { MediaTooLargeError, readBodyCapped } from '../../lib/channels/download';

type Route = (req: IncomingMessage, res: ServerResponse) => void;

let server: Server;
let base: string;
let route: Route;
/** Body bytes the server managed to write before the client went away, per request. */
let written: number[];

beforeAll(async () => {
  server = createServer((req, res) => route(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no address');
  base = `http://127.0.0.1:${address.port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

beforeEach(() => {
  written = [];
});

/** Streams `total` bytes in 64 KiB chunks without Content-Length (chunked), counting what got out. */
function streamed(total: number): Route {
  return (_req, res) => {
    res.writeHead(200, { 'content-type': 'audio/ogg' });
    const index = written.push(0) - 1;
    const chunk = Buffer.alloc(64 * 1024, 7);
    const pump = (): void => {
      while ((written[index] ?? 0) < total) {
        if (res.destroyed) return;
        written[index] = (written[index] ?? 0) + chunk.length;
        if (!res.write(chunk)) {
          res.once('drain', pump);
          return;
        }
      }
      res.end();
    };
    pump();
  };
}

describe('readBodyCapped', () => {
  it('reads a body with Content-Length into one buffer of exactly that size', async () => {
    // Arrange
    const body = randomBytes(300_000);
    route = (_req, res) => res.writeHead(200, { 'content-length': String(body.length) }).end(body);

    // Act
    const bytes = await readBodyCapped(await fetch(base), 1_000_000);

    // Assert
    expect(bytes.byteLength).toBe(body.length);
    expect(bytes.buffer.byteLength).toBe(body.length);
    expect(Buffer.from(bytes).equals(body)).toBe(true);
  });

  it('joins a chunked body without Content-Length', async () => {
    // Arrange
    route = streamed(5 * 64 * 1024);

    // Act
    const bytes = await readBodyCapped(await fetch(base), 1_000_000);

    // Assert
    expect(bytes.byteLength).toBe(5 * 64 * 1024);
    expect(bytes.every((b) => b === 7)).toBe(true);
  });

  it('reads the decoded bytes of a compressed body, whose Content-Length counts the compressed ones', async () => {
    // Arrange
    const body = Buffer.alloc(200_000, 'a');
    const gz = gzipSync(body);
    route = (_req, res) => res.writeHead(200, { 'content-encoding': 'gzip', 'content-length': String(gz.length) }).end(gz);

    // Act
    const bytes = await readBodyCapped(await fetch(base), 1_000_000);

    // Assert
    expect(Buffer.from(bytes).equals(body)).toBe(true);
  });

  it('refuses a declared Content-Length over the cap before reading the body', async () => {
    // Arrange
    route = (_req, res) => res.writeHead(200, { 'content-length': String(10_000_000) }).end(Buffer.alloc(10_000_000));

    // Act
    const err = await readBodyCapped(await fetch(base), 1_000_000).catch((e: unknown) => e);

    // Assert
    expect(err).toBeInstanceOf(MediaTooLargeError);
    expect(err).toMatchObject({ bytes: 10_000_000, maxBytes: 1_000_000 });
  });

  it('stops a body without Content-Length as soon as it runs past the cap, and reads no further', async () => {
    // Arrange: 100 MiB offered, 1 MB allowed
    route = streamed(100 * 1024 * 1024);

    // Act
    const err = await readBodyCapped(await fetch(base), 1_000_000).catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 100));

    // Assert: a clear error, and the server could not push much more than the cap (socket buffers)
    expect(err).toBeInstanceOf(MediaTooLargeError);
    expect(err instanceof MediaTooLargeError && err.message).toMatch(/over the 1000000-byte limit/);
    expect(written[0]).toBeLessThan(20 * 1024 * 1024);
  });

  it('fails with the stream error when the connection drops midway (retryable, not "too large")', async () => {
    // Arrange: announces 1 MB, sends 100 KB, then drops the connection
    route = (_req, res) => {
      res.writeHead(200, { 'content-length': String(1_000_000) });
      res.write(Buffer.alloc(100_000), () => res.destroy());
    };

    // Act
    const err = await readBodyCapped(await fetch(base), 5_000_000).catch((e: unknown) => e);

    // Assert: undici's own TypeError ("terminated"), which callers treat as a network failure
    expect(err).toMatchObject({ name: 'TypeError' });
    expect(err).not.toBeInstanceOf(MediaTooLargeError);
  });

  it('returns an empty buffer for an empty body', async () => {
    route = (_req, res) => res.writeHead(200, { 'content-length': '0' }).end();

    const bytes = await readBodyCapped(await fetch(base), 10);

    expect(bytes.byteLength).toBe(0);
  });
});
