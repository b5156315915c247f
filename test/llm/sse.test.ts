import { decodeUtf8, parseSseText, readSseEvents, SseParser, type SseEvent } from '../../lib/llm/sse';
import { isJsonObject, stringField } from '../../lib/json';
import { seededRandom } from '../support/random-text';
import { chunked, fixtureBytes } from './helpers';

const FIXTURES = [
  'openai-chat-stream.sse',
  'openai-tool-call-stream.sse',
  'dify-agent-stream.sse',
  'dify-chatflow-stream.sse',
  'dify-error-stream.sse',
] as const;

async function eventsOf(source: AsyncIterable<Uint8Array>): Promise<SseEvent[]> {
  const out: SseEvent[] = [];
  for await (const event of readSseEvents(source)) out.push(event);
  return out;
}

/** `field` of each event's JSON data (events whose data is not a JSON object are skipped). */
function jsonField(events: readonly SseEvent[], field: string): string[] {
  const out: string[] = [];
  for (const event of events) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(event.data);
    } catch {
      continue;
    }
    if (isJsonObject(parsed)) out.push(stringField(parsed, field) ?? '');
  }
  return out;
}

function difyAnswer(events: readonly SseEvent[], eventName: string): string {
  const parsed = events.map((event) => {
    const json: unknown = JSON.parse(event.data);
    return isJsonObject(json) ? json : {};
  });
  return parsed
    .filter((json) => json['event'] === eventName)
    .map((json) => stringField(json, 'answer') ?? '')
    .join('');
}

describe('SseParser (unit)', () => {
  it('dispatches on a blank line and defaults the event name to "message"', () => {
    // Arrange
    const parser = new SseParser();

    // Act
    const events = parser.push('data: hello\n\n');

    // Assert
    expect(events).toEqual([{ event: 'message', data: 'hello', id: undefined }]);
  });

  it('joins multi-line data with \\n and keeps the event name and id', () => {
    const events = parseSseText('event: update\nid: 7\ndata: line one\ndata: line two\ndata:\n\n');

    expect(events).toEqual([{ event: 'update', data: 'line one\nline two\n', id: '7' }]);
  });

  it('strips exactly one space after the colon', () => {
    const events = parseSseText('data:no-space\n\ndata:  two spaces\n\n');

    expect(events.map((event) => event.data)).toEqual(['no-space', ' two spaces']);
  });

  it('ignores comments, retry and unknown fields', () => {
    const events = parseSseText(': keep-alive\nretry: 3000\nfoo: bar\ndata: x\n: another comment\n\n');

    expect(events).toEqual([{ event: 'message', data: 'x', id: undefined }]);
  });

  it('does not dispatch an event that has no data (Dify "event: ping")', () => {
    const events = parseSseText('event: ping\n\nevent: ping\n\ndata: real\n\n');

    expect(events).toEqual([{ event: 'message', data: 'real', id: undefined }]);
  });

  it('treats a line without a colon as a field with an empty value', () => {
    const events = parseSseText('data\n\n');

    expect(events).toEqual([{ event: 'message', data: '', id: undefined }]);
  });

  it.each([
    ['LF', '\n'],
    ['CRLF', '\r\n'],
    ['CR', '\r'],
  ])('accepts %s line endings', (_name, eol) => {
    const events = parseSseText(`event: a${eol}data: 1${eol}${eol}data: 2${eol}${eol}`);

    expect(events.map((event) => [event.event, event.data])).toEqual([
      ['a', '1'],
      ['message', '2'],
    ]);
  });

  it('handles a CRLF split between two chunks as one line ending', () => {
    const parser = new SseParser();

    const first = parser.push('data: a\r');
    const second = parser.push('\n\r');
    const third = parser.push('\ndata: b\r\n\r\n');

    // The LF completes "data: a\r\n"; the next CR alone is the blank line that dispatches.
    expect(first).toEqual([]);
    expect(second.map((event) => event.data)).toEqual(['a']);
    // The LF after that CR must not count as a second blank line.
    expect(third.map((event) => event.data)).toEqual(['b']);
  });

  it('keeps a pending CR across an empty chunk', () => {
    const parser = new SseParser();

    const events = [...parser.push('data: a\r'), ...parser.push(''), ...parser.push('\ndata: b\n\n')];

    expect(events.map((event) => event.data)).toEqual(['a\nb']);
  });

  it('skips a leading byte-order mark', () => {
    expect(parseSseText('\uFEFFdata: x\n\n').map((event) => event.data)).toEqual(['x']);
  });

  it('flushes a final event that lacks the closing blank line at end of stream', () => {
    const parser = new SseParser();

    const pushed = parser.push('data: first\n\ndata: last');
    const ended = parser.end();

    expect(pushed.map((event) => event.data)).toEqual(['first']);
    expect(ended.map((event) => event.data)).toEqual(['last']);
  });

  it('keeps partial lines until their end arrives', () => {
    const parser = new SseParser();

    const a = parser.push('da');
    const b = parser.push('ta: hel');
    const c = parser.push('lo\n');
    const d = parser.push('\n');

    expect([a, b, c]).toEqual([[], [], []]);
    expect(d.map((event) => event.data)).toEqual(['hello']);
  });
});

describe('decodeUtf8', () => {
  it('reassembles a Chinese character split across byte chunks', async () => {
    // Arrange: "你好" is e4 bd a0 e5 a5 bd; split inside both characters.
    const bytes = new TextEncoder().encode('你好');

    // Act
    const pieces: string[] = [];
    for await (const text of decodeUtf8(chunked(bytes, [1, 4, 5]))) pieces.push(text);

    // Assert
    expect(pieces.join('')).toBe('你好');
    expect(pieces.join('')).not.toContain('\uFFFD');
  });

  it('reads a WHATWG ReadableStream (fetch Response.body)', async () => {
    const body = new Response('data: 你好\n\n').body;
    if (!body) throw new Error('no body');

    const events: SseEvent[] = [];
    for await (const event of readSseEvents(body)) events.push(event);

    expect(events.map((event) => event.data)).toEqual(['你好']);
  });
});

describe('recorded transcripts', () => {
  it('OpenAI chat stream: role chunk, content chunks, finish chunk, usage chunk, [DONE]', async () => {
    const events = await eventsOf(chunked(fixtureBytes('openai-chat-stream.sse'), []));

    expect(events).toHaveLength(10);
    expect(events[events.length - 1]?.data).toBe('[DONE]');
    const parsed = events.slice(0, -1).map((event) => {
      const json: unknown = JSON.parse(event.data);
      return isJsonObject(json) ? json : {};
    });
    const last = parsed[parsed.length - 1];
    expect(last?.['choices']).toEqual([]); // include_usage chunk
    expect(last?.['usage']).toEqual(expect.objectContaining({ total_tokens: 39 }));
  });

  it('Dify agent stream: pings produce no events; agent_message carries the answer', async () => {
    const events = await eventsOf(chunked(fixtureBytes('dify-agent-stream.sse'), []));

    expect(jsonField(events, 'event')).toEqual([
      'agent_thought',
      'agent_thought',
      'agent_thought',
      'agent_thought',
      'agent_message',
      'agent_message',
      'agent_message',
      'agent_message',
      'agent_message',
      'agent_thought',
      'message_end',
    ]);
    expect(difyAnswer(events, 'agent_message')).toBe('北京今天晴，气温22°C。适合出门散步☀️');
  });

  it('Dify chatflow stream: workflow and node events around message chunks', async () => {
    const events = await eventsOf(chunked(fixtureBytes('dify-chatflow-stream.sse'), []));

    expect(jsonField(events, 'event')).toEqual([
      'workflow_started',
      'node_started',
      'node_finished',
      'node_started',
      'message',
      'message',
      'message',
      'message',
      'message',
      'node_finished',
      'node_started',
      'node_finished',
      'workflow_finished',
      'message_end',
    ]);
    expect(difyAnswer(events, 'message')).toBe('长城是中国古代修建的宏伟防御工程，全长两万多公里。');
  });

  it('Dify error stream: \\u-escaped JSON and a final error event', async () => {
    const events = await eventsOf(chunked(fixtureBytes('dify-error-stream.sse'), []));

    expect(jsonField(events, 'event')).toEqual(['message', 'message', 'error']);
    expect(difyAnswer(events, 'message')).toBe('我先想一想');
    expect(jsonField(events, 'code')).toEqual(['', '', 'completion_request_error']);
  });
});

describe.each(FIXTURES)('%s split anywhere', (name) => {
  const bytes = fixtureBytes(name);
  const expected = parseSseText(bytes.toString('utf8'));

  it('parses identically when split into two chunks at every byte offset', async () => {
    // Many offsets fall inside multibyte characters (Chinese, emoji) and inside CRLF-free "\n\n".
    for (let offset = 0; offset <= bytes.length; offset++) {
      const events = await eventsOf(chunked(bytes, [offset]));
      if (JSON.stringify(events) !== JSON.stringify(expected)) {
        throw new Error(`mismatch when split at byte ${offset}`);
      }
    }
    expect(expected.length).toBeGreaterThan(2);
  });

  it('parses identically when fed one byte at a time', async () => {
    const offsets = Array.from({ length: bytes.length - 1 }, (_, index) => index + 1);

    expect(await eventsOf(chunked(bytes, offsets))).toEqual(expected);
  });

  it('parses identically for 60 random splittings per line-ending style (fixed seed): LF, CRLF, CR', async () => {
    const random = seededRandom(0x5eed);
    const variants = [
      bytes,
      Buffer.from(bytes.toString('utf8').replace(/\n/g, '\r\n'), 'utf8'),
      Buffer.from(bytes.toString('utf8').replace(/\n/g, '\r'), 'utf8'),
    ];
    for (const variant of variants) {
      for (let run = 0; run < 60; run++) {
        const offsets: number[] = [];
        for (let at = 1 + Math.floor(random() * 40); at < variant.length; at += 1 + Math.floor(random() * 40)) offsets.push(at);
        const events = await eventsOf(chunked(variant, offsets));
        if (JSON.stringify(events) !== JSON.stringify(expected)) {
          throw new Error(`mismatch for run ${run} with offsets ${offsets.join(',')}`);
        }
      }
    }
    expect(expected.length).toBeGreaterThan(2);
  });
});
