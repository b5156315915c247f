/**
 * One streaming interface for every LLM backend (openai, dify, dev).
 * Backends never throw for a vendor error the user should hear about: they end the
 * stream with an `error` event carrying a short apology-worthy reason.
 */
import type { CutReason } from './guard';

export type { CutReason } from './guard';

/** A past turn of the conversation (openai keeps these; Dify keeps its own). */
export interface ChatTurn {
  role: 'user' | 'assistant';
  content: string;
}

/**
 * An image handed to a vision-capable model: a URL (`https:` the model can fetch, or a
 * `data:` URL), or bytes we downloaded with a channel's token. Bytes stay bytes until the
 * request is sent: the OpenAI backend encodes them to base64 slice by slice into the request
 * body (lib/llm/inline-images.ts), so a large image is never held as a base64 string, a JSON
 * string and an encoded request body at once.
 */
export type ImageInput = { url: string } | { bytes: Uint8Array; mimeType: string };

/** Everything a backend needs for one answer. */
export interface LlmRequest {
  /** Stable per-user id, used by Dify's `user` field. */
  userId: string;
  /** The user's text (already transcribed for voice). */
  text: string;
  images: readonly ImageInput[];
  /** Earlier turns, oldest first (empty for Dify). */
  history: readonly ChatTurn[];
  /** System prompt including any channel-specific instruction (e.g. short voice answers). */
  systemPrompt: string;
  /** Dify conversation id from the previous turn, or undefined to start a new one. */
  conversationId: string | undefined;
  /** Tools the model may call (openai only); empty when none. */
  tools: readonly ToolDefinition[];
  /**
   * Milliseconds the whole answer may take from the call (retries and tool rounds included);
   * past it the stream ends with a `cut` event. Undefined: only the idle timeout applies.
   */
  budgetMs?: number;
}

/** A function tool the model may call (see lib/core/tools). */
export interface ToolDefinition {
  name: string;
  description: string;
  /** JSON Schema of the arguments object. */
  parameters: Readonly<Record<string, unknown>>;
  /** Runs the tool; returns the text handed back to the model. */
  run(argumentsJson: string): Promise<string>;
}

/**
 * Events a backend yields while streaming.
 * - `delta`: more answer text, to append.
 * - `replace`: the whole answer so far is replaced (Dify `message_replace`, moderation).
 * - `conversation`: the backend's conversation id (Dify), to store for next time.
 * - `done`: the answer is complete.
 * - `error`: the answer failed; `retryable` says whether SQS redelivery could help;
 *   `userMessage` is a short apology for the user.
 * - `cut`: a time limit ended the answer (`idle`: the server sent nothing for the idle timeout;
 *   `deadline`: the budget ran out). The text so far stands; retrying would repeat it and
 *   cost a second call, so the caller closes the answer with a note instead.
 */
export type LlmEvent =
  | { type: 'delta'; text: string }
  | { type: 'replace'; text: string }
  | { type: 'conversation'; conversationId: string }
  | { type: 'done'; finishReason: string }
  /** Tokens the model reports for a call (OpenAI `include_usage`; Dify `message_end`). */
  | { type: 'usage'; promptTokens: number; completionTokens: number }
  | { type: 'error'; code: string; message: string; retryable: boolean; userMessage: string }
  | { type: 'cut'; reason: CutReason; message: string };

/** A streaming chat backend. */
export interface LlmBackend {
  readonly name: 'openai' | 'dify' | 'dev';
  /** What the backend can do; the turn asks these, never the backend's name. */
  readonly capabilities: LlmCapabilities;
  /** Streams one answer. Honors `signal` by ending early. */
  stream(request: LlmRequest, signal?: AbortSignal): AsyncIterable<LlmEvent>;
  /** Forgets server-side conversation state (Dify), if any. */
  forgetConversation?(userId: string, conversationId: string): Promise<void>;
  /**
   * Transcribes audio (bytes + filename with a supported extension); undefined when not supported.
   * Each attempt streams the same bytes again (nothing is copied), so a retry sends them whole.
   * `budgetMs` bounds the whole call like {@link LlmRequest.budgetMs}; a cut throws an
   * `LlmCallError` with code `idle_timeout` or `deadline`.
   */
  transcribe?(audio: Uint8Array, filename: string, mimeType: string, budgetMs?: number): Promise<string>;
}

/** What an {@link LlmBackend} can do. */
export interface LlmCapabilities {
  /**
   * The backend keeps the conversation itself (Dify's `conversation_id`,
   * https://docs.dify.ai/guides/application-publishing/developing-with-apis): the turn sends
   * no history and stores none.
   */
  keepsHistory: boolean;
  /** The model reads images (OpenAI with `OPENAI_VISION`). */
  acceptsImages: boolean;
}

/** Injected I/O for backends, so tests can pin time. */
export interface LlmDeps {
  fetch: typeof fetch;
  sleep(ms: number): Promise<void>;
}
