/**
 * A fake Dify app server: a real `node:http` server on 127.0.0.1 (random port) implementing the
 * parts of Dify's Chat App API the gateway uses:
 * - `POST /v1/chat-messages` (streaming SSE; `chat`, `agent` and `chatflow` event shapes), issuing
 *   conversation ids and answering 404 for unknown ones (or ones owned by another `user`);
 * - `DELETE /v1/conversations/{id}` with `{user}`;
 * - `POST /v1/files/upload` (multipart `file`, `user`).
 *
 * Usage:
 * ```ts
 * const dify = await startFakeDify({ mode: 'agent', answer: (req) => `Echo: ${req.query}` });
 * dify.enqueue(difySteps.rateLimited({ retryAfterSeconds: 1 }));
 * // … point DIFY_BASE_URL at dify.baseUrl …
 * expect(dify.chatCalls).toBe(2);
 * await dify.close();
 * ```
 * Knobs (`answer`, `mode`, `chunkDelayMs`, `latencyMs`, …) are plain mutable properties.
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

/** A canned HTTP response. `body`: a string is sent as-is, anything else as JSON. */
export type FakeDifyHttpResponse = FakeHttpResponse;

/** Which kind of Dify app the fake imitates (they stream different events). */
export type FakeDifyMode = 'chat' | 'agent' | 'chatflow';

/**
 * What the fake does for one chat-messages call, consumed in order from {@link FakeDify.script};
 * when the script is empty it answers normally with {@link FakeDify.answer}.
 * - `http`: reply with this status/headers/body (e.g. 429, 500, `provider_quota_exceeded`);
 * - `events`: stream these Dify event objects; `conversation_id`, `message_id`, `task_id` and
 *   `created_at` are filled in when absent (conversation handling as for a normal answer);
 * - `raw`: send this SSE text verbatim (e.g. a recorded transcript), no conversation handling;
 * - `disconnect`: destroy the socket without answering.
 */
export type FakeDifyStep =
  | FakeBasicStep
  | {
      kind: 'events';
      events: readonly Readonly<Record<string, unknown>>[];
      /**
       * After this many events, stop sending (the connection stays open until the client leaves):
       * a stalled app. With `pingEveryMs`, Dify's bare `event: ping` keep-alive still arrives that often.
       */
      stallAfter?: number;
      pingEveryMs?: number;
    };

/** A chat-messages request as the fake received it. */
export interface FakeDifyChatRequest {
  query: string;
  user: string;
  /** `conversation_id` as sent ('' for a new conversation). */
  conversationId: string;
  responseMode: string;
  inputs: unknown;
  /** `files` as sent (empty when absent). */
  files: unknown[];
  body: Readonly<Record<string, unknown>>;
  headers: IncomingHttpHeaders;
}

/** A conversation the fake has issued. */
export interface FakeDifyConversation {
  id: string;
  user: string;
  /** Queries answered in this conversation, oldest first. */
  queries: string[];
}

/** A file upload the fake received. */
export interface FakeDifyUpload {
  id: string;
  user: string;
  filename: string;
  mimeType: string;
  bytes: Uint8Array;
}

/** Any request the fake received. */
export type FakeDifyRecordedRequest = FakeRecordedRequest;

/** Options of {@link startFakeDify}; each becomes a mutable property of the fake. */
export interface FakeDifyOptions {
  /** When set, requests without `Authorization: Bearer <apiKey>` get Dify's 401. */
  apiKey?: string;
  /** Event shapes to stream (default `chat`). */
  mode?: FakeDifyMode;
  /** The answer text (default: `Echo: <query>`). */
  answer?: (request: FakeDifyChatRequest, conversation: FakeDifyConversation) => string;
  /** Pause between streamed events (default 0). */
  chunkDelayMs?: number;
  /** Pause before the response headers (default 0). */
  latencyMs?: number;
  /** Characters (code points) per answer chunk (default 8). */
  chunkChars?: number;
  /** In `chatflow` mode, send the answer only in `workflow_finished.outputs.answer`, no `message` events. */
  answerOnlyInWorkflowOutputs?: boolean;
  /**
   * Body `code` of the 404 for an unknown conversation: `conversation_not_exists` (as Dify's docs
   * list it, default) or `not_found` (what werkzeug's `NotFound("Conversation Not Exists.")` renders).
   */
  conversationNotFoundCode?: 'conversation_not_exists' | 'not_found';
  /** Initial chat script (see {@link FakeDifyStep}). */
  script?: readonly FakeDifyStep[];
}

/** Marker inside the fake's `agent_thought` text, so tests can assert it never reaches the answer. */
export const FAKE_DIFY_THOUGHT = 'FAKE-THOUGHT: I should look this up.';

/** Dify-shaped failures and one-off streams for scripting. */
export const difySteps = {
  /** 429 with an optional `retry-after`. */
  rateLimited(opts: { retryAfterSeconds?: number } = {}): FakeDifyStep {
    const headers: Record<string, string> = {};
    if (opts.retryAfterSeconds !== undefined) headers['retry-after'] = String(opts.retryAfterSeconds);
    return { kind: 'http', response: { status: 429, headers, body: { code: 'too_many_requests', message: 'Too many requests. Please try again later.', status: 429 } } };
  },
  /** A 5xx (default 500). */
  serverError(status = 500): FakeDifyStep {
    return { kind: 'http', response: { status, body: { code: 'internal_server_error', message: 'Internal Server Error.', status } } };
  },
  /** 400 `provider_quota_exceeded`: the workspace's model credit is used up. */
  quotaExceeded(): FakeDifyStep {
    return {
      kind: 'http',
      response: {
        status: 400,
        body: {
          code: 'provider_quota_exceeded',
          message: "Your quota for Dify Hosted Model Provider has been exhausted. Please go to Settings -> Model Provider to complete your own provider credentials.",
          status: 400,
        },
      },
    };
  },
  /** Any 4xx with Dify's `{code, message, status}` body. */
  httpError(status: number, code: string, message: string): FakeDifyStep {
    return { kind: 'http', response: { status, body: { code, message, status } } };
  },
  /** A stream that sends some answer, then an `error` event. */
  streamError(partial: string, code = 'completion_request_error', message = '[openai] Error: upstream failed', status = 400): FakeDifyStep {
    return {
      kind: 'events',
      events: [
        { event: 'message', answer: partial },
        { event: 'error', status, code, message },
      ],
    };
  },
  /** A stream where output moderation replaces the answer (`message_replace`). */
  moderated(partial: string, replacement: string): FakeDifyStep {
    return {
      kind: 'events',
      events: [
        { event: 'message', answer: partial },
        { event: 'message_replace', answer: replacement },
        { event: 'message_end', metadata: {} },
      ],
    };
  },
} as const;

/** A running fake Dify server. Create with {@link startFakeDify}. */
export class FakeDify {
  /** Base URL including `/v1`, for `DIFY_BASE_URL` / `DifyConfig.baseUrl`. */
  readonly baseUrl: string;
  /** Every request received, in order. */
  readonly requests: FakeDifyRecordedRequest[] = [];
  /** Every chat-messages request received (including failed ones), in order. */
  readonly chatRequests: FakeDifyChatRequest[] = [];
  /** Conversation ids passed to successful DELETE calls, in order. */
  readonly deletedConversations: string[] = [];
  /** Files uploaded. */
  readonly uploads: FakeDifyUpload[] = [];
  /** Live conversations by id. */
  readonly conversations = new Map<string, FakeDifyConversation>();
  /** Pending chat steps, first-in first-out. */
  script: FakeDifyStep[];
  // The knobs below are documented on FakeDifyOptions; change them freely mid-test.
  apiKey: string | undefined;
  mode: FakeDifyMode;
  answer: (request: FakeDifyChatRequest, conversation: FakeDifyConversation) => string;
  chunkDelayMs: number;
  latencyMs: number;
  chunkChars: number;
  answerOnlyInWorkflowOutputs: boolean;
  conversationNotFoundCode: 'conversation_not_exists' | 'not_found';

  private deleteCount = 0;
  private readonly server: Server;
  private readonly closing = new AbortController();

  /** @internal use {@link startFakeDify}. */
  constructor(server: Server, baseUrl: string, opts: FakeDifyOptions) {
    this.server = server;
    this.baseUrl = baseUrl;
    this.apiKey = opts.apiKey;
    this.mode = opts.mode ?? 'chat';
    this.answer = opts.answer ?? ((request) => `Echo: ${request.query}`);
    this.chunkDelayMs = opts.chunkDelayMs ?? 0;
    this.latencyMs = opts.latencyMs ?? 0;
    this.chunkChars = opts.chunkChars ?? 8;
    this.answerOnlyInWorkflowOutputs = opts.answerOnlyInWorkflowOutputs ?? false;
    this.conversationNotFoundCode = opts.conversationNotFoundCode ?? 'conversation_not_exists';
    this.script = [...(opts.script ?? [])];
    serveWith(server, (req, res) => this.handle(req, res));
  }

  /** Number of chat-messages calls received. */
  get chatCalls(): number {
    return this.chatRequests.length;
  }

  /** Number of DELETE conversation calls received (including 404s). */
  get deleteCalls(): number {
    return this.deleteCount;
  }

  /** The most recent chat request (throws when there is none). */
  get lastChatRequest(): FakeDifyChatRequest {
    const last = this.chatRequests[this.chatRequests.length - 1];
    if (!last) throw new Error('the fake Dify server has received no chat request');
    return last;
  }

  /** Appends steps to the chat script. */
  enqueue(...steps: FakeDifyStep[]): this {
    this.script.push(...steps);
    return this;
  }

  /** Creates a conversation for `user` (as if an earlier turn happened) and returns its id. */
  createConversation(user: string): string {
    const id = randomUUID();
    this.conversations.set(id, { id, user, queries: [] });
    return id;
  }

  /** Stops the server, dropping open connections and pending delays. */
  async close(): Promise<void> {
    this.closing.abort();
    await closeServer(this.server);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { raw, path, signal } = await receive(req, res, this.requests, this.closing.signal);

    if (this.apiKey !== undefined && req.headers.authorization !== `Bearer ${this.apiKey}`) {
      sendResponse(res, { status: 401, body: { code: 'unauthorized', message: 'Access token is invalid', status: 401 } });
      return;
    }
    const deleteMatch = /\/v1\/conversations\/([^/]+)$/.exec(path);
    if (req.method === 'POST' && path.endsWith('/v1/chat-messages')) {
      await this.chat(raw.toString('utf8'), req.headers, res, signal);
    } else if (req.method === 'DELETE' && deleteMatch) {
      this.deleteConversation(decodeURIComponent(deleteMatch[1] ?? ''), raw.toString('utf8'), res);
    } else if (req.method === 'POST' && path.endsWith('/v1/files/upload')) {
      await this.upload(raw, req.headers, res);
    } else {
      sendResponse(res, { status: 404, body: { code: 'not_found', message: 'The requested URL was not found on the server.', status: 404 } });
    }
  }

  private async chat(text: string, headers: IncomingHttpHeaders, res: ServerResponse, signal: AbortSignal): Promise<void> {
    const json = tryParseJson(text);
    if (!isRecord(json)) {
      sendResponse(res, { status: 400, body: { code: 'invalid_param', message: 'Invalid JSON body', status: 400 } });
      return;
    }
    const request: FakeDifyChatRequest = {
      query: typeof json['query'] === 'string' ? json['query'] : '',
      user: typeof json['user'] === 'string' ? json['user'] : '',
      conversationId: typeof json['conversation_id'] === 'string' ? json['conversation_id'] : '',
      responseMode: typeof json['response_mode'] === 'string' ? json['response_mode'] : '',
      inputs: json['inputs'],
      files: Array.isArray(json['files']) ? json['files'] : [],
      body: json,
      headers,
    };
    this.chatRequests.push(request);
    const step = this.script.shift();
    if (!(await pause(this.latencyMs, signal))) return;

    if (playBasicStep(res, step, sendResponse)) return;
    if (request.user === '') {
      sendResponse(res, { status: 400, body: { code: 'invalid_param', message: 'user is required', status: 400 } });
      return;
    }
    let conversation: FakeDifyConversation;
    if (request.conversationId === '') {
      const id = randomUUID();
      conversation = { id, user: request.user, queries: [] };
      this.conversations.set(id, conversation);
    } else {
      const found = this.conversations.get(request.conversationId);
      // Dify scopes conversations by `user`: someone else's id is "not found" too.
      if (!found || found.user !== request.user) {
        sendResponse(res, { status: 404, body: { code: this.conversationNotFoundCode, message: 'Conversation Not Exists.', status: 404 } });
        return;
      }
      conversation = found;
    }
    conversation.queries.push(request.query);

    const messageId = randomUUID();
    const taskId = randomUUID();
    const createdAt = Math.floor(Date.now() / 1000);
    const common = { conversation_id: conversation.id, message_id: messageId, task_id: taskId, created_at: createdAt };
    const events: Record<string, unknown>[] =
      step?.kind === 'events'
        ? step.events.map((event) => ({ ...common, id: messageId, ...event }))
        : this.answerEvents(this.answer(request, conversation), common, messageId);

    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' });
    // Dify's keep-alive is a bare `event: ping` (no data line).
    res.write('event: ping\n\n');
    for (const [index, event] of events.entries()) {
      if (step?.kind === 'events' && step.stallAfter === index) {
        await stall(res, signal, step.pingEveryMs);
        return;
      }
      if (index > 0 && !(await pause(this.chunkDelayMs, signal))) return;
      res.write(`data: ${JSON.stringify(event)}\n\n`);
    }
    res.end();
  }

  private answerEvents(answer: string, common: Record<string, unknown>, messageId: string): Record<string, unknown>[] {
    const chunks = pieces(answer, this.chunkChars);
    const end = { ...common, event: 'message_end', id: messageId, metadata: { usage: { prompt_tokens: 10, completion_tokens: 10, total_tokens: 20, currency: 'USD', latency: 0.1 } }, files: [] };
    if (this.mode === 'agent') {
      const thoughtId = randomUUID();
      const thought = (text: string, tool: string, observation: string): Record<string, unknown> => ({
        ...common,
        event: 'agent_thought',
        id: thoughtId,
        position: 1,
        thought: text,
        observation,
        tool,
        tool_input: tool === '' ? '' : '{"query": "x"}',
        message_files: [],
      });
      return [
        thought('', '', ''),
        thought(FAKE_DIFY_THOUGHT, 'web_search', ''),
        thought(FAKE_DIFY_THOUGHT, 'web_search', 'FAKE-OBSERVATION: search results'),
        ...chunks.map((chunk) => ({ ...common, event: 'agent_message', id: messageId, answer: chunk })),
        thought(answer, '', ''),
        end,
      ];
    }
    if (this.mode === 'chatflow') {
      const runId = randomUUID();
      const node = (event: string, nodeType: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
        ...common,
        event,
        workflow_run_id: runId,
        data: { id: randomUUID(), node_id: nodeType, node_type: nodeType, title: nodeType, ...extra },
      });
      return [
        { ...common, event: 'workflow_started', workflow_run_id: runId, data: { id: runId, workflow_id: 'wf-fake', created_at: common['created_at'] } },
        node('node_started', 'llm'),
        ...(this.answerOnlyInWorkflowOutputs
          ? []
          : chunks.map((chunk) => ({ ...common, event: 'message', id: messageId, answer: chunk, from_variable_selector: ['llm', 'text'] }))),
        node('node_finished', 'llm', { status: 'succeeded', outputs: { text: answer } }),
        { ...common, event: 'workflow_finished', workflow_run_id: runId, data: { id: runId, workflow_id: 'wf-fake', status: 'succeeded', outputs: { answer }, error: null } },
        end,
      ];
    }
    return [...chunks.map((chunk) => ({ ...common, event: 'message', id: messageId, answer: chunk })), end];
  }

  private deleteConversation(id: string, text: string, res: ServerResponse): void {
    this.deleteCount++;
    const json = tryParseJson(text);
    const user = isRecord(json) && typeof json['user'] === 'string' ? json['user'] : '';
    const found = this.conversations.get(id);
    if (!found || found.user !== user) {
      sendResponse(res, { status: 404, body: { code: 'not_found', message: 'Conversation Not Exists.', status: 404 } });
      return;
    }
    this.conversations.delete(id);
    this.deletedConversations.push(id);
    res.writeHead(204);
    res.end();
  }

  private async upload(raw: Buffer, headers: IncomingHttpHeaders, res: ServerResponse): Promise<void> {
    const form = await parseFormData(raw, headers['content-type']);
    const file = form?.get('file');
    const user = form?.get('user');
    if (!file || typeof file === 'string') {
      sendResponse(res, { status: 400, body: { code: 'no_file_uploaded', message: 'Please upload your file.', status: 400 } });
      return;
    }
    const id = randomUUID();
    const bytes = new Uint8Array(await file.arrayBuffer());
    this.uploads.push({ id, user: typeof user === 'string' ? user : '', filename: file.name, mimeType: file.type, bytes });
    sendResponse(res, {
      status: 201,
      body: {
        id,
        name: file.name,
        size: bytes.byteLength,
        extension: file.name.split('.').pop() ?? '',
        mime_type: file.type,
        created_by: randomUUID(),
        created_at: Math.floor(Date.now() / 1000),
      },
    });
  }
}

/** Sends nothing more (but `event: ping` every `pingEveryMs`, when given) until the client or the fake goes away. */
async function stall(res: ServerResponse, signal: AbortSignal, pingEveryMs: number | undefined): Promise<void> {
  for (;;) {
    if (!(await pause(pingEveryMs ?? 60_000, signal))) return;
    if (pingEveryMs !== undefined) res.write('event: ping\n\n');
  }
}

/**
 * Starts a fake Dify server on 127.0.0.1 (random port).
 * Always `await fake.close()` (e.g. in `afterEach`): it closes every connection.
 */
export async function startFakeDify(opts: FakeDifyOptions = {}): Promise<FakeDify> {
  const { server, port } = await listenLocal('fake Dify server has no TCP address');
  return new FakeDify(server, `http://127.0.0.1:${port}/v1`, opts);
}
