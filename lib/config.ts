/**
 * The one door for configuration (design principle 6): only this module (with its areas in
 * lib/config/: env readers, llm, channels, per-function secrets) reads the environment.
 * Everything is validated once, at cold start, and handed out typed.
 *
 * A channel whose secrets are all missing is disabled; a channel with some but not
 * all of its secrets, or a malformed one, is a start-up error naming the variable.
 */
import { loadTwilio, loadWeChat, loadWhatsApp, type TwilioConfig, type WeChatConfig, type WhatsAppConfig } from './config/channels';
import { int, str, url, type Env } from './config/env';
import { loadLlm, loadRateLimit, type LlmConfig, type RateLimitConfig } from './config/llm';
import { FUNCTION_SECRETS, processEnv, resolveFunctionEnv, ssmSecretReader, type FunctionName } from './config/functions';

export { ConfigError, isDeployed, secretsPath, WITHHELD, type Env } from './config/env';
export {
  configuredSummary,
  FUNCTION_SECRETS,
  functionSecrets,
  mergeSecrets,
  processEnv,
  resolveFunctionEnv,
  SECRET_NAMES,
  ssmSecretReader,
  type ConfiguredSummary,
  type FunctionName,
  type FunctionSecrets,
  type SecretName,
  type SecretReader,
} from './config/functions';
export type { DifyConfig, LlmConfig, LlmProviderName, OpenAiConfig, RateLimitConfig } from './config/llm';
export type { TwilioConfig, WeChatConfig, WeChatReplyMode, WhatsAppConfig } from './config/channels';

/** Names of AWS resources the functions use. */
export interface AwsConfig {
  region: string;
  tableName: string;
  queueUrl: string;
  /**
   * Custom endpoints (`DYNAMODB_ENDPOINT`, `SQS_ENDPOINT`); empty in AWS. Credentials are
   * never configuration: the SDK's default provider chain finds the function's role in
   * AWS, and the local starter puts dummy keys in the environment for the stand-ins.
   */
  dynamoEndpoint: string;
  sqsEndpoint: string;
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
