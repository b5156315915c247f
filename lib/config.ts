/**
 * The one door for configuration (design principle 6): only this module reads
 * `process.env`. Everything is validated once, at cold start, and handed out typed.
 *
 * A channel whose secrets are all missing is disabled; a channel with some but not
 * all of its secrets, or a malformed one, is a start-up error naming the variable.
 */
import { createSsmSecretReader, SECRET_NAMES, type SecretName, type SecretReader } from './secrets';

/** Raised for any configuration problem; the message names the variable. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

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
}

/** Per-user limit of LLM-bound messages, shared by every worker through DynamoDB. */
export interface RateLimitConfig {
  /** Messages allowed per window; 0 turns the limit off (`RATE_LIMIT_MESSAGES`). */
  messages: number;
  /** Window length in seconds (`RATE_LIMIT_WINDOW_SEC`). */
  windowSec: number;
}

export type WeChatReplyMode = 'passive' | 'customer_service';

/** WeChat Official Account settings (enabled when `WECHAT_TOKEN` is set). */
export interface WeChatConfig {
  token: string;
  appId: string;
  appSecret: string;
  /** 43-char EncodingAESKey; empty means plaintext mode only. */
  encodingAesKey: string;
  /** Previous EncodingAESKey, still accepted during a key rotation. */
  encodingAesKeyPrevious: string;
  apiBase: string;
  replyMode: WeChatReplyMode;
  fetchKeyword: string;
  welcome: string;
  /** `CLICK` menu `EventKey` → prompt sent to the model. */
  menuPrompts: Readonly<Record<string, string>>;
  /** How long one delivery waits for the answer before giving up (WeChat allows 5 s). */
  replyWaitMs: number;
  /** Deliveries WeChat makes of one message (three, about 5 s apart). */
  deliveries: number;
  /** A passive page's budget in UTF-8 bytes (WeChat cuts at about 2,048). */
  pageBytes: number;
  /**
   * Customer-service mode: how long the ingress waits for a whole answer it can send
   * passively (free) before the worker's push takes over. The one place both read it.
   */
  csPassiveWaitMs: number;
  /** Largest distance of a request's `timestamp` from now (seconds) before it is refused as stale or forged. */
  maxClockSkewSec: number;
  /** With an EncodingAESKey set, still accept plaintext requests (only while switching the console's mode). */
  allowPlaintext: boolean;
}

/** WhatsApp Cloud API settings (enabled when `WHATSAPP_VERIFY_TOKEN` is set). */
export interface WhatsAppConfig {
  verifyToken: string;
  appSecret: string;
  accessToken: string;
  phoneNumberId: string;
  graphBase: string;
  graphVersion: string;
  reengageTemplate: string;
  reengageTemplateLanguage: string;
  /** Minimum spacing of two messages to the same user (pair rate limit, about 6 s). */
  pairIntervalMs: number;
}

/** Twilio settings (enabled when `TWILIO_AUTH_TOKEN` is set). */
export interface TwilioConfig {
  accountSid: string;
  authToken: string;
  from: string;
  messagingServiceSid: string;
  whatsappFrom: string;
  apiBase: string;
  reengageContentSid: string;
  voiceGreeting: string;
  voiceLanguage: string;
}

/** Names of AWS resources the functions use. */
export interface AwsConfig {
  region: string;
  tableName: string;
  queueUrl: string;
  /** Custom endpoints for the local stand-ins; empty in AWS. */
  dynamoEndpoint: string;
  sqsEndpoint: string;
  /**
   * Static credentials for the local stand-ins (any values work there). Undefined in
   * AWS, where the SDK's default provider chain uses the function's role.
   */
  localCredentials: { accessKeyId: string; secretAccessKey: string } | undefined;
}

/** The whole validated configuration. */
export interface AppConfig {
  llm: LlmConfig;
  rateLimit: RateLimitConfig;
  wechat: WeChatConfig | undefined;
  whatsapp: WhatsAppConfig | undefined;
  twilio: TwilioConfig | undefined;
  aws: AwsConfig;
  /** Empty set means everyone may use the assistant. */
  allowedUsers: ReadonlySet<string>;
  /** Public base URL the vendors call (Twilio signs it). */
  publicBaseUrl: string;
  adminToken: string;
  logLevel: string;
  /**
   * Seconds a job may keep failing after its message arrived before it is taken out of the
   * user's way: the record is marked failed, the user told, the job parked for replay
   * (`FAILED_JOB_HOLD_SEC`, default 60).
   */
  failedJobHoldSec: number;
}

export type Env = Readonly<Record<string, string | undefined>>;

const DEFAULT_SYSTEM_PROMPT =
  'You are a helpful assistant answering users on a messaging app. Be concise and clear.';

/**
 * Stands for a secret this function knows is set (its SSM parameter exists) but does not
 * read: it counts as present when deciding whether a channel or the LLM is configured, and
 * reads as ''. No real environment can hold it (environment values cannot contain NUL).
 */
export const WITHHELD = '\u0000withheld';

function str(env: Env, name: string, fallback = ''): string {
  const value = env[name];
  if (value === WITHHELD) return '';
  return value === undefined ? fallback : value.trim();
}

/** Whether `name` is set, with its value or {@link WITHHELD}. */
function isSet(env: Env, name: string): boolean {
  return env[name] === WITHHELD || str(env, name) !== '';
}

function int(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = str(env, name);
  if (raw === '') return fallback;
  if (!/^-?\d+$/.test(raw)) throw new ConfigError(`${name} must be an integer, got "${raw}"`);
  const value = Number(raw);
  if (value < min || value > max) throw new ConfigError(`${name} must be between ${min} and ${max}, got ${value}`);
  return value;
}

function bool(env: Env, name: string): boolean {
  const raw = str(env, name).toLowerCase();
  if (raw === '' || raw === '0' || raw === 'false' || raw === 'no') return false;
  if (raw === '1' || raw === 'true' || raw === 'yes') return true;
  throw new ConfigError(`${name} must be 1/0 or true/false, got "${raw}"`);
}

function url(env: Env, name: string, fallback: string): string {
  const raw = str(env, name, fallback) || fallback;
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw new ConfigError(`${name} must be an http(s) URL, got "${raw}"`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new ConfigError(`${name} must be an http(s) URL, got "${raw}"`);
  }
  return raw.replace(/\/+$/, '');
}

/**
 * A channel is enabled when any of its secrets is set; then all of `required` must be.
 * Returns undefined when none is set.
 */
function channelSecrets(env: Env, channel: string, required: readonly string[], optional: readonly string[] = []): boolean {
  const present = [...required, ...optional].filter((name) => isSet(env, name));
  if (present.length === 0) return false;
  const missing = required.filter((name) => !isSet(env, name));
  if (missing.length > 0) {
    throw new ConfigError(
      `${channel} is partly configured (${present.join(', ')} set) but ${missing.join(', ')} ${missing.length > 1 ? 'are' : 'is'} missing`,
    );
  }
  return true;
}

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

function loadLlm(env: Env, usesLlm: boolean): LlmConfig {
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
  };
}

function loadRateLimit(env: Env): RateLimitConfig {
  return {
    // The window's item lists the admitted message ids: 1,000 of them stay far below 400 KB.
    messages: int(env, 'RATE_LIMIT_MESSAGES', 20, 0, 1000),
    windowSec: int(env, 'RATE_LIMIT_WINDOW_SEC', 600, 1, 86_400),
  };
}

function loadMenuPrompts(env: Env): Record<string, string> {
  const raw = str(env, 'WECHAT_MENU_PROMPTS');
  if (raw === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new ConfigError('WECHAT_MENU_PROMPTS must be a JSON object of {"EVENT_KEY": "prompt"}');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError('WECHAT_MENU_PROMPTS must be a JSON object of {"EVENT_KEY": "prompt"}');
  }
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(parsed)) {
    if (typeof value !== 'string') throw new ConfigError(`WECHAT_MENU_PROMPTS["${key}"] must be a string`);
    out[key] = value;
  }
  return out;
}

function aesKey(env: Env, name: string): string {
  const raw = str(env, name);
  if (raw !== '' && !/^[A-Za-z0-9+/]{43}$/.test(raw)) {
    throw new ConfigError(`${name} must be the 43-character EncodingAESKey from the WeChat console`);
  }
  return raw;
}

function loadWeChat(env: Env): WeChatConfig | undefined {
  const enabled = channelSecrets(
    env,
    'WeChat',
    ['WECHAT_TOKEN'],
    ['WECHAT_APP_ID', 'WECHAT_APP_SECRET', 'WECHAT_ENCODING_AES_KEY'],
  );
  if (!enabled) return undefined;
  const replyModeRaw = str(env, 'WECHAT_REPLY_MODE', 'passive') || 'passive';
  if (replyModeRaw !== 'passive' && replyModeRaw !== 'customer_service') {
    throw new ConfigError(`WECHAT_REPLY_MODE must be passive or customer_service, got "${replyModeRaw}"`);
  }
  const appId = str(env, 'WECHAT_APP_ID');
  const appSecret = str(env, 'WECHAT_APP_SECRET');
  const encodingAesKey = aesKey(env, 'WECHAT_ENCODING_AES_KEY');
  // Safe mode needs the appid to check the decrypted envelope; the API needs both.
  const hasAesKey = isSet(env, 'WECHAT_ENCODING_AES_KEY');
  const hasAppSecret = isSet(env, 'WECHAT_APP_SECRET');
  if (hasAesKey && appId === '') {
    throw new ConfigError('WECHAT_ENCODING_AES_KEY is set but WECHAT_APP_ID is missing (safe mode checks the appid)');
  }
  if (appId === '' && hasAppSecret) throw new ConfigError('WECHAT_APP_SECRET is set but WECHAT_APP_ID is missing');
  if (appId !== '' && !hasAppSecret && !hasAesKey) {
    // An AppID alone serves nothing: media, tokens and customer-service messages need the secret.
    throw new ConfigError('WECHAT_APP_ID is set but WECHAT_APP_SECRET is missing');
  }
  if (isSet(env, 'WECHAT_ENCODING_AES_KEY_PREVIOUS') && !hasAesKey) {
    throw new ConfigError('WECHAT_ENCODING_AES_KEY_PREVIOUS is set but WECHAT_ENCODING_AES_KEY (the current key) is missing');
  }
  if (replyModeRaw === 'customer_service' && (appId === '' || !hasAppSecret)) {
    throw new ConfigError('WECHAT_REPLY_MODE=customer_service needs WECHAT_APP_ID and WECHAT_APP_SECRET');
  }
  const commands = '/help – this list\n/clear – start a new conversation';
  return {
    token: str(env, 'WECHAT_TOKEN'),
    appId,
    appSecret,
    encodingAesKey,
    encodingAesKeyPrevious: aesKey(env, 'WECHAT_ENCODING_AES_KEY_PREVIOUS'),
    apiBase: url(env, 'WECHAT_API_BASE', 'https://api.weixin.qq.com'),
    replyMode: replyModeRaw,
    fetchKeyword: str(env, 'WECHAT_FETCH_KEYWORD', '1') || '1',
    welcome: str(env, 'WECHAT_WELCOME') || `Welcome! Ask me anything.\n${commands}`,
    menuPrompts: loadMenuPrompts(env),
    replyWaitMs: int(env, 'WECHAT_REPLY_WAIT_MS', 4500, 100, 4900),
    deliveries: int(env, 'WECHAT_DELIVERIES', 3, 1, 5),
    pageBytes: int(env, 'WECHAT_PAGE_BYTES', 2000, 200, 2048),
    csPassiveWaitMs: int(env, 'WECHAT_CS_PASSIVE_WAIT_MS', 4000, 0, 4900),
    maxClockSkewSec: int(env, 'WECHAT_MAX_CLOCK_SKEW_SEC', 300, 30, 3600),
    allowPlaintext: bool(env, 'WECHAT_ALLOW_PLAINTEXT'),
  };
}

function loadWhatsApp(env: Env): WhatsAppConfig | undefined {
  const enabled = channelSecrets(env, 'WhatsApp', [
    'WHATSAPP_VERIFY_TOKEN',
    'WHATSAPP_APP_SECRET',
    'WHATSAPP_ACCESS_TOKEN',
    'WHATSAPP_PHONE_NUMBER_ID',
  ]);
  if (!enabled) return undefined;
  const version = str(env, 'WHATSAPP_GRAPH_VERSION', 'v23.0') || 'v23.0';
  if (!/^v\d+\.\d+$/.test(version)) throw new ConfigError(`WHATSAPP_GRAPH_VERSION must look like v23.0, got "${version}"`);
  const phoneNumberId = str(env, 'WHATSAPP_PHONE_NUMBER_ID');
  if (!/^\d+$/.test(phoneNumberId)) throw new ConfigError('WHATSAPP_PHONE_NUMBER_ID must be the numeric phone number id');
  return {
    verifyToken: str(env, 'WHATSAPP_VERIFY_TOKEN'),
    appSecret: str(env, 'WHATSAPP_APP_SECRET'),
    accessToken: str(env, 'WHATSAPP_ACCESS_TOKEN'),
    phoneNumberId,
    graphBase: url(env, 'WHATSAPP_GRAPH_BASE', 'https://graph.facebook.com'),
    graphVersion: version,
    reengageTemplate: str(env, 'WHATSAPP_REENGAGE_TEMPLATE'),
    reengageTemplateLanguage: str(env, 'WHATSAPP_REENGAGE_TEMPLATE_LANGUAGE', 'en_US') || 'en_US',
    pairIntervalMs: int(env, 'WHATSAPP_PAIR_INTERVAL_MS', 6000, 0, 60_000),
  };
}

function loadTwilio(env: Env): TwilioConfig | undefined {
  const enabled = channelSecrets(
    env,
    'Twilio',
    ['TWILIO_ACCOUNT_SID', 'TWILIO_AUTH_TOKEN'],
    ['TWILIO_FROM', 'TWILIO_MESSAGING_SERVICE_SID'],
  );
  if (!enabled) return undefined;
  const accountSid = str(env, 'TWILIO_ACCOUNT_SID');
  if (!/^AC[0-9a-fA-F]{32}$/.test(accountSid)) throw new ConfigError('TWILIO_ACCOUNT_SID must look like AC followed by 32 hex digits');
  const from = str(env, 'TWILIO_FROM');
  const messagingServiceSid = str(env, 'TWILIO_MESSAGING_SERVICE_SID');
  if (from === '' && messagingServiceSid === '') {
    throw new ConfigError('Twilio needs TWILIO_FROM or TWILIO_MESSAGING_SERVICE_SID to send replies');
  }
  if (str(env, 'PUBLIC_BASE_URL') === '') {
    throw new ConfigError('Twilio needs PUBLIC_BASE_URL: Twilio signs the public URL it calls');
  }
  return {
    accountSid,
    authToken: str(env, 'TWILIO_AUTH_TOKEN'),
    from,
    messagingServiceSid,
    whatsappFrom: str(env, 'TWILIO_WHATSAPP_FROM'),
    apiBase: url(env, 'TWILIO_API_BASE', 'https://api.twilio.com'),
    reengageContentSid: str(env, 'TWILIO_REENGAGE_CONTENT_SID'),
    voiceGreeting: str(env, 'TWILIO_VOICE_GREETING') || 'Hello! I am your assistant. How can I help you?',
    voiceLanguage: str(env, 'TWILIO_VOICE_LANGUAGE', 'en-US') || 'en-US',
  };
}

/**
 * One spelling per user id, so ALLOWED_USERS matches however a channel writes it: phone
 * numbers (`+1 (555) 123-4567`, `whatsapp:+15551234567`, WhatsApp's bare `15551234567`)
 * become `+15551234567`; other ids (WeChat OpenIDs) are kept as they are.
 */
export function normaliseUserId(raw: string): string {
  const trimmed = raw.trim();
  const bare = trimmed.replace(/^whatsapp:/i, '');
  if (/^\+?[\d\s().-]{6,}$/.test(bare)) return `+${bare.replace(/\D/g, '')}`;
  return trimmed;
}

/** Options of {@link loadConfig}. */
export interface LoadOptions {
  /** Whether this function calls the LLM, so its settings must validate (default true). */
  usesLlm?: boolean;
}

/** Validates `env` into an {@link AppConfig}; throws {@link ConfigError} naming the variable. */
export function loadConfig(env: Env, options: LoadOptions = {}): AppConfig {
  const publicBaseUrl = str(env, 'PUBLIC_BASE_URL');
  return {
    llm: loadLlm(env, options.usesLlm ?? true),
    rateLimit: loadRateLimit(env),
    wechat: loadWeChat(env),
    whatsapp: loadWhatsApp(env),
    twilio: loadTwilio(env),
    aws: {
      region: str(env, 'AWS_REGION', 'us-east-1') || 'us-east-1',
      tableName: str(env, 'TABLE_NAME', 'llm-gateway') || 'llm-gateway',
      queueUrl: str(env, 'QUEUE_URL'),
      dynamoEndpoint: str(env, 'DYNAMODB_ENDPOINT'),
      sqsEndpoint: str(env, 'SQS_ENDPOINT'),
      localCredentials:
        str(env, 'DYNAMODB_ENDPOINT') === '' && str(env, 'SQS_ENDPOINT') === ''
          ? undefined
          : { accessKeyId: str(env, 'AWS_ACCESS_KEY_ID', 'local') || 'local', secretAccessKey: str(env, 'AWS_SECRET_ACCESS_KEY', 'local') || 'local' },
    },
    allowedUsers: new Set(
      str(env, 'ALLOWED_USERS')
        .split(',')
        .map(normaliseUserId)
        .filter((entry) => entry !== ''),
    ),
    publicBaseUrl: publicBaseUrl === '' ? '' : url(env, 'PUBLIC_BASE_URL', publicBaseUrl),
    adminToken: str(env, 'ADMIN_TOKEN'),
    logLevel: str(env, 'LOG_LEVEL', 'INFO') || 'INFO',
    failedJobHoldSec: int(env, 'FAILED_JOB_HOLD_SEC', 60, 1, 86_400),
  };
}

/** Enabled channel names, for `/health` and the router. */
export function enabledChannels(cfg: AppConfig): string[] {
  const names: string[] = [];
  if (cfg.wechat) names.push('wechat');
  if (cfg.whatsapp) names.push('whatsapp');
  if (cfg.twilio) names.push('twilio');
  return names;
}

// ---------------------------------------------------------------------------------------------
// Secrets: SSM Parameter Store in a deployed stage, the environment / .env locally.

export { SECRET_NAMES, type SecretName, type SecretReader } from './secrets';

/** The Lambda functions of serverless.yml, by their key there. */
export type FunctionName = 'health' | 'wechat' | 'whatsapp' | 'twilioMessaging' | 'twilioVoice' | 'admin' | 'worker' | 'deadLetter';

/** What one function needs from the secrets (serverless.yml grants exactly this). */
export interface FunctionSecrets {
  /** Secrets it decrypts and uses. */
  read: readonly SecretName[];
  /**
   * Secrets whose existence alone it needs (their parameter is read without decryption,
   * and the role may not decrypt it): a channel is enabled when its secrets are set, and a
   * function must tell "set but not mine" from "not set".
   */
  exists: readonly SecretName[];
  /** Whether it calls the LLM (and so fails closed without one). */
  usesLlm: boolean;
}

const LLM_KEYS: readonly SecretName[] = ['OPENAI_API_KEY', 'DIFY_API_KEY'];

/** Per function: the secrets it reads, those it only needs to know exist, and whether it answers with the LLM. */
export const FUNCTION_SECRETS: Readonly<Record<FunctionName, FunctionSecrets>> = {
  // Reports what is configured without holding any value (see functions/health.ts).
  health: { read: [], exists: SECRET_NAMES.filter((name) => name !== 'ADMIN_TOKEN'), usesLlm: true },
  wechat: {
    read: ['WECHAT_TOKEN', 'WECHAT_ENCODING_AES_KEY', 'WECHAT_ENCODING_AES_KEY_PREVIOUS'],
    exists: ['WECHAT_APP_SECRET'],
    usesLlm: false,
  },
  whatsapp: { read: ['WHATSAPP_VERIFY_TOKEN', 'WHATSAPP_APP_SECRET'], exists: ['WHATSAPP_ACCESS_TOKEN'], usesLlm: false },
  twilioMessaging: { read: ['TWILIO_AUTH_TOKEN'], exists: [], usesLlm: false },
  twilioVoice: { read: ['TWILIO_AUTH_TOKEN'], exists: [], usesLlm: false },
  admin: { read: ['ADMIN_TOKEN'], exists: [], usesLlm: false },
  worker: {
    read: [...LLM_KEYS, 'WECHAT_APP_SECRET', 'WHATSAPP_ACCESS_TOKEN', 'TWILIO_AUTH_TOKEN'],
    exists: ['WECHAT_TOKEN', 'WECHAT_ENCODING_AES_KEY', 'WECHAT_ENCODING_AES_KEY_PREVIOUS', 'WHATSAPP_VERIFY_TOKEN', 'WHATSAPP_APP_SECRET'],
    usesLlm: true,
  },
  // Parks jobs SQS gave up on and tells their users through the channels: the worker's
  // channel secrets, but no LLM (it must work precisely when the model is misconfigured).
  deadLetter: {
    read: ['WECHAT_APP_SECRET', 'WHATSAPP_ACCESS_TOKEN', 'TWILIO_AUTH_TOKEN'],
    exists: ['WECHAT_TOKEN', 'WECHAT_ENCODING_AES_KEY', 'WECHAT_ENCODING_AES_KEY_PREVIOUS', 'WHATSAPP_VERIFY_TOKEN', 'WHATSAPP_APP_SECRET'],
    usesLlm: false,
  },
};

/** The SSM path of this stage's secrets (`/llm-gateway/prod`), or '' when running locally. */
export function secretsPath(env: Env): string {
  return str(env, 'SSM_SECRETS_PATH').replace(/\/+$/, '');
}

/**
 * Whether this is a deployed stage: serverless.yml sets `SSM_SECRETS_PATH`; `npm start` and
 * the tests do not. A deployed stage reads its secrets from SSM only and fails closed.
 */
export function isDeployed(env: Env): boolean {
  return secretsPath(env) !== '';
}

/**
 * `env` with the secrets of a deployed stage merged in: any secret variable already in `env`
 * is dropped (secrets come from SSM only), `values` are set, and the names in `existing`
 * that were not read become {@link WITHHELD}.
 */
export function mergeSecrets(env: Env, values: ReadonlyMap<string, string>, existing: Iterable<string>): Env {
  const secret = new Set<string>(SECRET_NAMES);
  const out: Record<string, string | undefined> = Object.fromEntries(Object.entries(env).filter(([name]) => !secret.has(name)));
  for (const name of existing) out[name] = WITHHELD;
  for (const [name, value] of values) out[name] = value;
  return out;
}

/**
 * The environment one function validates: locally `env` itself; in a deployed stage `env`
 * plus the secrets `fn` needs, read through `reader` (a failure names the parameters, never
 * a value).
 */
export async function resolveFunctionEnv(fn: FunctionName, env: Env, reader: SecretReader): Promise<Env> {
  if (!isDeployed(env)) return env;
  const needs = FUNCTION_SECRETS[fn];
  const fetch = async (names: readonly SecretName[], decrypt: boolean): Promise<ReadonlyMap<string, string>> => {
    try {
      return await reader.read(names, decrypt);
    } catch (err) {
      const why = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
      throw new ConfigError(`Cannot read ${names.join(', ')} from SSM Parameter Store under ${secretsPath(env)}: ${why}`);
    }
  };
  const [values, existing] = await Promise.all([fetch(needs.read, true), needs.exists.length > 0 ? fetch(needs.exists, false) : new Map<string, string>()]);
  return mergeSecrets(env, values, existing.keys());
}

/**
 * The environment as the process sees it. Only `process.env`: a Lambda's settings come from
 * serverless.yml and SSM; `.env` is merged in by the local starter and the scripts
 * (local/dotenv.ts), never read here.
 */
export function processEnv(): Env {
  return { ...process.env };
}

/** An SSM-backed {@link SecretReader} for `env` (`SSM_ENDPOINT` points it at a stand-in). */
export function ssmSecretReader(env: Env): SecretReader {
  const endpoint = str(env, 'SSM_ENDPOINT');
  return createSsmSecretReader({
    path: secretsPath(env),
    region: str(env, 'AWS_REGION', 'us-east-1') || 'us-east-1',
    endpoint,
    // Dummy credentials for a stand-in, as for DynamoDB; in AWS the function's role.
    credentials:
      endpoint === '' ? undefined : { accessKeyId: str(env, 'AWS_ACCESS_KEY_ID', 'local') || 'local', secretAccessKey: str(env, 'AWS_SECRET_ACCESS_KEY', 'local') || 'local' },
  });
}

const functionEnvs = new Map<FunctionName, Promise<Env>>();

/**
 * This process's environment for `fn`, secrets included, resolved once per cold start. A
 * failure is not kept, so the next invocation tries again (an SSM hiccup heals itself; a
 * configuration error fails the same way every time, naming the setting).
 */
export function functionEnv(fn: FunctionName): Promise<Env> {
  let pending = functionEnvs.get(fn);
  if (pending === undefined) {
    const env = processEnv();
    pending = resolveFunctionEnv(fn, env, ssmSecretReader(env));
    functionEnvs.set(fn, pending);
    pending.catch(() => functionEnvs.delete(fn));
  }
  return pending;
}

/**
 * This process's validated configuration for `fn` (see {@link functionEnv}). When it does not
 * validate, the secrets are read again next time: one put after the deploy (say the LLM key)
 * heals a function that refused to start.
 */
export async function functionConfig(fn: FunctionName): Promise<AppConfig> {
  try {
    return loadConfig(await functionEnv(fn), { usesLlm: FUNCTION_SECRETS[fn].usesLlm });
  } catch (err) {
    functionEnvs.delete(fn);
    throw err;
  }
}

/** What `/health` reports: the LLM backend and the channels whose secrets are set. */
export interface ConfiguredSummary {
  llmProvider: LlmProviderName;
  channels: { wechat: boolean; whatsapp: boolean; twilio: boolean };
}

/**
 * What `env` configures, from the secrets' presence alone (health holds no secret value nor
 * vendor setting). Throws {@link ConfigError} naming what is missing when no LLM is.
 */
export function configuredSummary(env: Env): ConfiguredSummary {
  return {
    llmProvider: llmProvider(env),
    channels: {
      wechat: isSet(env, 'WECHAT_TOKEN'),
      whatsapp: ['WHATSAPP_VERIFY_TOKEN', 'WHATSAPP_APP_SECRET', 'WHATSAPP_ACCESS_TOKEN'].some((name) => isSet(env, name)),
      twilio: isSet(env, 'TWILIO_AUTH_TOKEN'),
    },
  };
}
