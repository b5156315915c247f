import type { OpenAiConfig } from '../../lib/config';
import { createOpenAiBackend, DEFAULT_MAX_TOKENS, MAX_TOOL_ROUNDS, type OpenAiBackendOptions } from '../../lib/llm/openai';
import { APOLOGY, LlmCallError, MAX_SERVER_WAIT_MS } from '../../lib/llm/retry';
import type { LlmBackend, ToolDefinition } from '../../lib/llm/types';
import { callToolsOnce, openAiSteps, startFakeOpenAi, type FakeOpenAi } from '../fakes/fake-openai';
import { answerText, collect, errorOf, fixtureText, llmRequest, recordingSleep, types } from './helpers';

let fake: FakeOpenAi;

beforeEach(async () => {
  fake = await startFakeOpenAi({ apiKey: 'sk-test' });
});

afterEach(async () => {
  await fake.close();
});

function config(overrides: Partial<OpenAiConfig> = {}): OpenAiConfig {
  return {
    apiKey: 'sk-test',
    baseUrl: fake.baseUrl,
    model: 'gpt-4o-mini',
    vision: true,
    transcriptionModel: 'whisper-1',
    maxRetries: 3,
    ...overrides,
  };
}

function backend(overrides: Partial<OpenAiConfig> = {}, options: OpenAiBackendOptions = {}): { llm: LlmBackend; waits: number[] } {
  const { sleep, waits } = recordingSleep();
  return { llm: createOpenAiBackend(config(overrides), { fetch, sleep }, options), waits };
}

/** A tool that records its calls. */
function weatherTool(result = 'sunny, 22°C'): ToolDefinition & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    name: 'get_weather',
    description: 'Current weather for a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
    run: async (args: string) => {
      calls.push(args);
      return result;
    },
  };
}

describe('OpenAI backend: streaming', () => {
  it('streams the answer as ordered deltas, then done', async () => {
    // Arrange
    fake.answer = () => 'Hello there, 你好世界! This answer arrives in pieces.';
    fake.chunkChars = 5;
    const { llm } = backend();

    // Act
    const events = await collect(llm.stream(llmRequest({ text: 'hi' })));

    // Assert
    expect(answerText(events)).toBe('Hello there, 你好世界! This answer arrives in pieces.');
    expect(events.filter((event) => event.type === 'delta').length).toBeGreaterThan(5);
    expect(events[events.length - 1]).toEqual({ type: 'done', finishReason: 'stop' });
    expect(fake.lastChatRequest.model).toBe('gpt-4o-mini');
    expect(fake.lastChatRequest.stream).toBe(true);
    expect(fake.lastChatRequest.headers.authorization).toBe('Bearer sk-test');
  });

  it('sends the system prompt, the history in order, then the user text', async () => {
    const { llm } = backend();

    await collect(
      llm.stream(
        llmRequest({
          systemPrompt: 'Be brief.',
          history: [
            { role: 'user', content: 'first question' },
            { role: 'assistant', content: 'first answer' },
          ],
          text: 'second question',
        }),
      ),
    );

    expect(fake.lastChatRequest.messages.map((message) => [message.role, message.content])).toEqual([
      ['system', 'Be brief.'],
      ['user', 'first question'],
      ['assistant', 'first answer'],
      ['user', 'second question'],
    ]);
  });

  it('sends images as image_url content parts when the model has vision', async () => {
    const { llm } = backend({ vision: true });

    await collect(
      llm.stream(
        llmRequest({
          text: 'What is this?',
          images: [{ url: 'https://example.com/cat.jpg' }, { url: 'data:image/png;base64,iVBORw0KGgo=' }],
        }),
      ),
    );

    expect(fake.lastChatRequest.messages[fake.lastChatRequest.messages.length - 1]?.content).toEqual([
      { type: 'text', text: 'What is this?' },
      { type: 'image_url', image_url: { url: 'https://example.com/cat.jpg' } },
      { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } },
    ]);
  });

  it('sends downloaded image bytes as a base64 data URL, and the same image again on a retry', async () => {
    // Arrange: bytes of every value, a length that is not a multiple of 3; the first call fails
    const bytes = new Uint8Array(100_001).map((_, i) => (i * 7) % 256);
    fake.enqueue(openAiSteps.serverError(503));
    const { llm, waits } = backend({ vision: true });

    // Act
    const events = await collect(llm.stream(llmRequest({ text: 'What is this?', images: [{ bytes, mimeType: 'image/png' }] })));

    // Assert
    expect(types(events)).toContain('done');
    expect(waits).toHaveLength(1);
    expect(fake.chatRequests).toHaveLength(2);
    const expected = [
      { type: 'text', text: 'What is this?' },
      { type: 'image_url', image_url: { url: `data:image/png;base64,${Buffer.from(bytes).toString('base64')}` } },
    ];
    for (const request of fake.chatRequests) expect(request.messages[request.messages.length - 1]?.content).toEqual(expected);
  });

  it('tells a text-only model about images instead of sending parts it would reject', async () => {
    const { llm } = backend({ vision: false });

    await collect(llm.stream(llmRequest({ text: 'Look', images: [{ url: 'https://example.com/cat.jpg' }] })));

    const last = fake.lastChatRequest.messages[fake.lastChatRequest.messages.length - 1];
    expect(typeof last?.content).toBe('string');
    expect(last?.text).toMatch(/^Look\n\n\[The user sent 1 image, but you cannot see images/);
  });

  it('streams a recorded transcript (role chunk, usage chunk with empty choices, [DONE])', async () => {
    fake.enqueue({ kind: 'raw', body: fixtureText('openai-chat-stream.sse') });
    const { llm } = backend();

    const events = await collect(llm.stream(llmRequest()));

    expect(answerText(events)).toBe('你好！很高兴见到你。Paris is the capital of France 🇫🇷.');
    expect(types(events).slice(-1)).toEqual(['done']);
  });

  it('ends quietly when the caller aborts', async () => {
    fake.answer = () => 'one two three four five six seven eight nine ten';
    fake.chunkChars = 4;
    fake.chunkDelayMs = 40;
    const { llm } = backend();
    const controller = new AbortController();

    const events = [];
    for await (const event of llm.stream(llmRequest(), controller.signal)) {
      events.push(event);
      if (events.length === 1) controller.abort();
    }

    expect(types(events)).toEqual(['delta']);
  });
});

describe('OpenAI backend: retries and errors', () => {
  it('retries a 429 after the retry-after header (seconds) and then answers', async () => {
    fake.enqueue(openAiSteps.rateLimited({ retryAfterSeconds: 2 }));
    const { llm, waits } = backend();

    const events = await collect(llm.stream(llmRequest({ text: 'ping' })));

    expect(waits).toEqual([2000]);
    expect(fake.chatCalls).toBe(2);
    expect(answerText(events)).toBe('Echo: ping');
    expect(types(events)).not.toContain('error');
  });

  it('prefers retry-after-ms over retry-after', async () => {
    fake.enqueue(openAiSteps.rateLimited({ retryAfterSeconds: 2, retryAfterMs: 150 }));
    const { llm, waits } = backend();

    await collect(llm.stream(llmRequest()));

    expect(waits).toEqual([150]);
  });

  it('retries a 500 with exponential backoff and then answers', async () => {
    fake.enqueue(openAiSteps.serverError(500), openAiSteps.serverError(503));
    const { llm, waits } = backend();

    const events = await collect(llm.stream(llmRequest({ text: 'again' })));

    expect(waits).toEqual([500, 1000]);
    expect(fake.chatCalls).toBe(3);
    expect(answerText(events)).toBe('Echo: again');
  });

  it('gives up after maxRetries with a retryable error and an apology', async () => {
    fake.enqueue(openAiSteps.serverError(), openAiSteps.serverError(), openAiSteps.serverError());
    const { llm, waits } = backend({ maxRetries: 2 });

    const events = await collect(llm.stream(llmRequest()));

    expect(fake.chatCalls).toBe(3);
    expect(waits).toEqual([500, 1000]);
    expect(errorOf(events)).toMatchObject({ retryable: true, userMessage: APOLOGY.unavailable });
  });

  it('does not retry insufficient_quota and apologises for the quota', async () => {
    fake.enqueue(openAiSteps.insufficientQuota());
    const { llm, waits } = backend();

    const events = await collect(llm.stream(llmRequest()));

    expect(fake.chatCalls).toBe(1);
    expect(waits).toEqual([]);
    expect(events).toEqual([
      expect.objectContaining({
        type: 'error',
        code: 'insufficient_quota',
        retryable: false,
        userMessage: 'Sorry, the assistant is over its usage quota right now. Please try again later.',
      }),
    ]);
  });

  it('does not retry a 400', async () => {
    fake.enqueue(openAiSteps.badRequest());
    const { llm, waits } = backend();

    const events = await collect(llm.stream(llmRequest()));

    expect(fake.chatCalls).toBe(1);
    expect(waits).toEqual([]);
    expect(errorOf(events)).toMatchObject({ code: 'context_length_exceeded', retryable: false, userMessage: APOLOGY.rejected });
  });

  it('does not retry a wrong API key (401)', async () => {
    const { llm } = backend({ apiKey: 'sk-wrong' });

    const events = await collect(llm.stream(llmRequest()));

    expect(fake.chatCalls).toBe(0); // rejected before reaching the chat handler
    expect(errorOf(events)).toMatchObject({ code: 'http_401', retryable: false, userMessage: APOLOGY.misconfigured });
  });

  it('retries a dropped connection', async () => {
    fake.enqueue({ kind: 'disconnect' });
    const { llm, waits } = backend();

    const events = await collect(llm.stream(llmRequest({ text: 'net' })));

    expect(fake.chatCalls).toBe(2);
    expect(waits).toEqual([500]);
    expect(answerText(events)).toBe('Echo: net');
  });

  it('does not retry once text has been streamed (a retry would repeat it)', async () => {
    fake.enqueue({ kind: 'text', text: 'abcdefghijklmnop', dropAfterChunks: 1 });
    fake.chunkChars = 4;
    const { llm } = backend();

    const events = await collect(llm.stream(llmRequest()));

    expect(fake.chatCalls).toBe(1);
    expect(answerText(events)).toBe('abcd');
    expect(errorOf(events)).toMatchObject({ code: 'stream_interrupted', retryable: true, userMessage: APOLOGY.interrupted });
  });

  it('gives up at once when retry-after is longer than a worker should sleep', async () => {
    fake.enqueue(openAiSteps.rateLimited({ retryAfterSeconds: MAX_SERVER_WAIT_MS / 1000 + 40 }));
    const { llm, waits } = backend();

    const events = await collect(llm.stream(llmRequest()));

    expect(waits).toEqual([]);
    expect(errorOf(events)).toMatchObject({ code: 'rate_limited', retryable: true, userMessage: APOLOGY.busy });
  });
});

describe('OpenAI backend: tools', () => {
  it('runs a streamed tool call and sends the result back to the model', async () => {
    // Arrange
    const tool = weatherTool('sunny, 22°C');
    fake.toolCalls = callToolsOnce({ id: 'call_1', name: 'get_weather', arguments: '{"city":"北京"}' });
    fake.answer = (request) => `Weather: ${request.messages.find((message) => message.role === 'tool')?.text ?? '?'}`;
    const { llm } = backend();

    // Act
    const events = await collect(llm.stream(llmRequest({ text: 'weather in Beijing?', tools: [tool] })));

    // Assert
    expect(tool.calls).toEqual(['{"city":"北京"}']);
    expect(answerText(events)).toBe('Weather: sunny, 22°C');
    expect(fake.chatCalls).toBe(2);
    expect(fake.chatRequests[0]?.toolNames).toEqual(['get_weather']);
    const second = fake.chatRequests[1];
    expect(second?.messages.slice(-2)).toEqual([
      expect.objectContaining({
        role: 'assistant',
        toolCalls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"北京"}' } }],
      }),
      expect.objectContaining({ role: 'tool', toolCallId: 'call_1', content: 'sunny, 22°C' }),
    ]);
    expect(events[events.length - 1]).toEqual({ type: 'done', finishReason: 'stop' });
  });

  it('assembles parallel tool calls from a recorded fragment stream', async () => {
    const weather = weatherTool();
    const timeCalls: string[] = [];
    const clock: ToolDefinition = {
      name: 'get_time',
      description: 'Current time',
      parameters: { type: 'object', properties: { tz: { type: 'string' } } },
      run: async (args) => {
        timeCalls.push(args);
        return '09:00';
      },
    };
    fake.enqueue({ kind: 'raw', body: fixtureText('openai-tool-call-stream.sse') }, openAiSteps.text('It is sunny and 9am.'));
    const { llm } = backend();

    const events = await collect(llm.stream(llmRequest({ tools: [weather, clock] })));

    expect(weather.calls).toEqual(['{"city":"北京","unit":"c"}']);
    expect(timeCalls).toEqual(['{"tz":"Asia/Shanghai"}']);
    const toolMessages = fake.chatRequests[1]?.messages.filter((message) => message.role === 'tool');
    expect(toolMessages?.map((message) => [message.toolCallId, message.text])).toEqual([
      ['call_Qm3xZ1yVb8kR5tW2', 'sunny, 22°C'],
      ['call_Zr7pL0aXc4nM9sQ1', '09:00'],
    ]);
    expect(answerText(events)).toBe('It is sunny and 9am.');
  });

  it('hands tool failures and unknown tools back to the model as text', async () => {
    const broken: ToolDefinition = {
      name: 'broken',
      description: 'Always fails',
      parameters: { type: 'object' },
      run: async () => {
        throw new Error('database down');
      },
    };
    fake.toolCalls = callToolsOnce({ id: 'a', name: 'broken', arguments: '{}' }, { id: 'b', name: 'missing', arguments: '{}' });
    const { llm } = backend();

    const events = await collect(llm.stream(llmRequest({ tools: [broken] })));

    const results = fake.chatRequests[1]?.messages.filter((message) => message.role === 'tool').map((message) => message.text);
    expect(results).toEqual(['Error: the tool failed: database down', 'Error: there is no tool named "missing".']);
    expect(types(events).slice(-1)).toEqual(['done']);
  });

  it(`stops offering tools after ${MAX_TOOL_ROUNDS} rounds (tool_choice "none")`, async () => {
    const tool = weatherTool();
    // A model that would call tools forever, but obeys tool_choice "none".
    fake.toolCalls = (request) => (request.body['tool_choice'] === 'none' ? undefined : [{ name: 'get_weather', arguments: '{"city":"x"}' }]);
    fake.answer = () => 'final answer';
    const { llm } = backend();

    const events = await collect(llm.stream(llmRequest({ tools: [tool] })));

    expect(tool.calls).toHaveLength(MAX_TOOL_ROUNDS);
    expect(fake.chatCalls).toBe(MAX_TOOL_ROUNDS + 1);
    expect(fake.lastChatRequest.body['tool_choice']).toBe('none');
    expect(answerText(events)).toBe('final answer');
  });

  it('does not send tools when the request has none', async () => {
    const { llm } = backend();

    await collect(llm.stream(llmRequest()));

    expect(fake.lastChatRequest.body).not.toHaveProperty('tools');
  });
});

describe('OpenAI backend: transcription', () => {
  it('posts the audio to /audio/transcriptions and returns the text', async () => {
    fake.transcriptionText = '你好，今天天气怎么样？';
    const { llm } = backend({ transcriptionModel: 'gpt-4o-mini-transcribe' });
    const audio = new Uint8Array([0x4f, 0x67, 0x67, 0x53, 0, 2, 0, 0]);

    const text = await llm.transcribe?.(audio, 'voice.ogg', 'audio/ogg');

    expect(text).toBe('你好，今天天气怎么样？');
    expect(fake.transcriptionCalls).toBe(1);
    expect(fake.transcriptionRequests[0]).toMatchObject({ model: 'gpt-4o-mini-transcribe', filename: 'voice.ogg', mimeType: 'audio/ogg' });
    expect(Array.from(fake.transcriptionRequests[0]?.bytes ?? [])).toEqual(Array.from(audio));
  });

  it('retries a 5xx on transcription with the same bytes', async () => {
    // Arrange
    fake.transcriptionScript.push({ status: 503, body: { error: { message: 'overloaded', type: 'server_error', param: null, code: null } } });
    const { llm, waits } = backend();
    const audio = new Uint8Array(300_000).map((_, i) => (i * 31) % 251);

    // Act
    const text = await llm.transcribe?.(audio, 'voice.ogg', 'audio/ogg');

    // Assert
    expect(text).toBe('fake transcription');
    expect(waits).toHaveLength(1);
    expect(fake.transcriptionRequests).toHaveLength(2);
    for (const request of fake.transcriptionRequests) {
      expect(request).toMatchObject({ filename: 'voice.ogg', mimeType: 'audio/ogg' });
      expect(Buffer.from(request.bytes).equals(Buffer.from(audio))).toBe(true);
    }
  });

  it('retries a 429 on transcription', async () => {
    fake.transcriptionScript.push({ status: 429, headers: { 'retry-after': '1' }, body: { error: { message: 'slow down', type: 'requests', param: null, code: 'rate_limit_exceeded' } } });
    const { llm, waits } = backend();

    const text = await llm.transcribe?.(new Uint8Array([1, 2, 3]), 'a.mp3', 'audio/mpeg');

    expect(text).toBe('fake transcription');
    expect(waits).toEqual([1000]);
  });

  it('throws an LlmCallError with an apology when transcription fails for good', async () => {
    fake.transcriptionScript.push({ status: 400, body: { error: { message: 'Invalid file format.', type: 'invalid_request_error', param: null, code: null } } });
    const { llm } = backend();

    await expect(llm.transcribe?.(new Uint8Array([1]), 'a.amr', 'audio/amr')).rejects.toMatchObject({
      name: 'LlmCallError',
      retryable: false,
      userMessage: APOLOGY.rejected,
    });
  });

  it('has no transcribe when no transcription model is configured', () => {
    const { llm } = backend({ transcriptionModel: '' });

    expect(llm).not.toHaveProperty('transcribe');
  });
});

describe('OpenAI backend: time limits and answer cap', () => {
  it('cuts a stream that goes silent after some chunks, keeping the text, with one call', async () => {
    // Arrange: four characters, then silence on an open connection.
    fake.enqueue({ kind: 'text', text: 'abcdefghijklmnop', stallAfterChunks: 1 });
    fake.chunkChars = 4;
    const { llm, waits } = backend({}, { idleTimeoutMs: 300 });

    // Act
    const events = await collect(llm.stream(llmRequest()));

    // Assert
    expect(answerText(events)).toBe('abcd');
    expect(types(events)).toEqual(['delta', 'cut']);
    expect(events.at(-1)).toEqual({ type: 'cut', reason: 'idle', message: 'the LLM sent nothing for 300 ms' });
    expect(fake.chatCalls).toBe(1);
    expect(waits).toEqual([]);
  });

  it('cuts a server that never sends headers, without retrying', async () => {
    fake.latencyMs = 60_000;
    const { llm } = backend({}, { idleTimeoutMs: 200 });

    const events = await collect(llm.stream(llmRequest()));

    expect(types(events)).toEqual(['cut']);
    expect(events[0]).toMatchObject({ type: 'cut', reason: 'idle' });
    expect(fake.chatCalls).toBe(1);
  });

  it('does not count a steady stream as idle, and cuts it when the budget runs out', async () => {
    // Arrange: a chunk every 40 ms (well inside the idle timeout) for far longer than the budget.
    fake.answer = () => 'x'.repeat(2000);
    fake.chunkChars = 2;
    fake.chunkDelayMs = 40;
    const { llm } = backend({}, { idleTimeoutMs: 1000 });

    // Act
    const events = await collect(llm.stream(llmRequest({ budgetMs: 600 })));

    // Assert
    expect(events.at(-1)).toMatchObject({ type: 'cut', reason: 'deadline' });
    const text = answerText(events);
    expect(text.length).toBeGreaterThan(0);
    expect(text.length).toBeLessThan(2000);
    expect(fake.chatCalls).toBe(1);
  });

  it('does not start a retry wait the budget cannot afford', async () => {
    fake.enqueue(openAiSteps.rateLimited({ retryAfterSeconds: 2 }));
    const { llm, waits } = backend();

    const events = await collect(llm.stream(llmRequest({ budgetMs: 1000 })));

    expect(waits).toEqual([]);
    expect(fake.chatCalls).toBe(1);
    expect(errorOf(events)).toMatchObject({ code: 'rate_limited', retryable: true });
  });

  it('still retries a 5xx within the budget and answers', async () => {
    fake.enqueue(openAiSteps.serverError(502));
    const { llm, waits } = backend();

    const events = await collect(llm.stream(llmRequest({ text: 'again', budgetMs: 5000 })));

    expect(waits).toEqual([500]);
    expect(answerText(events)).toBe('Echo: again');
    expect(types(events).at(-1)).toBe('done');
  });

  it('does not count its own pauses (retry backoff, a slow tool) as idle time', async () => {
    // Arrange: a 500 with a 300 ms backoff, then a tool that takes 300 ms; idle timeout 200 ms.
    fake.enqueue(openAiSteps.serverError(500));
    fake.toolCalls = callToolsOnce({ name: 'get_weather', arguments: '{"city":"Paris"}' });
    const slowTool: ToolDefinition = { ...weatherTool(), run: () => new Promise((resolve) => setTimeout(() => resolve('sunny'), 300)) };
    const llm = createOpenAiBackend(config(), { fetch, sleep: () => new Promise((resolve) => setTimeout(resolve, 300)) }, { idleTimeoutMs: 200 });

    // Act
    const events = await collect(llm.stream(llmRequest({ text: 'weather?', tools: [slowTool] })));

    // Assert
    expect(types(events).at(-1)).toBe('done');
    expect(answerText(events)).toBe('Echo: weather?');
    expect(fake.chatCalls).toBe(3);
  });

  it('sends max_tokens (the spelling OpenAI-compatible servers accept) on every call', async () => {
    const { llm } = backend();
    await collect(llm.stream(llmRequest()));
    const { llm: capped } = backend({}, { maxTokens: 300 });

    await collect(capped.stream(llmRequest()));

    expect(fake.chatRequests.map((r) => r.body['max_tokens'])).toEqual([DEFAULT_MAX_TOKENS, 300]);
    expect(fake.lastChatRequest.body).not.toHaveProperty('max_completion_tokens');
  });

  it('reports an answer stopped by the token cap as done with finish reason length', async () => {
    fake.enqueue(openAiSteps.text('a capped answer', 'length'));
    const { llm } = backend();

    const events = await collect(llm.stream(llmRequest()));

    expect(events.at(-1)).toEqual({ type: 'done', finishReason: 'length' });
  });

  it('cuts a transcription that hangs and throws a non-retryable cut error', async () => {
    fake.latencyMs = 60_000;
    const { llm, waits } = backend({}, { idleTimeoutMs: 200 });

    const failure = await llm.transcribe?.(new Uint8Array([1, 2, 3]), 'voice.ogg', 'audio/ogg').catch((err: unknown) => err);

    expect(failure).toBeInstanceOf(LlmCallError);
    expect(failure).toMatchObject({ code: 'idle_timeout', retryable: false });
    expect(fake.transcriptionCalls).toBe(1);
    expect(waits).toEqual([]);
  });
});
