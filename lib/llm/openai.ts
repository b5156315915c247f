/**
 * OpenAI-compatible chat backend (OpenAI, Azure-style proxies, vLLM, Ollama, DeepSeek…):
 * streams `POST {baseUrl}/chat/completions`, runs function tools, transcribes audio.
 *
 * The SDK's own retries are off (`maxRetries: 0`): we retry here so the policy is explicit and
 * testable with an injected `sleep`, and so we never retry after answer text has been streamed
 * (a retry would repeat it).
 */
import OpenAI, { APIConnectionError, APIError, toStreamingFile } from 'openai';
import type {
  ChatCompletionContentPart,
  ChatCompletionCreateParamsStreaming,
  ChatCompletionMessageFunctionToolCall,
  ChatCompletionMessageParam,
  ChatCompletionTool,
} from 'openai/resources/chat/completions';
import type { OpenAiConfig } from '../config';
import { createCallGuard, type CallGuard } from './guard';
import { createInlineImages } from './inline-images';
import {
  APOLOGY,
  cutCallError,
  cutEventOf,
  errorEvent,
  isAbortError,
  LlmCallError,
  messageOf,
  retryDelayMs,
  type HeaderSource,
  type LlmErrorEvent,
} from './retry';
import type { ImageInput, LlmBackend, LlmDeps, LlmEvent, LlmRequest, ToolDefinition } from './types';

/**
 * Rounds of tool calls per answer. After this many, the model is called once more with
 * `tool_choice: "none"` so it must answer in text (guards against a model looping on tools).
 */
export const MAX_TOOL_ROUNDS = 3;

/** A tool call assembled from streamed fragments. */
interface AssembledToolCall {
  id: string;
  name: string;
  arguments: string;
}

/** What one model call produced (text already yielded as deltas). */
interface CompletionOutcome {
  content: string;
  finishReason: string;
  toolCalls: AssembledToolCall[];
}

/** How a failed call should be handled. */
interface Classified {
  retryable: boolean;
  headers: HeaderSource | undefined;
  event: LlmErrorEvent;
}

/**
 * Maps an SDK / fetch failure to our policy:
 * - 429 `insufficient_quota`: billing, not rate — OpenAI's error-code guide says retrying will not help;
 * - 429 (rate limit) and 5xx: transient, retried with the server's `retry-after-ms` / `retry-after`;
 * - connection errors and timeouts: transient;
 * - other 4xx (bad request, auth, unknown model, context too long): permanent.
 */
/** Narrows to the SDK's error class with its default type arguments (`instanceof` alone yields `any` ones). */
function isApiError(error: unknown): error is APIError {
  return error instanceof APIError;
}

function classify(error: unknown): Classified {
  if (error instanceof APIConnectionError) {
    return {
      retryable: true,
      headers: undefined,
      event: errorEvent('connection_error', messageOf(error), true, APOLOGY.unavailable),
    };
  }
  if (isApiError(error)) {
    const status = error.status;
    const code = error.code ?? '';
    const headers = error.headers;
    if (code === 'insufficient_quota') {
      return { retryable: false, headers, event: errorEvent('insufficient_quota', error.message, false, APOLOGY.quota) };
    }
    if (status === 429) {
      return { retryable: true, headers, event: errorEvent('rate_limited', error.message, true, APOLOGY.busy) };
    }
    if (status === undefined || status >= 500) {
      // No status: an `error` object sent inside the SSE stream (server-side failure mid-answer).
      return { retryable: true, headers, event: errorEvent('server_error', error.message, true, APOLOGY.unavailable) };
    }
    if (status === 401 || status === 403 || status === 404) {
      return {
        retryable: false,
        headers,
        event: errorEvent(`http_${status}`, error.message, false, APOLOGY.misconfigured),
      };
    }
    return {
      retryable: false,
      headers,
      event: errorEvent(code === '' ? `http_${status}` : code, error.message, false, APOLOGY.rejected),
    };
  }
  // undici raises TypeError("terminated") when the socket drops while the body streams.
  if (error instanceof TypeError) {
    return { retryable: true, headers: undefined, event: errorEvent('network_error', error.message, true, APOLOGY.unavailable) };
  }
  return { retryable: false, headers: undefined, event: errorEvent('internal_error', messageOf(error), false, APOLOGY.unavailable) };
}

/**
 * Builds the chat messages: system prompt, history (oldest first), then the user's turn.
 * `inlineUrl` gives the URL of an image we hold as bytes (see lib/llm/inline-images.ts).
 */
export function buildMessages(request: LlmRequest, vision: boolean, inlineUrl: (bytes: Uint8Array, mimeType: string) => string): ChatCompletionMessageParam[] {
  const messages: ChatCompletionMessageParam[] = [];
  if (request.systemPrompt !== '') messages.push({ role: 'system', content: request.systemPrompt });
  for (const turn of request.history) {
    messages.push(turn.role === 'user' ? { role: 'user', content: turn.content } : { role: 'assistant', content: turn.content });
  }
  if (request.images.length === 0) {
    messages.push({ role: 'user', content: request.text });
  } else if (vision) {
    // Vision input is an array of content parts: text plus `image_url` (https or data: URL).
    const parts: ChatCompletionContentPart[] = [];
    if (request.text !== '') parts.push({ type: 'text', text: request.text });
    const urlOf = (image: ImageInput): string => ('url' in image ? image.url : inlineUrl(image.bytes, image.mimeType));
    for (const image of request.images) parts.push({ type: 'image_url', image_url: { url: urlOf(image) } });
    messages.push({ role: 'user', content: parts });
  } else {
    // A text-only model rejects image parts with a 400; tell it instead, so it can say so politely.
    const count = request.images.length;
    const note = `[The user sent ${count} image${count === 1 ? '' : 's'}, but you cannot see images. Say so briefly.]`;
    messages.push({ role: 'user', content: request.text === '' ? note : `${request.text}\n\n${note}` });
  }
  return messages;
}

function toolSpec(tool: ToolDefinition): ChatCompletionTool {
  return {
    type: 'function',
    function: { name: tool.name, description: tool.description, parameters: { ...tool.parameters } },
  };
}

/** Runs one tool call; failures become text for the model rather than failing the answer. */
async function runTool(tools: readonly ToolDefinition[], call: AssembledToolCall): Promise<string> {
  const tool = tools.find((candidate) => candidate.name === call.name);
  if (!tool) return `Error: there is no tool named "${call.name}".`;
  try {
    return await tool.run(call.arguments === '' ? '{}' : call.arguments);
  } catch (error) {
    return `Error: the tool failed: ${messageOf(error)}`;
  }
}

/** `bytes` as successive views of at most 64 KiB (no copies), for a streamed upload. */
async function* views(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  for (let offset = 0; offset < bytes.byteLength; offset += 65_536) yield bytes.subarray(offset, offset + 65_536);
}

/** Limits of {@link createOpenAiBackend}; see `LLM_STREAM_IDLE_TIMEOUT_MS` and `LLM_MAX_TOKENS`. */
export interface OpenAiBackendOptions {
  /** No byte for this long while a request is in flight cuts the call (default {@link DEFAULT_IDLE_TIMEOUT_MS}). */
  idleTimeoutMs?: number;
  /** `max_tokens` of every chat call (default {@link DEFAULT_MAX_TOKENS}). */
  maxTokens?: number;
}

/** Default idle timeout of an LLM call. */
export const DEFAULT_IDLE_TIMEOUT_MS = 30_000;
/** Default answer cap in tokens. */
export const DEFAULT_MAX_TOKENS = 1024;

/**
 * Creates the OpenAI-compatible backend.
 * @param cfg - key, base URL, model, vision flag, transcription model ('' disables), retry budget.
 * @param deps - `fetch` (handed to the SDK) and `sleep` (retry backoff).
 * @param options - idle timeout and answer cap.
 */
export function createOpenAiBackend(cfg: OpenAiConfig, deps: LlmDeps, options: OpenAiBackendOptions = {}): LlmBackend {
  const idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  const maxTokens = options.maxTokens ?? DEFAULT_MAX_TOKENS;

  /**
   * A client whose requests go through `guard` (the SDK takes its fetch at construction, and
   * constructing one is cheap). Its own `timeout` only covers the wait for headers, so it sits
   * behind the guard's idle timeout and never fires first.
   */
  const clientFor = (guard: CallGuard, fetchFn: typeof fetch = guard.fetch): OpenAI =>
    new OpenAI({ apiKey: cfg.apiKey, baseURL: cfg.baseUrl, fetch: fetchFn, maxRetries: 0, timeout: idleTimeoutMs + 5_000 });

  /** One model call with retries; yields deltas; returns undefined when it ended in error, abort or cut. */
  async function* complete(
    client: OpenAI,
    guard: CallGuard,
    body: ChatCompletionCreateParamsStreaming,
  ): AsyncGenerator<LlmEvent, CompletionOutcome | undefined> {
    const signal = guard.signal;
    for (let attempt = 0; ; attempt++) {
      let emitted = false;
      let content = '';
      let finishReason = '';
      const calls = new Map<number, AssembledToolCall>();
      try {
        const stream = await client.chat.completions.create(body, { signal });
        for await (const chunk of stream) {
          // The `include_usage` chunk (https://platform.openai.com/docs/api-reference/chat/create#chat-create-stream_options)
          // has empty `choices`; servers that ignore the option simply never send it.
          if (chunk.usage) yield { type: 'usage', promptTokens: chunk.usage.prompt_tokens, completionTokens: chunk.usage.completion_tokens };
          const choice = chunk.choices[0];
          if (!choice) continue;
          // `refusal` is the model's explanation when it declines; the user should see it.
          const text = choice.delta.content ?? choice.delta.refusal ?? '';
          if (text !== '') {
            emitted = true;
            content += text;
            yield { type: 'delta', text };
          }
          for (const fragment of choice.delta.tool_calls ?? []) {
            // Tool calls arrive in pieces keyed by `index`: id and name first, then `arguments` fragments.
            const call = calls.get(fragment.index) ?? { id: '', name: '', arguments: '' };
            if (fragment.id) call.id = fragment.id;
            if (fragment.function?.name) call.name += fragment.function.name;
            if (fragment.function?.arguments) call.arguments += fragment.function.arguments;
            calls.set(fragment.index, call);
          }
          if (choice.finish_reason) finishReason = choice.finish_reason;
        }
        // The SDK ends iteration quietly when the signal aborts mid-stream.
        if (signal.aborted) return undefined;
        const toolCalls = [...calls.entries()]
          .sort(([a], [b]) => a - b)
          .map(([index, call]) => ({ ...call, id: call.id === '' ? `call_${index}` : call.id }))
          .filter((call) => call.name !== '');
        return { content, finishReason: finishReason === '' ? 'stop' : finishReason, toolCalls };
      } catch (error) {
        if (isAbortError(error, signal)) return undefined;
        const failure = classify(error);
        if (failure.retryable && !emitted && attempt < cfg.maxRetries) {
          const delay = retryDelayMs(attempt, failure.headers);
          // A wait the budget cannot afford is not worth starting: report the failure now.
          if (delay !== undefined && delay < guard.remainingMs()) {
            await deps.sleep(delay);
            if (signal.aborted) return undefined;
            continue;
          }
        }
        yield emitted
          ? errorEvent('stream_interrupted', failure.event.message, true, APOLOGY.interrupted)
          : failure.event;
        return undefined;
      }
    }
  }

  async function* stream(request: LlmRequest, signal?: AbortSignal): AsyncGenerator<LlmEvent> {
    const guard = createCallGuard({ fetch: deps.fetch, idleMs: idleTimeoutMs, budgetMs: request.budgetMs, signal });
    try {
      // Images held as bytes are streamed into the request body by this fetch.
      const inline = createInlineImages(guard.fetch);
      yield* answer(clientFor(guard, inline.fetch), guard, request, inline.urlFor);
      // Whatever way the SDK ended after the guard fired (quiet end, abort error), say why.
      const cut = cutEventOf(guard);
      if (cut) yield cut;
    } finally {
      guard.dispose();
    }
  }

  /** The tool loop; returns quietly when the guard's signal aborts (the caller reports a cut). */
  async function* answer(client: OpenAI, guard: CallGuard, request: LlmRequest, inlineUrl: (bytes: Uint8Array, mimeType: string) => string): AsyncGenerator<LlmEvent> {
    const messages = buildMessages(request, cfg.vision, inlineUrl);
    const tools = request.tools.length > 0 ? request.tools.map(toolSpec) : undefined;
    let answered = false;
    for (let round = 0; ; round++) {
      // `max_tokens`, not `max_completion_tokens`: OpenAI deprecated it for o-series models,
      // but it is the field every OpenAI-compatible server (vLLM, Ollama, DeepSeek, Azure) accepts
      // (https://platform.openai.com/docs/api-reference/chat/create#chat-create-max_tokens).
      const body: ChatCompletionCreateParamsStreaming = { model: cfg.model, messages: [...messages], stream: true, stream_options: { include_usage: true } };
      // eslint-disable-next-line @typescript-eslint/no-deprecated -- see above: the compatible spelling on purpose
      body.max_tokens = maxTokens;
      if (tools) {
        body.tools = tools;
        if (round >= MAX_TOOL_ROUNDS) body.tool_choice = 'none';
      }
      const outcome = yield* complete(client, guard, body);
      if (!outcome) return;
      if (outcome.content !== '') answered = true;
      if (outcome.toolCalls.length === 0 || !tools || round >= MAX_TOOL_ROUNDS) {
        if (outcome.toolCalls.length > 0 && !answered) {
          yield errorEvent('tool_rounds_exceeded', `model still calling tools after ${MAX_TOOL_ROUNDS} rounds`, false, APOLOGY.rejected);
          return;
        }
        yield { type: 'done', finishReason: outcome.finishReason };
        return;
      }
      // Per the function-calling guide: echo the assistant message with its tool_calls, then one
      // `tool` message per call id, then ask the model again.
      const toolCalls: ChatCompletionMessageFunctionToolCall[] = outcome.toolCalls.map((call) => ({
        id: call.id,
        type: 'function',
        function: { name: call.name, arguments: call.arguments },
      }));
      messages.push({ role: 'assistant', content: outcome.content === '' ? null : outcome.content, tool_calls: toolCalls });
      for (const call of outcome.toolCalls) {
        const result = await runTool(request.tools, call);
        if (guard.signal.aborted) return;
        messages.push({ role: 'tool', tool_call_id: call.id, content: result });
      }
    }
  }

  async function transcribe(audio: Uint8Array, filename: string, mimeType: string, budgetMs?: number): Promise<string> {
    const guard = createCallGuard({ fetch: deps.fetch, idleMs: idleTimeoutMs, budgetMs, signal: undefined });
    const client = clientFor(guard);
    try {
      for (let attempt = 0; ; attempt++) {
        try {
          // The SDK's streaming file encodes the multipart body as it is sent, around a view of
          // `audio`: a `File` would copy the bytes, and sending a FormData body made further
          // copies of them (measured: +75 MB for 25 MB, npm run bench -- memory). Nothing is
          // consumed, so a retry sends the same bytes again.
          const file = toStreamingFile(views(audio), filename, { type: mimeType });
          const result = await client.audio.transcriptions.create({ file, model: cfg.transcriptionModel }, { signal: guard.signal });
          return result.text;
        } catch (error) {
          const cut = cutCallError(guard, error);
          if (cut) throw cut;
          const failure = classify(error);
          if (failure.retryable && attempt < cfg.maxRetries) {
            const delay = retryDelayMs(attempt, failure.headers);
            if (delay !== undefined && delay < guard.remainingMs()) {
              await deps.sleep(delay);
              continue;
            }
          }
          throw new LlmCallError(failure.event, { cause: error });
        }
      }
    } finally {
      guard.dispose();
    }
  }

  const backend: LlmBackend = { name: 'openai', capabilities: { keepsHistory: false, acceptsImages: cfg.vision }, stream };
  if (cfg.transcriptionModel !== '') backend.transcribe = transcribe;
  return backend;
}
