/**
 * The one door for configuration (design principle 6): only this module reads
 * `process.env`. Everything is validated once, at cold start, and handed out typed.
 *
 * A channel whose secrets are all missing is disabled; a channel with some but not
 * all of its secrets, or a malformed one, is a start-up error naming the variable.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseEnv } from 'node:util';

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
  /** Pause before the first chunk of a `dev` answer to a message containing `/dev-slow`. */
  devSlowMs: number;
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
}

export type Env = Readonly<Record<string, string | undefined>>;

const DEFAULT_SYSTEM_PROMPT =
  'You are a helpful assistant answering users on a messaging app. Be concise and clear.';

function str(env: Env, name: string, fallback = ''): string {
  const value = env[name];
  return value === undefined ? fallback : value.trim();
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
  const present = [...required, ...optional].filter((name) => str(env, name) !== '');
  if (present.length === 0) return false;
  const missing = required.filter((name) => str(env, name) === '');
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

function loadLlm(env: Env): LlmConfig {
  const explicit = str(env, 'LLM_PROVIDER').toLowerCase();
  let provider: LlmProviderName;
  if (explicit === '') {
    provider = str(env, 'OPENAI_API_KEY') ? 'openai' : str(env, 'DIFY_API_KEY') ? 'dify' : 'dev';
  } else if (explicit === 'openai' || explicit === 'dify' || explicit === 'dev') {
    provider = explicit;
  } else {
    throw new ConfigError(`LLM_PROVIDER must be openai, dify or dev, got "${explicit}"`);
  }
  const openAiKey = str(env, 'OPENAI_API_KEY');
  const difyKey = str(env, 'DIFY_API_KEY');
  if (provider === 'openai' && openAiKey === '') throw new ConfigError('LLM_PROVIDER=openai needs OPENAI_API_KEY');
  if (provider === 'dify' && difyKey === '') throw new ConfigError('LLM_PROVIDER=dify needs DIFY_API_KEY');
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
    devSlowMs: int(env, 'DEV_LLM_SLOW_MS', 20_000, 0, 120_000),
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
  if (encodingAesKey !== '' && appId === '') {
    throw new ConfigError('WECHAT_ENCODING_AES_KEY is set but WECHAT_APP_ID is missing (safe mode checks the appid)');
  }
  if (appId === '' && appSecret !== '') throw new ConfigError('WECHAT_APP_SECRET is set but WECHAT_APP_ID is missing');
  if (appId !== '' && appSecret === '' && encodingAesKey === '') {
    // An AppID alone serves nothing: media, tokens and customer-service messages need the secret.
    throw new ConfigError('WECHAT_APP_ID is set but WECHAT_APP_SECRET is missing');
  }
  if (str(env, 'WECHAT_ENCODING_AES_KEY_PREVIOUS') !== '' && encodingAesKey === '') {
    throw new ConfigError('WECHAT_ENCODING_AES_KEY_PREVIOUS is set but WECHAT_ENCODING_AES_KEY (the current key) is missing');
  }
  if (replyModeRaw === 'customer_service' && (appId === '' || appSecret === '')) {
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

/** Validates `env` into an {@link AppConfig}; throws {@link ConfigError} naming the variable. */
export function loadConfig(env: Env): AppConfig {
  const publicBaseUrl = str(env, 'PUBLIC_BASE_URL');
  return {
    llm: loadLlm(env),
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
  };
}

/**
 * Reads `.env` at `dir` (values already in the environment win, as with dotenv).
 * Missing file is fine; a malformed one is reported by Node's parser as best it can.
 */
export function readDotEnv(dir: string, env: Env): Record<string, string | undefined> {
  let text: string;
  try {
    text = readFileSync(join(dir, '.env'), 'utf8');
  } catch {
    return { ...env };
  }
  return { ...parseEnv(text), ...env };
}

let cached: AppConfig | undefined;

/** The process configuration, validated once per cold start. */
export function config(): AppConfig {
  cached ??= loadConfig(readDotEnv(process.cwd(), process.env));
  return cached;
}

/** Enabled channel names, for `/health` and the router. */
export function enabledChannels(cfg: AppConfig): string[] {
  const names: string[] = [];
  if (cfg.wechat) names.push('wechat');
  if (cfg.whatsapp) names.push('whatsapp');
  if (cfg.twilio) names.push('twilio');
  return names;
}
