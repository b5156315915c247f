/**
 * LLM settings: the backend (OpenAI-compatible, Dify or the dev echo), its model and
 * limits, and the per-user rate limit.
 *
 * @module
 */
import { bool, ConfigError, int, isDeployed, isSet, secretsPath, str, url, type Env } from './env';

export type LlmProviderName = 'openai' | 'dify' | 'dev';

/** OpenAI-compatible chat settings. */
export interface OpenAiConfig {
  apiKey: string;
  baseUrl: string;
  model: string;
  /** Whether the configured model accepts images (`OPENAI_VISION=1`). */
  vision: boolean;
  /** Model for `/audio/transcriptions`; empty disables transcription. */
  transcriptionModel: string;
  maxRetries: number;
}

/** Dify app settings. */
export interface DifyConfig {
  apiKey: string;
  baseUrl: string;
}

/** LLM settings shared by every backend. */
export interface LlmConfig {
  provider: LlmProviderName;
  systemPrompt: string;
  historyTurns: number;
  openai: OpenAiConfig | undefined;
  dify: DifyConfig | undefined;
  /** Per-chunk delay of the offline `dev` provider. */
  devChunkDelayMs: number;
  /** A stream (or any LLM HTTP call) that sends no bytes this long is cut (`LLM_STREAM_IDLE_TIMEOUT_MS`). */
  streamIdleTimeoutMs: number;
  /** Cap on answer tokens, sent as `max_tokens` (openai; a Dify app sets its own in the app). */
  maxTokens: number;
  /** Worker time kept back from the LLM for saving and delivering the answer (`LLM_TIME_MARGIN_MS`). */
  timeMarginMs: number;
  /** An LLM call is not started with less time than this left; the job goes back to the queue (`LLM_MIN_TIME_MS`). */
  minCallTimeMs: number;
  /** Stored conversation history budget in UTF-8 bytes, oldest turns dropped first (`HISTORY_MAX_BYTES`). */
  historyMaxBytes: number;
  /** Pause before the first chunk of a `dev` answer to a message containing `/dev-slow`. */
  devSlowMs: number;
}

/** Per-user limit of LLM-bound messages, shared by every worker through DynamoDB. */
export interface RateLimitConfig {
  /** Messages allowed per window; 0 turns the limit off (`RATE_LIMIT_MESSAGES`). */
  messages: number;
  /** Window length in seconds (`RATE_LIMIT_WINDOW_SEC`). */
  windowSec: number;
}

const DEFAULT_SYSTEM_PROMPT =
  'You are a helpful assistant answering users on a messaging app. Be concise and clear.';

function transcriptionModel(env: Env): string {
  const raw = str(env, 'OPENAI_TRANSCRIPTION_MODEL');
  if (raw.toLowerCase() === 'none') return '';
  return raw || 'whisper-1';
}

/**
 * The LLM backend `env` selects. Fails closed in a deployed stage (`SSM_SECRETS_PATH` set):
 * with no key and no explicit `LLM_PROVIDER=dev`, real users would get the echo model.
 */
export function llmProvider(env: Env): LlmProviderName {
  const explicit = str(env, 'LLM_PROVIDER').toLowerCase();
  let provider: LlmProviderName;
  if (explicit === '') {
    provider = isSet(env, 'OPENAI_API_KEY') ? 'openai' : isSet(env, 'DIFY_API_KEY') ? 'dify' : 'dev';
    if (provider === 'dev' && isDeployed(env)) {
      throw new ConfigError(
        `No LLM is configured: OPENAI_API_KEY or DIFY_API_KEY is missing under ${secretsPath(env)} (npm run secrets), and LLM_PROVIDER is not set to dev`,
      );
    }
  } else if (explicit === 'openai' || explicit === 'dify' || explicit === 'dev') {
    provider = explicit;
  } else {
    throw new ConfigError(`LLM_PROVIDER must be openai, dify or dev, got "${explicit}"`);
  }
  if (provider === 'openai' && !isSet(env, 'OPENAI_API_KEY')) throw new ConfigError('LLM_PROVIDER=openai needs OPENAI_API_KEY');
  if (provider === 'dify' && !isSet(env, 'DIFY_API_KEY')) throw new ConfigError('LLM_PROVIDER=dify needs DIFY_API_KEY');
  return provider;
}

export function loadLlm(env: Env, usesLlm: boolean): LlmConfig {
  // A function that never calls the LLM (webhooks, admin) gets none of its settings in a
  // deployed stage; it must not fail closed over them.
  const provider = usesLlm ? llmProvider(env) : 'dev';
  const openAiKey = str(env, 'OPENAI_API_KEY');
  const difyKey = str(env, 'DIFY_API_KEY');
  return {
    provider,
    systemPrompt: str(env, 'SYSTEM_PROMPT') || DEFAULT_SYSTEM_PROMPT,
    historyTurns: int(env, 'HISTORY_TURNS', 10, 0, 100),
    openai:
      openAiKey === ''
        ? undefined
        : {
            apiKey: openAiKey,
            baseUrl: url(env, 'OPENAI_BASE_URL', 'https://api.openai.com/v1'),
            model: str(env, 'OPENAI_MODEL') || 'gpt-4o-mini',
            vision: bool(env, 'OPENAI_VISION'),
            // Empty (as serverless.yml passes an unset variable) means the default; `none` disables.
            transcriptionModel: transcriptionModel(env),
            maxRetries: int(env, 'OPENAI_MAX_RETRIES', 3, 0, 10),
          },
    dify: difyKey === '' ? undefined : { apiKey: difyKey, baseUrl: url(env, 'DIFY_BASE_URL', 'https://api.dify.ai/v1') },
    devChunkDelayMs: int(env, 'DEV_LLM_CHUNK_DELAY_MS', 60, 0, 10_000),
    streamIdleTimeoutMs: int(env, 'LLM_STREAM_IDLE_TIMEOUT_MS', 30_000, 100, 600_000),
    maxTokens: int(env, 'LLM_MAX_TOKENS', 1024, 16, 128_000),
    timeMarginMs: int(env, 'LLM_TIME_MARGIN_MS', 20_000, 0, 120_000),
    minCallTimeMs: int(env, 'LLM_MIN_TIME_MS', 30_000, 0, 300_000),
    // DynamoDB items stop at 400 KB (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html);
    // the cap keeps memory far below it with room for the item's other attributes.
    historyMaxBytes: int(env, 'HISTORY_MAX_BYTES', 64 * 1024, 1024, 256 * 1024),
    devSlowMs: int(env, 'DEV_LLM_SLOW_MS', 20_000, 0, 120_000),
  };
}

export function loadRateLimit(env: Env): RateLimitConfig {
  return {
    // The window's item lists the admitted message ids: 1,000 of them stay far below 400 KB.
    messages: int(env, 'RATE_LIMIT_MESSAGES', 20, 0, 1000),
    windowSec: int(env, 'RATE_LIMIT_WINDOW_SEC', 600, 1, 86_400),
  };
}
