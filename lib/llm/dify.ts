/**
 * Dify backend: streams `POST {baseUrl}/chat-messages` (chat, agent and chatflow apps) with
 * plain `fetch`, since Dify has no official JS SDK.
 *
 * Dify keeps the conversation server-side: we send the stored `conversation_id` and report the one
 * Dify returns. Event names and error codes follow Dify's "Chat App API" reference
 * (https://docs.dify.ai/api-reference/chat/send-chat-message).
 */
import type { DifyConfig } from '../config';
import { isJsonObject, objectField, stringField, numberField, tryParseJson, type JsonObject } from '../json';
import { createCallGuard, type CallGuard } from './guard';
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
import { readSseEvents } from './sse';
import type { LlmBackend, LlmDeps, LlmEvent, LlmRequest } from './types';

/** Retries of 429 / 5xx / network failures before giving up (Dify's config has no knob for it). */
export const DIFY_MAX_RETRIES = 2;

/** Tuning for {@link createDifyBackend}. */
export interface DifyBackendOptions {
  /** Retries of 429 / 5xx / network failures; default {@link DIFY_MAX_RETRIES}. */
  maxRetries?: number;
  /** No byte for this long while a request is in flight cuts the call (default 30 s, `LLM_STREAM_IDLE_TIMEOUT_MS`). */
  idleTimeoutMs?: number;
}

/** A Dify `files` entry for the chat-messages body. */
type DifyFile =
  | { type: 'image'; transfer_method: 'remote_url'; url: string }
  | { type: 'image'; transfer_method: 'local_file'; upload_file_id: string };

/** The body Dify sends with an HTTP error: `{code, message, status}`. */
interface DifyErrorBody {
  code: string;
  message: string;
}

/** Dify's error body from a response's text; text that is not a JSON object becomes the message. */
function parseErrorBody(text: string): DifyErrorBody {
  const json = tryParseJson(text);
  if (isJsonObject(json)) {
    return { code: stringField(json, 'code') ?? '', message: stringField(json, 'message') ?? text };
  }
  return { code: '', message: text.slice(0, 500) };
}

async function readErrorBody(response: Response): Promise<DifyErrorBody> {
  return parseErrorBody(await response.text().catch(() => ''));
}

/**
 * Dify's docs list 404 `conversation_not_exists`; the service API as deployed raises werkzeug's
 * `NotFound("Conversation Not Exists.")`, which Dify's error handler renders as `code: "not_found"`.
 * Accept both.
 */
function isConversationGone(status: number, body: DifyErrorBody): boolean {
  if (status !== 404) return false;
  return body.code === 'conversation_not_exists' || (body.code === 'not_found' && /conversation not exists/i.test(body.message));
}

/** Codes (HTTP body or stream `error` event) that mean the Dify workspace is out of model credit. */
const QUOTA_CODES = new Set(['provider_quota_exceeded', 'quota_exceeded']);
/** Codes that mean the app or its model provider is misconfigured: retrying cannot help. */
const CONFIG_CODES = new Set([
  'app_unavailable',
  'provider_not_initialize',
  'model_currently_not_support',
  'not_chat_app',
  'unauthorized',
]);

/** Maps a Dify failure (HTTP status + code) to an error event and whether to retry it. */
function classify(status: number, code: string, message: string): { retryable: boolean; event: LlmErrorEvent } {
  const label = code === '' ? `http_${status}` : code;
  if (QUOTA_CODES.has(code)) return { retryable: false, event: errorEvent(label, message, false, APOLOGY.quota) };
  if (status === 429) return { retryable: true, event: errorEvent(label, message, true, APOLOGY.busy) };
  if (status >= 500) return { retryable: true, event: errorEvent(label, message, true, APOLOGY.unavailable) };
  if (status === 401 || status === 403 || CONFIG_CODES.has(code)) {
    return { retryable: false, event: errorEvent(label, message, false, APOLOGY.misconfigured) };
  }
  return { retryable: false, event: errorEvent(label, message, false, APOLOGY.rejected) };
}

/** Splits a `data:` URL into bytes and MIME type, or undefined when it is not a base64 data URL. */
function decodeDataUrl(url: string): { data: Blob; mimeType: string } | undefined {
  const match = /^data:([^;,]+)?((?:;[^;,]+)*?);base64,(.*)$/s.exec(url);
  if (!match) return undefined;
  const mimeType = match[1] ?? 'application/octet-stream';
  return { data: new Blob([Buffer.from(match[3] ?? '', 'base64')], { type: mimeType }), mimeType };
}

function extensionOf(mimeType: string): string {
  const sub = mimeType.split('/')[1] ?? 'bin';
  return sub === 'jpeg' ? 'jpg' : sub.replace(/[^a-z0-9]/gi, '');
}

/**
 * Creates the Dify backend.
 * @param cfg - app API key and base URL (ending in `/v1`).
 * @param deps - `fetch` for all calls, `sleep` for retry backoff.
 * @param options - retry budget and idle timeout. Dify's API has no token cap: the app's model settings hold it.
 */
export function createDifyBackend(cfg: DifyConfig, deps: LlmDeps, options: DifyBackendOptions = {}): LlmBackend {
  const maxRetries = options.maxRetries ?? DIFY_MAX_RETRIES;
  const idleTimeoutMs = options.idleTimeoutMs ?? 30_000;
  const headers = { Authorization: `Bearer ${cfg.apiKey}`, 'Content-Type': 'application/json' };

  /**
   * Dify takes images as `remote_url` (it fetches them) or as an id from `POST /files/upload`.
   * `data:` URLs (e.g. media we downloaded with a channel token) must be uploaded first.
   */
  async function prepareFiles(request: LlmRequest, guard: CallGuard): Promise<DifyFile[]> {
    const files: DifyFile[] = [];
    for (const [index, image] of request.images.entries()) {
      if ('url' in image && /^https?:\/\//i.test(image.url)) {
        files.push({ type: 'image', transfer_method: 'remote_url', url: image.url });
        continue;
      }
      const decoded = 'bytes' in image ? { data: new Blob([image.bytes], { type: image.mimeType }), mimeType: image.mimeType } : decodeDataUrl(image.url);
      if (!decoded) continue;
      const form = new FormData();
      form.append('file', decoded.data, `image-${index}.${extensionOf(decoded.mimeType)}`);
      form.append('user', request.userId);
      const response = await guard.fetch(`${cfg.baseUrl}/files/upload`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${cfg.apiKey}` },
        body: form,
        signal: guard.signal,
      });
      const text = await response.text();
      const json = tryParseJson(text);
      const id = isJsonObject(json) ? stringField(json, 'id') : undefined;
      if (!response.ok || id === undefined) {
        const body = parseErrorBody(text);
        throw new LlmCallError(classify(response.status, body.code, `file upload failed: ${body.message}`).event);
      }
      files.push({ type: 'image', transfer_method: 'local_file', upload_file_id: id });
    }
    return files;
  }

  /** Turns one stream's SSE into LlmEvents. */
  async function* consume(body: ReadableStream<Uint8Array>, signal: AbortSignal | undefined): AsyncGenerator<LlmEvent> {
    let reportedConversation: string | undefined;
    let sawAnswer = false;
    let workflowAnswer: string | undefined;
    try {
      for await (const sse of readSseEvents(body)) {
        const data = tryParseJson(sse.data);
        if (!isJsonObject(data)) continue; // keep-alives and anything that is not a JSON event
        const event = stringField(data, 'event') ?? sse.event;
        // Report the conversation id as soon as it first appears (every event carries it), once;
        // `message_end` repeats the same id, so it is not reported again.
        const conversationId = stringField(data, 'conversation_id');
        if (conversationId && conversationId !== reportedConversation) {
          reportedConversation = conversationId;
          yield { type: 'conversation', conversationId };
        }
        switch (event) {
          case 'message':
          case 'agent_message': {
            // `answer` is an incremental chunk in streaming mode.
            const answer = stringField(data, 'answer') ?? '';
            if (answer !== '') {
              sawAnswer = true;
              yield { type: 'delta', text: answer };
            }
            break;
          }
          case 'message_replace':
            // Output moderation replaced the whole answer.
            sawAnswer = true;
            yield { type: 'replace', text: stringField(data, 'answer') ?? '' };
            break;
          case 'workflow_finished': {
            const outputs = objectField(objectField(data, 'data') ?? {}, 'outputs');
            workflowAnswer = outputs ? stringField(outputs, 'answer') : undefined;
            break;
          }
          case 'message_end':
            if (!sawAnswer && workflowAnswer) yield { type: 'delta', text: workflowAnswer };
            yield { type: 'done', finishReason: 'stop' };
            return;
          case 'error':
            yield streamError(data);
            return;
          default:
            // agent_thought, message_file, tts_message, ping, workflow/node events: not answer text.
            break;
        }
      }
    } catch (error) {
      if (isAbortError(error, signal)) return;
      yield errorEvent('stream_interrupted', messageOf(error), true, APOLOGY.interrupted);
      return;
    }
    if (signal?.aborted) return;
    if (!sawAnswer && workflowAnswer) {
      yield { type: 'delta', text: workflowAnswer };
      yield { type: 'done', finishReason: 'stop' };
      return;
    }
    yield errorEvent('stream_interrupted', 'stream ended without message_end', true, APOLOGY.interrupted);
  }

  function streamError(data: JsonObject): LlmErrorEvent {
    const status = numberField(data, 'status') ?? 500;
    const code = stringField(data, 'code') ?? '';
    return classify(status, code, stringField(data, 'message') ?? 'Dify stream error').event;
  }

  async function* stream(request: LlmRequest, signal?: AbortSignal): AsyncGenerator<LlmEvent> {
    const guard = createCallGuard({ fetch: deps.fetch, idleMs: idleTimeoutMs, budgetMs: request.budgetMs, signal });
    try {
      yield* answer(request, guard);
      // However the stream ended after the guard fired (abort error, quiet end), say why.
      const cut = cutEventOf(guard);
      if (cut) yield cut;
    } finally {
      guard.dispose();
    }
  }

  /** Uploads, the call and its retries; returns quietly when the guard's signal aborts (the caller reports a cut). */
  async function* answer(request: LlmRequest, guard: CallGuard): AsyncGenerator<LlmEvent> {
    const signal = guard.signal;
    let files: DifyFile[];
    try {
      files = await prepareFiles(request, guard);
    } catch (error) {
      if (isAbortError(error, signal)) return;
      yield error instanceof LlmCallError
        ? errorEvent(error.code, error.message, error.retryable, error.userMessage)
        : errorEvent('network_error', messageOf(error), true, APOLOGY.unavailable);
      return;
    }
    let conversationId = request.conversationId ?? '';
    let attempt = 0;
    for (;;) {
      const body: Record<string, unknown> = {
        inputs: {},
        query: request.text,
        response_mode: 'streaming',
        conversation_id: conversationId,
        user: request.userId,
      };
      if (files.length > 0) body['files'] = files;
      let failure: { retryable: boolean; event: LlmErrorEvent; headers: HeaderSource | undefined };
      try {
        const response = await guard.fetch(`${cfg.baseUrl}/chat-messages`, {
          method: 'POST',
          headers,
          body: JSON.stringify(body),
          signal,
        });
        if (response.ok && response.body) {
          yield* consume(response.body, signal);
          return;
        }
        const errorBody = await readErrorBody(response);
        if (conversationId !== '' && isConversationGone(response.status, errorBody)) {
          // The stored conversation was deleted (or belongs to an older app): start a new one,
          // once. Nothing is emitted for the dead id; the new id arrives with the answer.
          conversationId = '';
          continue;
        }
        failure = { ...classify(response.status, errorBody.code, errorBody.message), headers: response.headers };
      } catch (error) {
        if (isAbortError(error, signal)) return;
        failure = {
          retryable: true,
          event: errorEvent('network_error', messageOf(error), true, APOLOGY.unavailable),
          headers: undefined,
        };
      }
      if (failure.retryable && attempt < maxRetries) {
        const delay = retryDelayMs(attempt, failure.headers);
        attempt++;
        // A wait the budget cannot afford is not worth starting: report the failure now.
        if (delay !== undefined && delay < guard.remainingMs()) {
          await deps.sleep(delay);
          if (signal.aborted) return;
          continue;
        }
      }
      yield failure.event;
      return;
    }
  }

  async function forgetConversation(userId: string, conversationId: string): Promise<void> {
    const guard = createCallGuard({ fetch: deps.fetch, idleMs: idleTimeoutMs, budgetMs: undefined, signal: undefined });
    try {
      const response = await guard.fetch(`${cfg.baseUrl}/conversations/${encodeURIComponent(conversationId)}`, {
        method: 'DELETE',
        headers,
        body: JSON.stringify({ user: userId }),
        signal: guard.signal,
      });
      // Already gone is what we wanted.
      if (response.ok || response.status === 404) {
        await response.body?.cancel().catch(() => undefined);
        return;
      }
      const errorBody = await readErrorBody(response);
      throw new LlmCallError(classify(response.status, errorBody.code, `delete conversation failed: ${errorBody.message}`).event);
    } catch (error) {
      throw cutCallError(guard, error) ?? error;
    } finally {
      guard.dispose();
    }
  }

  return { name: 'dify', capabilities: { keepsHistory: true, acceptsImages: false }, stream, forgetConversation };
}
