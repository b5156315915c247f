/**
 * Helpers for calls to WeChat's HTTP APIs (the token endpoint and the message APIs): errors
 * and logs never carry our credentials, which WeChat takes in the query or the body.
 *
 * @module
 */
import { isJsonObject } from '../../json';

/** Removes every occurrence of the given secrets from `text`. */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) {
    if (secret.length >= 4) out = out.split(secret).join('[redacted]');
  }
  return out;
}

/** Why a fetch failed, without the URL (ours carries credentials in query or body). */
export function describeFetchFailure(err: unknown): { timeout: boolean; reason: string } {
  if (err instanceof Error) {
    const timeout = err.name === 'TimeoutError' || err.name === 'AbortError';
    const cause: unknown = err.cause;
    const code = isJsonObject(cause) && typeof cause.code === 'string' ? cause.code : undefined;
    return { timeout, reason: timeout ? 'timed out' : (code ?? err.name) };
  }
  return { timeout: false, reason: 'unknown error' };
}
