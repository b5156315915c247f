/**
 * Reading settings from an environment: the typed readers every area of the configuration
 * uses, and the error that names the setting.
 *
 * @module
 */

/** Raised for any configuration problem; the message names the variable. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export type Env = Readonly<Record<string, string | undefined>>;

/**
 * Stands for a secret this function knows is set (its SSM parameter exists) but does not
 * read: it counts as present when deciding whether a channel or the LLM is configured, and
 * reads as ''. No real environment can hold it (environment values cannot contain NUL).
 */
export const WITHHELD = '\u0000withheld';

export function str(env: Env, name: string, fallback = ''): string {
  const value = env[name];
  if (value === WITHHELD) return '';
  return value === undefined ? fallback : value.trim();
}

/** Whether `name` is set, with its value or {@link WITHHELD}. */
export function isSet(env: Env, name: string): boolean {
  return env[name] === WITHHELD || str(env, name) !== '';
}

export function int(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = str(env, name);
  if (raw === '') return fallback;
  if (!/^-?\d+$/.test(raw)) throw new ConfigError(`${name} must be an integer, got "${raw}"`);
  const value = Number(raw);
  if (value < min || value > max) throw new ConfigError(`${name} must be between ${min} and ${max}, got ${value}`);
  return value;
}

export function bool(env: Env, name: string): boolean {
  const raw = str(env, name).toLowerCase();
  if (raw === '' || raw === '0' || raw === 'false' || raw === 'no') return false;
  if (raw === '1' || raw === 'true' || raw === 'yes') return true;
  throw new ConfigError(`${name} must be 1/0 or true/false, got "${raw}"`);
}

export function url(env: Env, name: string, fallback: string): string {
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
export function channelSecrets(env: Env, channel: string, required: readonly string[], optional: readonly string[] = []): boolean {
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
