import type { LlmConfig } from '../../lib/config';
import { createDevBackend, DEV_LABEL, DEV_LONG_MARKER, DEV_SLOW_MARKER, devAnswer, splitIntoChunks } from '../../lib/llm/dev';
import { createLlmBackend } from '../../lib/llm/index';
import { answerText, collect, llmRequest, recordingSleep, types } from './helpers';

describe('dev backend', () => {
  it('answers with a labelled echo in at least four chunks, pausing between them', async () => {
    // Arrange
    const { sleep, waits } = recordingSleep();
    const llm = createDevBackend({ chunkDelayMs: 60, sleep });

    // Act
    const events = await collect(llm.stream(llmRequest({ text: 'good morning' })));

    // Assert
    const deltas = events.filter((event) => event.type === 'delta');
    expect(answerText(events)).toBe(`${DEV_LABEL} You said: good morning. (0 earlier turns remembered)`);
    expect(deltas.length).toBeGreaterThanOrEqual(4);
    expect(waits).toEqual(Array.from({ length: deltas.length - 1 }, () => 60));
    expect(types(events).slice(-1)).toEqual(['done']);
  });

  it('waits slowMs before the first chunk of a /dev-slow answer, and only then', async () => {
    // Arrange
    const { sleep, waits } = recordingSleep();
    const llm = createDevBackend({ chunkDelayMs: 5, slowMs: 20_000, sleep });

    // Act
    const slow = await collect(llm.stream(llmRequest({ text: `take your time ${DEV_SLOW_MARKER}` })));
    const slowWaits = [...waits];
    waits.length = 0;
    await collect(llm.stream(llmRequest({ text: 'quick one' })));

    // Assert
    expect(slowWaits[0]).toBe(20_000);
    expect(slowWaits.slice(1).every((ms) => ms === 5)).toBe(true);
    expect(answerText(slow)).toContain(`You said: take your time ${DEV_SLOW_MARKER}`);
    expect(waits.every((ms) => ms === 5)).toBe(true);
  });

  it('counts the remembered turns and mentions images', () => {
    const text = devAnswer(
      llmRequest({
        text: 'and this?',
        images: [{ url: 'https://example.com/a.png' }],
        history: [
          { role: 'user', content: 'q' },
          { role: 'assistant', content: 'a' },
        ],
      }),
    );

    expect(text).toBe(`${DEV_LABEL} You said: and this? (1 image received, not looked at). (2 earlier turns remembered)`);
  });

  it('is deterministic', async () => {
    const llm = createDevBackend({ chunkDelayMs: 0, sleep: async () => undefined });

    const first = await collect(llm.stream(llmRequest({ text: 'same' })));
    const second = await collect(llm.stream(llmRequest({ text: 'same' })));

    expect(second).toEqual(first);
  });

  it(`gives a long, mixed, deterministic answer for ${DEV_LONG_MARKER}`, async () => {
    const llm = createDevBackend({ chunkDelayMs: 0, sleep: async () => undefined });

    const text = answerText(await collect(llm.stream(llmRequest({ text: `show me ${DEV_LONG_MARKER}` }))));

    expect(text.startsWith(DEV_LABEL)).toBe(true);
    expect(text.length).toBeGreaterThan(4000);
    expect(text.split('\n\n').length).toBeGreaterThan(10);
    expect(text).toMatch(/[\u4e00-\u9fff]/); // Chinese, for byte-based paging
    expect(text).toContain('🚀');
    expect(answerText(await collect(llm.stream(llmRequest({ text: DEV_LONG_MARKER }))))).toBe(text);
  });

  it('never splits an emoji across chunks', () => {
    const chunks = splitIntoChunks('🚀🌍✨🚀🌍✨🚀🌍', 4);

    expect(chunks.join('')).toBe('🚀🌍✨🚀🌍✨🚀🌍');
    for (const chunk of chunks) expect(chunk).not.toMatch(/^[\uDC00-\uDFFF]|[\uD800-\uDBFF]$/);
  });

  it('stops when aborted', async () => {
    const controller = new AbortController();
    const llm = createDevBackend({ chunkDelayMs: 1, sleep: async () => undefined });

    const events = [];
    for await (const event of llm.stream(llmRequest(), controller.signal)) {
      events.push(event);
      controller.abort();
    }

    expect(types(events)).toEqual(['delta']);
  });

  it('offers an offline stand-in transcription', async () => {
    const llm = createDevBackend({ chunkDelayMs: 0, sleep: async () => undefined });

    const text = await llm.transcribe?.(new Uint8Array(10), 'voice.amr', 'audio/amr');

    expect(text).toContain('10 bytes');
  });
});

describe('createLlmBackend', () => {
  const base: LlmConfig = {
    provider: 'dev',
    systemPrompt: 'p',
    historyTurns: 10,
    openai: { apiKey: 'sk', baseUrl: 'http://127.0.0.1:9/v1', model: 'm', vision: false, transcriptionModel: '', maxRetries: 0 },
    dify: { apiKey: 'app', baseUrl: 'http://127.0.0.1:9/v1' },
    devChunkDelayMs: 0,
    streamIdleTimeoutMs: 30_000,
    maxTokens: 1024,
    timeMarginMs: 20_000,
    minCallTimeMs: 30_000,
    historyMaxBytes: 65_536,
    devSlowMs: 0,
  };
  const deps = { fetch, sleep: async () => undefined };

  it.each(['openai', 'dify', 'dev'] as const)('selects the %s backend', (provider) => {
    expect(createLlmBackend({ ...base, provider }, deps).name).toBe(provider);
  });

  it('states what each backend can do: Dify keeps the history, OpenAI reads images only with vision on', () => {
    expect(createLlmBackend({ ...base, provider: 'dify' }, deps).capabilities).toEqual({ keepsHistory: true, acceptsImages: false });
    expect(createLlmBackend({ ...base, provider: 'dev' }, deps).capabilities).toEqual({ keepsHistory: false, acceptsImages: false });
    expect(createLlmBackend({ ...base, provider: 'openai' }, deps).capabilities).toEqual({ keepsHistory: false, acceptsImages: false });
    const openai = { apiKey: 'sk', baseUrl: 'http://127.0.0.1:9/v1', model: 'm', vision: true, transcriptionModel: '', maxRetries: 0 };
    const vision: LlmConfig = { ...base, provider: 'openai', openai };
    expect(createLlmBackend(vision, deps).capabilities).toEqual({ keepsHistory: false, acceptsImages: true });
  });

  it('refuses a provider whose settings are missing', () => {
    expect(() => createLlmBackend({ ...base, provider: 'openai', openai: undefined }, deps)).toThrow(/OpenAI settings are missing/);
    expect(() => createLlmBackend({ ...base, provider: 'dify', dify: undefined }, deps)).toThrow(/Dify settings are missing/);
  });
});
