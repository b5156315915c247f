/**
 * Per-function configuration: which secrets each Lambda function reads from SSM Parameter
 * Store, resolved once per cold start into its environment and validated.
 *
 * @module
 */
import { createSsmSecretReader, SECRET_NAMES, type SecretName, type SecretReader } from '../secrets';
import { ConfigError, isDeployed, isSet, secretsPath, str, WITHHELD, type Env } from './env';
import { llmProvider, type LlmProviderName } from './llm';

export { SECRET_NAMES, type SecretName, type SecretReader } from '../secrets';

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

/**
 * The secrets `fn` can see when deployed (those it reads and those it only needs to know
 * exist), taken from `env`. The local stack hands each function just these, so a channel is
 * enabled in the same functions as in Lambda. Locally the "exists" ones carry their value:
 * {@link WITHHELD} holds a NUL, which no process environment can carry.
 */
export function functionSecrets(fn: FunctionName, env: Env): Record<string, string> {
  const needs = FUNCTION_SECRETS[fn];
  return Object.fromEntries([...needs.read, ...needs.exists].flatMap((name) => (str(env, name) !== '' ? [[name, str(env, name)]] : [])));
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
  });
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
