import { createDifyBackend } from '../../lib/llm/dify';
import { APOLOGY } from '../../lib/llm/retry';
import type { LlmBackend } from '../../lib/llm/types';
import { difySteps, FAKE_DIFY_THOUGHT, startFakeDify, type FakeDify } from '../fakes/fake-dify';
import { answerText, collect, errorOf, fixtureText, llmRequest, recordingSleep, types } from './helpers';

let fake: FakeDify;

beforeEach(async () => {
  fake = await startFakeDify({ apiKey: 'app-test' });
});

afterEach(async () => {
  await fake.close();
});

function backend(maxRetries = 2, idleTimeoutMs?: number): { llm: LlmBackend; waits: number[] } {
  const { sleep, waits } = recordingSleep();
  return {
    llm: createDifyBackend({ apiKey: 'app-test', baseUrl: fake.baseUrl }, { fetch, sleep }, { maxRetries, ...(idleTimeoutMs === undefined ? {} : { idleTimeoutMs }) }),
    waits,
  };
}

describe('Dify backend: streaming', () => {
  it('streams the answer in order, reporting the new conversation first', async () => {
    // Arrange
    fake.answer = () => '你好！This is a streamed Dify answer.';
    fake.chunkChars = 4;
    const { llm } = backend();

    // Act
    const events = await collect(llm.stream(llmRequest({ userId: 'wx:alice', text: 'hi' })));

    // Assert
    const [first] = events;
    expect(first?.type).toBe('conversation');
    expect(answerText(events)).toBe('你好！This is a streamed Dify answer.');
    expect(types(events).filter((type) => type === 'conversation')).toHaveLength(1);
    expect(events[events.length - 1]).toEqual({ type: 'done', finishReason: 'stop' });
    const conversationId = first?.type === 'conversation' ? first.conversationId : '';
    expect(fake.conversations.get(conversationId)?.user).toBe('wx:alice');
  });

  it('sends the documented chat-messages body with the app key', async () => {
    const { llm } = backend();

    await collect(llm.stream(llmRequest({ userId: 'wa:123', text: 'What is Dify?' })));

    expect(fake.lastChatRequest.body).toEqual({
      inputs: {},
      query: 'What is Dify?',
      response_mode: 'streaming',
      conversation_id: '',
      user: 'wa:123',
    });
    expect(fake.lastChatRequest.headers.authorization).toBe('Bearer app-test');
  });

  it('reuses the conversation id from the previous turn', async () => {
    const { llm } = backend();
    const firstTurn = await collect(llm.stream(llmRequest({ text: 'one' })));
    const conversation = firstTurn.find((event) => event.type === 'conversation');
    const conversationId = conversation?.type === 'conversation' ? conversation.conversationId : undefined;

    const secondTurn = await collect(llm.stream(llmRequest({ text: 'two', conversationId })));

    expect(fake.lastChatRequest.conversationId).toBe(conversationId);
    expect(fake.conversations.get(conversationId ?? '')?.queries).toEqual(['one', 'two']);
    expect(secondTurn.filter((event) => event.type === 'conversation')).toEqual([{ type: 'conversation', conversationId }]);
  });

  it.each(['conversation_not_exists', 'not_found'] as const)(
    'starts a new conversation once when the stored one is gone (404 %s)',
    async (code) => {
      fake.conversationNotFoundCode = code;
      const { llm, waits } = backend();

      const events = await collect(llm.stream(llmRequest({ text: 'hello again', conversationId: 'dead-conversation-id' })));

      expect(fake.chatRequests.map((request) => request.conversationId)).toEqual(['dead-conversation-id', '']);
      expect(waits).toEqual([]);
      const reported = events.filter((event) => event.type === 'conversation');
      expect(reported).toHaveLength(1);
      expect(reported[0]).not.toEqual({ type: 'conversation', conversationId: 'dead-conversation-id' });
      expect(answerText(events)).toBe('Echo: hello again');
    },
  );

  it('retries the missing conversation only once', async () => {
    fake.enqueue(
      difySteps.httpError(404, 'conversation_not_exists', 'Conversation Not Exists.'),
      difySteps.httpError(404, 'conversation_not_exists', 'Conversation Not Exists.'),
    );
    const { llm } = backend();

    const events = await collect(llm.stream(llmRequest({ conversationId: 'gone' })));

    expect(fake.chatCalls).toBe(2);
    expect(errorOf(events)).toMatchObject({ retryable: false });
  });

  it('keeps agent_thought out of the answer (agent app)', async () => {
    fake.mode = 'agent';
    fake.answer = () => 'The answer is 42.';
    const { llm } = backend();

    const events = await collect(llm.stream(llmRequest()));

    expect(answerText(events)).toBe('The answer is 42.');
    expect(JSON.stringify(events)).not.toContain(FAKE_DIFY_THOUGHT);
  });

  it('streams a chatflow answer and ignores workflow/node events', async () => {
    fake.mode = 'chatflow';
    fake.answer = () => '长城很长。';
    const { llm } = backend();

    const events = await collect(llm.stream(llmRequest()));

    expect(answerText(events)).toBe('长城很长。');
    expect(types(events).slice(-1)).toEqual(['done']);
  });

  it('falls back to workflow_finished outputs.answer when a chatflow sends no message events', async () => {
    fake.mode = 'chatflow';
    fake.answerOnlyInWorkflowOutputs = true;
    fake.answer = () => 'only in outputs';
    const { llm } = backend();

    const events = await collect(llm.stream(llmRequest()));

    expect(answerText(events)).toBe('only in outputs');
    expect(types(events).slice(-2)).toEqual(['delta', 'done']);
  });

  it('applies message_replace (moderation) to the whole answer', async () => {
    fake.enqueue(difySteps.moderated('something rude', 'This content was blocked.'));
    const { llm } = backend();

    const events = await collect(llm.stream(llmRequest()));

    expect(events).toContainEqual({ type: 'replace', text: 'This content was blocked.' });
    expect(answerText(events)).toBe('This content was blocked.');
    expect(types(events).slice(-1)).toEqual(['done']);
  });

  it('ends with an error event when the stream sends `error`', async () => {
    fake.enqueue(difySteps.streamError('partial ', 'completion_request_error', '[openai] Error: upstream failed', 400));
    const { llm } = backend();

    const events = await collect(llm.stream(llmRequest()));

    expect(answerText(events)).toBe('partial ');
    expect(errorOf(events)).toMatchObject({ code: 'completion_request_error', retryable: false, userMessage: APOLOGY.rejected });
    expect(types(events)).not.toContain('done');
  });

  it('reports a stream cut before message_end as a retryable interruption', async () => {
    fake.enqueue({ kind: 'raw', body: 'data: {"event":"message","conversation_id":"c1","answer":"half"}\n\n' });
    const { llm } = backend();

    const events = await collect(llm.stream(llmRequest()));

    expect(answerText(events)).toBe('half');
    expect(errorOf(events)).toMatchObject({ code: 'stream_interrupted', retryable: true });
  });

  it('ends quietly when the caller aborts', async () => {
    fake.answer = () => 'a fairly long answer that takes a while to stream';
    fake.chunkChars = 3;
    fake.chunkDelayMs = 40;
    const { llm } = backend();
    const controller = new AbortController();

    const events = [];
    for await (const event of llm.stream(llmRequest(), controller.signal)) {
      events.push(event);
      if (event.type === 'delta') controller.abort();
    }

    expect(types(events)).toEqual(['conversation', 'delta']);
  });
});

describe('Dify backend: recorded transcripts', () => {
  it('agent stream: answer from agent_message only, conversation id reported', async () => {
    fake.enqueue({ kind: 'raw', body: fixtureText('dify-agent-stream.sse') });
    const { llm } = backend();

    const events = await collect(llm.stream(llmRequest()));

    expect(events[0]).toEqual({ type: 'conversation', conversationId: '5e7c1a2b-3d4f-4a6b-8c9d-0e1f2a3b4c5d' });
    expect(answerText(events)).toBe('北京今天晴，气温22°C。适合出门散步☀️');
    expect(types(events).slice(-1)).toEqual(['done']);
  });

  it('chatflow stream: answer from message events, not doubled by workflow outputs', async () => {
    fake.enqueue({ kind: 'raw', body: fixtureText('dify-chatflow-stream.sse') });
    const { llm } = backend();

    const events = await collect(llm.stream(llmRequest()));

    expect(answerText(events)).toBe('长城是中国古代修建的宏伟防御工程，全长两万多公里。');
  });

  it('error stream: partial text then a non-retryable error', async () => {
    fake.enqueue({ kind: 'raw', body: fixtureText('dify-error-stream.sse') });
    const { llm } = backend();

    const events = await collect(llm.stream(llmRequest()));

    expect(answerText(events)).toBe('我先想一想');
    expect(errorOf(events)).toMatchObject({ code: 'completion_request_error', retryable: false });
  });
});

describe('Dify backend: HTTP errors and retries', () => {
  it('retries a 429 after retry-after and then answers', async () => {
    fake.enqueue(difySteps.rateLimited({ retryAfterSeconds: 1 }));
    const { llm, waits } = backend();

    const events = await collect(llm.stream(llmRequest({ text: 'x' })));

    expect(waits).toEqual([1000]);
    expect(fake.chatCalls).toBe(2);
    expect(answerText(events)).toBe('Echo: x');
  });

  it('retries a 500 with backoff and then answers', async () => {
    fake.enqueue(difySteps.serverError(502));
    const { llm, waits } = backend();

    const events = await collect(llm.stream(llmRequest({ text: 'y' })));

    expect(waits).toEqual([500]);
    expect(answerText(events)).toBe('Echo: y');
  });

  it('gives up after the retry budget with a retryable error', async () => {
    fake.enqueue(difySteps.serverError(), difySteps.serverError(), difySteps.serverError());
    const { llm, waits } = backend(2);

    const events = await collect(llm.stream(llmRequest()));

    expect(fake.chatCalls).toBe(3);
    expect(waits).toEqual([500, 1000]);
    expect(errorOf(events)).toMatchObject({ retryable: true, userMessage: APOLOGY.unavailable });
  });

  it('does not retry provider_quota_exceeded and apologises for the quota', async () => {
    fake.enqueue(difySteps.quotaExceeded());
    const { llm, waits } = backend();

    const events = await collect(llm.stream(llmRequest()));

    expect(fake.chatCalls).toBe(1);
    expect(waits).toEqual([]);
    expect(errorOf(events)).toMatchObject({ code: 'provider_quota_exceeded', retryable: false, userMessage: APOLOGY.quota });
  });

  it('does not retry other 4xx', async () => {
    fake.enqueue(difySteps.httpError(400, 'invalid_param', 'query is required'));
    const { llm } = backend();

    const events = await collect(llm.stream(llmRequest()));

    expect(fake.chatCalls).toBe(1);
    expect(errorOf(events)).toMatchObject({ code: 'invalid_param', retryable: false, userMessage: APOLOGY.rejected });
  });

  it('treats a wrong app key as misconfiguration', async () => {
    const { sleep } = recordingSleep();
    const llm = createDifyBackend({ apiKey: 'app-wrong', baseUrl: fake.baseUrl }, { fetch, sleep });

    const events = await collect(llm.stream(llmRequest()));

    expect(errorOf(events)).toMatchObject({ code: 'unauthorized', retryable: false, userMessage: APOLOGY.misconfigured });
  });

  it('retries a dropped connection', async () => {
    fake.enqueue({ kind: 'disconnect' });
    const { llm, waits } = backend();

    const events = await collect(llm.stream(llmRequest({ text: 'z' })));

    expect(waits).toEqual([500]);
    expect(answerText(events)).toBe('Echo: z');
  });
});

describe('Dify backend: images', () => {
  it('sends http(s) images as remote_url files', async () => {
    const { llm } = backend();

    await collect(llm.stream(llmRequest({ images: [{ url: 'https://example.com/a.png' }] })));

    expect(fake.lastChatRequest.files).toEqual([{ type: 'image', transfer_method: 'remote_url', url: 'https://example.com/a.png' }]);
  });

  it('uploads data: URL images first and sends them as local_file', async () => {
    const { llm } = backend();
    const bytes = Buffer.from([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]);

    await collect(llm.stream(llmRequest({ userId: 'u-9', images: [{ url: `data:image/png;base64,${bytes.toString('base64')}` }] })));

    expect(fake.uploads).toHaveLength(1);
    const [upload] = fake.uploads;
    expect(upload).toMatchObject({ user: 'u-9', mimeType: 'image/png', filename: 'image-0.png' });
    expect(Buffer.from(upload?.bytes ?? []).equals(bytes)).toBe(true);
    expect(fake.lastChatRequest.files).toEqual([{ type: 'image', transfer_method: 'local_file', upload_file_id: upload?.id }]);
  });
});

describe('Dify backend: forgetConversation and transcription', () => {
  it('deletes the conversation with the user in the JSON body', async () => {
    const id = fake.createConversation('wx:bob');
    const { llm } = backend();

    await llm.forgetConversation?.('wx:bob', id);

    expect(fake.deletedConversations).toEqual([id]);
    expect(fake.conversations.has(id)).toBe(false);
    const request = fake.requests[fake.requests.length - 1];
    expect(request?.method).toBe('DELETE');
    expect(JSON.parse(request?.body ?? '')).toEqual({ user: 'wx:bob' });
  });

  it('ignores a 404 for an already-deleted conversation', async () => {
    const { llm } = backend();

    await expect(llm.forgetConversation?.('wx:bob', 'no-such-id')).resolves.toBeUndefined();
    expect(fake.deleteCalls).toBe(1);
  });

  it('throws an LlmCallError for other failures', async () => {
    const { sleep } = recordingSleep();
    const llm = createDifyBackend({ apiKey: 'app-wrong', baseUrl: fake.baseUrl }, { fetch, sleep });

    await expect(llm.forgetConversation?.('u', 'c')).rejects.toMatchObject({ name: 'LlmCallError', retryable: false });
  });

  it('offers no transcription (Dify audio-to-text rejects OGG/AMR)', () => {
    const { llm } = backend();

    expect(llm).not.toHaveProperty('transcribe');
  });
});

describe('Dify backend: time limits', () => {
  const answerEvents = [
    { event: 'message', answer: 'Part one, ' },
    { event: 'message', answer: 'part two' },
    { event: 'message', answer: ' never sent' },
    { event: 'message_end', metadata: {} },
  ];

  it('cuts a stream that goes silent, keeping the text and the conversation id, with one call', async () => {
    // Arrange
    fake.enqueue({ kind: 'events', events: answerEvents, stallAfter: 2 });
    const { llm, waits } = backend(2, 300);

    // Act
    const events = await collect(llm.stream(llmRequest({ userId: 'wx:slow' })));

    // Assert
    expect(answerText(events)).toBe('Part one, part two');
    expect(types(events)).toEqual(['conversation', 'delta', 'delta', 'cut']);
    expect(events.at(-1)).toMatchObject({ type: 'cut', reason: 'idle' });
    expect(fake.chatCalls).toBe(1);
    expect(waits).toEqual([]);
  });

  it("counts Dify's ping keep-alives as activity; the budget still ends the call", async () => {
    // Arrange: silence apart from a ping every 50 ms, which an idle timeout of 300 ms must not cut.
    fake.enqueue({ kind: 'events', events: answerEvents, stallAfter: 1, pingEveryMs: 50 });
    const { llm } = backend(2, 300);

    // Act
    const events = await collect(llm.stream(llmRequest({ budgetMs: 900 })));

    // Assert
    expect(answerText(events)).toBe('Part one, ');
    expect(events.at(-1)).toMatchObject({ type: 'cut', reason: 'deadline' });
    expect(fake.chatCalls).toBe(1);
  });

  it('cuts an app that never answers the request (Dify calls had no timeout)', async () => {
    fake.latencyMs = 60_000;
    const { llm } = backend(2, 200);

    const events = await collect(llm.stream(llmRequest()));

    expect(types(events)).toEqual(['cut']);
    expect(fake.chatCalls).toBe(1);
  });
});
