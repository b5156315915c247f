/**
 * A fake OpenAI-compatible server: a real `node:http` server on 127.0.0.1 (random port) that speaks
 * enough of the API for the gateway: streaming and non-streaming `POST /v1/chat/completions`
 * (text and tool calls), `POST /v1/audio/transcriptions`, and scripted failures.
 *
 * Usage:
 * ```ts
 * const openai = await startFakeOpenAi({ answer: (req) => `Echo: ${req.lastUserText}` });
 * openai.enqueue(openAiSteps.rateLimited({ retryAfterSeconds: 2 }));   // first call fails
 * // … point OPENAI_BASE_URL at openai.baseUrl …
 * expect(openai.chatCalls).toBe(2);
 * await openai.close();
 * ```
 * Knobs (`answer`, `chunkDelayMs`, `latencyMs`, …) are plain mutable properties: change them mid-test.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders, IncomingMessage, Server, ServerResponse } from 'node:http';
import { tryParseJson } from '../../lib/json';
import {
  closeServer,
  isRecord,
  listenLocal,
  parseFormData,
  pause,
  pieces,
  playBasicStep,
  receive,
  sendResponse,
  serveWith,
  type FakeBasicStep,
  type FakeHttpResponse,
  type FakeRecordedRequest,
} from '../../local/fakes/fake-http';

export type { FakeHttpResponse, FakeRecordedRequest } from '../../local/fakes/fake-http';

/** One tool call the fake model makes. */
export interface FakeToolCall {
  /** Defaults to `call_<random>`. */
  id?: string;
  name: string;
  /** The arguments JSON text; streamed in small fragments like the real API. */
  arguments: string;
}

/**
 * What the fake does for one chat call, consumed in order from {@link FakeOpenAi.script}; when the
 * script is empty the fake answers with {@link FakeOpenAi.toolCalls} / {@link FakeOpenAi.answer}.
 * - `http`: reply with this status/headers/body (errors such as 429, 500, insufficient_quota);
 * - `text`: stream this text (optionally dropping the connection after `dropAfterChunks` content chunks,
 *   or going silent with the connection open after `stallAfterChunks`, until the client leaves);
 * - `toolCalls`: stream these tool calls with `finish_reason: "tool_calls"`;
 * - `raw`: send this SSE text verbatim (e.g. a recorded transcript);
 * - `disconnect`: destroy the socket without answering (a network error).
 */
export type FakeOpenAiStep =
  | FakeBasicStep
  | { kind: 'text'; text: string; finishReason?: string; dropAfterChunks?: number; stallAfterChunks?: number }
  | { kind: 'toolCalls'; calls: readonly FakeToolCall[] };

/** One chat message as the fake received it. */
export interface FakeChatMessage {
  role: string;
  /** `content` as sent: a string, an array of content parts, or null. */
  content: unknown;
  /** The text of `content` (string content, or the `text` parts joined). */
  text: string;
  /** `tool_calls` of an assistant message, as sent. */
  toolCalls: unknown;
  /** `tool_call_id` of a `tool` message. */
  toolCallId: string | undefined;
}

/** A chat-completions request as the fake received it. */
export interface FakeChatRequest {
  model: string;
  stream: boolean;
  messages: FakeChatMessage[];
  /** Names of the function tools offered. */
  toolNames: string[];
  /** The text of the last `user` message. */
  lastUserText: string;
  /** The parsed JSON body. */
  body: Readonly<Record<string, unknown>>;
  headers: IncomingHttpHeaders;
}

/** A transcription request as the fake received it. */
export interface FakeTranscriptionRequest {
  model: string;
  filename: string;
  mimeType: string;
  bytes: Uint8Array;
  headers: IncomingHttpHeaders;
}

/** Options of {@link startFakeOpenAi}; each becomes a mutable property of the fake. */
export interface FakeOpenAiOptions {
  /** When set, requests without `Authorization: Bearer <apiKey>` get a 401 like OpenAI's. */
  apiKey?: string;
  /** The answer text for a chat call (default: `Echo: <last user text>`). */
  answer?: (request: FakeChatRequest) => string;
  /** Tool calls to make instead of answering (default: none). Consulted before `answer`. */
  toolCalls?: (request: FakeChatRequest) => readonly FakeToolCall[] | undefined;
  /** Pause between streamed chunks (default 0). */
  chunkDelayMs?: number;
  /** Pause before the response headers, i.e. time to first byte (default 0). */
  latencyMs?: number;
  /** Characters (code points) per content chunk (default 8). */
  chunkChars?: number;
  /** Text returned by `/audio/transcriptions` (default `fake transcription`). */
  transcriptionText?: string;
  /** Initial chat script (see {@link FakeOpenAiStep}). */
  script?: readonly FakeOpenAiStep[];
  /** Responses for `/audio/transcriptions`, consumed before answering normally. */
  transcriptionScript?: readonly FakeHttpResponse[];
}

/** OpenAI-shaped error bodies and steps for scripting failures. */
export const openAiSteps = {
  /** 429 rate limit (`rate_limit_exceeded`), optionally with `retry-after` / `retry-after-ms`. */
  rateLimited(opts: { retryAfterSeconds?: number; retryAfterMs?: number } = {}): FakeOpenAiStep {
    const headers: Record<string, string> = {};
    if (opts.retryAfterSeconds !== undefined) headers['retry-after'] = String(opts.retryAfterSeconds);
    if (opts.retryAfterMs !== undefined) headers['retry-after-ms'] = String(opts.retryAfterMs);
    return {
      kind: 'http',
      response: {
        status: 429,
        headers,
        body: {
          error: {
            message:
              'Rate limit reached for gpt-4o-mini in organization org-fake on requests per min (RPM): Limit 3, Used 3, Requested 1.',
            type: 'requests',
            param: null,
            code: 'rate_limit_exceeded',
          },
        },
      },
    };
  },
  /** 429 `insufficient_quota`: the account is out of credit (not a rate limit). */
  insufficientQuota(): FakeOpenAiStep {
    return {
      kind: 'http',
      response: {
        status: 429,
        body: {
          error: {
            message: 'You exceeded your current quota, please check your plan and billing details.',
            type: 'insufficient_quota',
            param: null,
            code: 'insufficient_quota',
          },
        },
      },
    };
  },
  /** A 5xx server error (default 500). */
  serverError(status = 500): FakeOpenAiStep {
    return {
      kind: 'http',
      response: {
        status,
        body: { error: { message: 'The server had an error while processing your request. Sorry about that!', type: 'server_error', param: null, code: null } },
      },
    };
  },
  /** A 400 invalid request (default code `invalid_request_error`-typed, e.g. context too long). */
  badRequest(message = "This model's maximum context length is 128000 tokens.", code: string | null = 'context_length_exceeded'): FakeOpenAiStep {
    return { kind: 'http', response: { status: 400, body: { error: { message, type: 'invalid_request_error', param: 'messages', code } } } };
  },
  /** Stream `text` (a one-off answer). */
  text(text: string, finishReason = 'stop'): FakeOpenAiStep {
    return { kind: 'text', text, finishReason };
  },
  /** Make these tool calls. */
  toolCalls(...calls: FakeToolCall[]): FakeOpenAiStep {
    return { kind: 'toolCalls', calls };
  },
} as const;

/**
 * A `toolCalls` knob that makes `calls` whenever the last message is the user's (so after the
 * tool results come back, the fake answers with text instead of calling the tools again).
 */
export function callToolsOnce(...calls: FakeToolCall[]): (request: FakeChatRequest) => readonly FakeToolCall[] | undefined {
  return (request) => (request.messages[request.messages.length - 1]?.role === 'user' ? calls : undefined);
}

function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  const texts: string[] = [];
  for (const part of content) {
    if (isRecord(part) && part['type'] === 'text' && typeof part['text'] === 'string') texts.push(part['text']);
  }
  return texts.join('\n');
}

function toChatRequest(body: Record<string, unknown>, headers: IncomingHttpHeaders): FakeChatRequest {
  const rawMessages = Array.isArray(body['messages']) ? body['messages'] : [];
  const messages: FakeChatMessage[] = rawMessages.filter(isRecord).map((m) => ({
    role: typeof m['role'] === 'string' ? m['role'] : '',
    content: m['content'],
    text: textOf(m['content']),
    toolCalls: m['tool_calls'],
    toolCallId: typeof m['tool_call_id'] === 'string' ? m['tool_call_id'] : undefined,
  }));
  const rawTools = Array.isArray(body['tools']) ? body['tools'] : [];
  const toolNames: string[] = [];
  for (const tool of rawTools) {
    const fn = isRecord(tool) ? tool['function'] : undefined;
    if (isRecord(fn) && typeof fn['name'] === 'string') toolNames.push(fn['name']);
  }
  const lastUser = [...messages].reverse().find((m) => m.role === 'user');
  return {
    model: typeof body['model'] === 'string' ? body['model'] : '',
    stream: body['stream'] === true,
    messages,
    toolNames,
    lastUserText: lastUser?.text ?? '',
    body,
    headers,
  };
}

/** A running fake OpenAI server. Create with {@link startFakeOpenAi}. */
export class FakeOpenAi {
  /** Base URL including `/v1`, for `OPENAI_BASE_URL` / `OpenAiConfig.baseUrl`. */
  readonly baseUrl: string;
  /** Every request received, in order. */
  readonly requests: FakeRecordedRequest[] = [];
  /** Every chat-completions request received (including failed/scripted ones), in order. */
  readonly chatRequests: FakeChatRequest[] = [];
  /** Every transcription request received, in order. */
  readonly transcriptionRequests: FakeTranscriptionRequest[] = [];
  /** Pending chat steps, consumed first-in first-out. */
  script: FakeOpenAiStep[];
  /** Pending transcription responses, consumed first-in first-out. */
  transcriptionScript: FakeHttpResponse[];
  // The knobs below are documented on FakeOpenAiOptions; change them freely mid-test.
  apiKey: string | undefined;
  answer: (request: FakeChatRequest) => string;
  toolCalls: (request: FakeChatRequest) => readonly FakeToolCall[] | undefined;
  chunkDelayMs: number;
  latencyMs: number;
  chunkChars: number;
  transcriptionText: string;

  private readonly server: Server;
  private readonly closing = new AbortController();

  /** @internal use {@link startFakeOpenAi}. */
  constructor(server: Server, baseUrl: string, opts: FakeOpenAiOptions) {
    this.server = server;
    this.baseUrl = baseUrl;
    this.apiKey = opts.apiKey;
    this.answer = opts.answer ?? ((request) => `Echo: ${request.lastUserText}`);
    this.toolCalls = opts.toolCalls ?? (() => undefined);
    this.chunkDelayMs = opts.chunkDelayMs ?? 0;
    this.latencyMs = opts.latencyMs ?? 0;
    this.chunkChars = opts.chunkChars ?? 8;
    this.transcriptionText = opts.transcriptionText ?? 'fake transcription';
    this.script = [...(opts.script ?? [])];
    this.transcriptionScript = [...(opts.transcriptionScript ?? [])];
    serveWith(server, (req, res) => this.handle(req, res));
  }

  /** Number of chat-completions calls received. */
  get chatCalls(): number {
    return this.chatRequests.length;
  }

  /** Number of transcription calls received. */
  get transcriptionCalls(): number {
    return this.transcriptionRequests.length;
  }

  /** The most recent chat request (throws when there is none, to keep tests short). */
  get lastChatRequest(): FakeChatRequest {
    const last = this.chatRequests[this.chatRequests.length - 1];
    if (!last) throw new Error('the fake OpenAI server has received no chat request');
    return last;
  }

  /** Appends steps to the chat script. */
  enqueue(...steps: FakeOpenAiStep[]): this {
    this.script.push(...steps);
    return this;
  }

  /** Stops the server, dropping open connections and pending delays. */
  async close(): Promise<void> {
    this.closing.abort();
    await closeServer(this.server);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { raw, path, signal } = await receive(req, res, this.requests, this.closing.signal);

    if (this.apiKey !== undefined && req.headers.authorization !== `Bearer ${this.apiKey}`) {
      send(res, {
        status: 401,
        body: { error: { message: 'Incorrect API key provided.', type: 'invalid_request_error', param: null, code: 'invalid_api_key' } },
      });
      return;
    }
    if (req.method === 'POST' && path.endsWith('/chat/completions')) {
      await this.chat(raw.toString('utf8'), req.headers, res, signal);
    } else if (req.method === 'POST' && path.endsWith('/audio/transcriptions')) {
      await this.transcription(raw, req.headers, res, signal);
    } else {
      send(res, { status: 404, body: { error: { message: `Unknown request URL: ${req.method} ${path}`, type: 'invalid_request_error', param: null, code: 'unknown_url' } } });
    }
  }

  private async chat(text: string, headers: IncomingHttpHeaders, res: ServerResponse, signal: AbortSignal): Promise<void> {
    const json = tryParseJson(text);
    if (!isRecord(json)) {
      send(res, { status: 400, body: { error: { message: 'We could not parse the JSON body of your request.', type: 'invalid_request_error', param: null, code: null } } });
      return;
    }
    const request = toChatRequest(json, headers);
    this.chatRequests.push(request);
    const step: FakeOpenAiStep = this.script.shift() ?? this.defaultStep(request);
    if (!(await pause(this.latencyMs, signal))) return;

    if (playBasicStep(res, step, send)) return;
    const id = `chatcmpl-${randomUUID().replace(/-/g, '').slice(0, 24)}`;
    const created = Math.floor(Date.now() / 1000);
    const envelope = (choices: unknown[], usage: unknown = null): Record<string, unknown> => ({
      id,
      object: 'chat.completion.chunk',
      created,
      model: request.model,
      system_fingerprint: 'fp_fake',
      choices,
      usage,
    });
    const choice = (delta: unknown, finishReason: string | null = null): unknown => ({ index: 0, delta, logprobs: null, finish_reason: finishReason });

    if (!request.stream) {
      // Non-streaming: one chat.completion object.
      const message =
        step.kind === 'toolCalls'
          ? { role: 'assistant', content: null, tool_calls: step.calls.map((c) => ({ id: c.id ?? `call_${randomUUID().slice(0, 8)}`, type: 'function', function: { name: c.name, arguments: c.arguments } })) }
          : { role: 'assistant', content: step.text, refusal: null };
      send(res, {
        status: 200,
        body: {
          id,
          object: 'chat.completion',
          created,
          model: request.model,
          choices: [{ index: 0, message, logprobs: null, finish_reason: step.kind === 'toolCalls' ? 'tool_calls' : (step.finishReason ?? 'stop') }],
          usage: { prompt_tokens: 10, completion_tokens: 10, total_tokens: 20 },
        },
      });
      return;
    }

    const events: Array<Record<string, unknown> | 'drop' | 'stall'> = [];
    if (step.kind === 'toolCalls') {
      step.calls.forEach((call, index) => {
        events.push(
          envelope([
            choice({
              ...(index === 0 ? { role: 'assistant', content: null } : {}),
              tool_calls: [{ index, id: call.id ?? `call_${randomUUID().replace(/-/g, '').slice(0, 16)}`, type: 'function', function: { name: call.name, arguments: '' } }],
            }),
          ]),
        );
        for (const fragment of pieces(call.arguments, 5)) {
          events.push(envelope([choice({ tool_calls: [{ index, function: { arguments: fragment } }] })]));
        }
      });
      events.push(envelope([choice({}, 'tool_calls')]));
    } else {
      events.push(envelope([choice({ role: 'assistant', content: '', refusal: null })]));
      pieces(step.text, this.chunkChars).forEach((piece, index) => {
        if (step.dropAfterChunks !== undefined && index === step.dropAfterChunks) events.push('drop');
        if (step.stallAfterChunks !== undefined && index === step.stallAfterChunks) events.push('stall');
        events.push(envelope([choice({ content: piece })]));
      });
      events.push(envelope([choice({}, step.finishReason ?? 'stop')]));
    }
    const streamOptions = json['stream_options'];
    if (isRecord(streamOptions) && streamOptions['include_usage'] === true) {
      events.push(envelope([], { prompt_tokens: 10, completion_tokens: 10, total_tokens: 20 }));
    }

    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' });
    for (const [index, event] of events.entries()) {
      if (event === 'stall') {
        // Silence with the connection open: only the client's own timeout ends this.
        while (await pause(60_000, signal));
        return;
      }
      if (event === 'drop') {
        // Close the TCP connection mid-body (after what was written has been flushed):
        // the client sees a truncated chunked response, like a proxy or network cut.
        res.socket?.end();
        return;
      }
      if (index > 0 && !(await pause(this.chunkDelayMs, signal))) return;
      await new Promise<void>((resolve) => res.write(`data: ${JSON.stringify(event)}\n\n`, () => resolve()));
    }
    res.end('data: [DONE]\n\n');
  }

  private defaultStep(request: FakeChatRequest): FakeOpenAiStep {
    const calls = this.toolCalls(request);
    if (calls && calls.length > 0) return { kind: 'toolCalls', calls };
    return { kind: 'text', text: this.answer(request) };
  }

  private async transcription(raw: Buffer, headers: IncomingHttpHeaders, res: ServerResponse, signal: AbortSignal): Promise<void> {
    const form = await parseFormData(raw, headers['content-type']);
    const file = form?.get('file');
    const model = form?.get('model');
    if (!form || !file || typeof file === 'string') {
      send(res, { status: 400, body: { error: { message: "Missing required parameter: 'file'.", type: 'invalid_request_error', param: 'file', code: null } } });
      return;
    }
    this.transcriptionRequests.push({
      model: typeof model === 'string' ? model : '',
      filename: file.name,
      mimeType: file.type,
      bytes: new Uint8Array(await file.arrayBuffer()),
      headers,
    });
    const scripted = this.transcriptionScript.shift();
    if (!(await pause(this.latencyMs, signal))) return;
    send(res, scripted ?? { status: 200, body: { text: this.transcriptionText } });
  }
}

function send(res: ServerResponse, response: FakeHttpResponse): void {
  sendResponse(res, response, { 'x-request-id': `req_${randomUUID().replace(/-/g, '')}` });
}

/**
 * Starts a fake OpenAI server on 127.0.0.1 (random port).
 * Always `await fake.close()` (e.g. in `afterEach`): it closes every connection.
 */
export async function startFakeOpenAi(opts: FakeOpenAiOptions = {}): Promise<FakeOpenAi> {
  const { server, port } = await listenLocal('fake OpenAI server has no TCP address');
  return new FakeOpenAi(server, `http://127.0.0.1:${port}/v1`, opts);
}
