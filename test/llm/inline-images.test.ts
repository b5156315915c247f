/**
 * Inline images: the placeholder in the JSON body becomes the image's base64 text while the
 * body streams, with an exact Content-Length, the same on every send; other bodies pass as they are.
 */
import { createInlineImages, encodeBase64 } from '../../lib/llm/inline-images';

/** A `fetch` that records each request's headers and whole body, and answers 200. */
function recordingFetch(): { fetch: typeof fetch; sent: { headers: Headers; body: string; duplex: unknown }[] } {
  const sent: { headers: Headers; body: string; duplex: unknown }[] = [];
  const recording: typeof fetch = async (_input, init) => {
    const body = init?.body;
    const text = typeof body === 'string' ? body : body instanceof ReadableStream ? await new Response(body).text() : '';
    sent.push({ headers: new Headers(init?.headers), body: text, duplex: init && 'duplex' in init ? init.duplex : undefined });
    return new Response('{}', { status: 200 });
  };
  return { fetch: recording, sent };
}

describe('encodeBase64', () => {
  it('matches Node for every length remainder and every byte value', () => {
    for (let n = 0; n <= 9; n++) {
      const bytes = new Uint8Array(n).map((_, i) => 250 + i);
      expect(Buffer.from(encodeBase64(bytes)).toString('latin1')).toBe(Buffer.from(bytes).toString('base64'));
    }
    const all = new Uint8Array(256 * 3 + 1).map((_, i) => i % 256);
    expect(Buffer.from(encodeBase64(all)).toString('latin1')).toBe(Buffer.from(all).toString('base64'));
  });
});

describe('createInlineImages', () => {
  it('streams the image as base64 in place of its placeholder, with an exact Content-Length', async () => {
    // Arrange: larger than one encoding slice, not a multiple of 3
    const image = new Uint8Array(200_003).map((_, i) => (i * 13) % 256);
    const inner = recordingFetch();
    const inline = createInlineImages(inner.fetch);
    const url = inline.urlFor(image, 'image/jpeg');
    const body = JSON.stringify({ messages: [{ role: 'user', content: [{ type: 'text', text: '你好' }, { type: 'image_url', image_url: { url } }] }] });

    // Act
    await inline.fetch('http://127.0.0.1:9/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body });

    // Assert
    const sent = inner.sent[0];
    const expected = JSON.stringify({ messages: [{ role: 'user', content: [{ type: 'text', text: '你好' }, { type: 'image_url', image_url: { url: `data:image/jpeg;base64,${Buffer.from(image).toString('base64')}` } }] }] });
    expect(sent?.body).toBe(expected);
    expect(sent?.headers.get('content-length')).toBe(String(Buffer.byteLength(expected)));
    expect(sent?.headers.get('content-type')).toBe('application/json');
    expect(sent?.duplex).toBe('half');
  });

  it('sends the same body again on a second call (a retry)', async () => {
    const inner = recordingFetch();
    const inline = createInlineImages(inner.fetch);
    const body = JSON.stringify({ a: inline.urlFor(new Uint8Array([1, 2, 3, 4]), 'image/png'), b: inline.urlFor(new Uint8Array([5]), 'image/gif') });

    await inline.fetch('http://127.0.0.1:9/x', { method: 'POST', body });
    await inline.fetch('http://127.0.0.1:9/x', { method: 'POST', body });

    expect(inner.sent.map((s) => s.body)).toEqual([
      JSON.stringify({ a: 'data:image/png;base64,AQIDBA==', b: 'data:image/gif;base64,BQ==' }),
      JSON.stringify({ a: 'data:image/png;base64,AQIDBA==', b: 'data:image/gif;base64,BQ==' }),
    ]);
  });

  it('leaves bodies without its placeholders alone, even text that looks like another request\'s', async () => {
    const inner = recordingFetch();
    const other = createInlineImages(recordingFetch().fetch);
    const inline = createInlineImages(inner.fetch);
    inline.urlFor(new Uint8Array([1]), 'image/png');
    const body = JSON.stringify({ text: other.urlFor(new Uint8Array([9]), 'image/png') });

    await inline.fetch('http://127.0.0.1:9/x', { method: 'POST', body });

    expect(inner.sent[0]?.body).toBe(body);
    expect(inner.sent[0]?.duplex).toBeUndefined();
  });
});
