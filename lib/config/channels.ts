/**
 * Channel settings: WeChat Official Accounts, WhatsApp Cloud API and Twilio. A channel
 * whose secrets are all missing is disabled (undefined); one with some but not all of them
 * is a start-up error naming the variable.
 *
 * @module
 */
import { bool, channelSecrets, ConfigError, int, isSet, str, url, type Env } from './env';

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

export function loadWeChat(env: Env): WeChatConfig | undefined {
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

export function loadWhatsApp(env: Env): WhatsAppConfig | undefined {
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

export function loadTwilio(env: Env): TwilioConfig | undefined {
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
