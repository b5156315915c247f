import { AsyncLocalStorage } from 'node:async_hooks';
import { Logger } from '@aws-lambda-powertools/logger';
import type { Log } from '../types';

/**
 * Log keys whose value identifies a person: a phone number (Twilio `From` / `To`, a
 * WhatsApp `wa_id` / `recipient_id`), a WeChat OpenID, or a key built from one (the
 * table's `pk`, a conversation key). Compared case-insensitively. Their values are
 * always masked with {@link maskId}, whatever their shape.
 */
const IDENTIFIER_KEYS: ReadonlySet<string> = new Set([
  'userid',
  'user',
  'from',
  'to',
  'phone',
  'caller',
  'called',
  'openid',
  'fromusername',
  'tousername',
  'touser',
  'waid',
  'wa_id',
  'recipient',
  'recipientid',
  'recipient_id',
  'conversationkey',
  'pk',
]);

/**
 * Keys holding free text that may quote an identifier: vendors' error messages do
 * (Twilio: "The 'To' number +1415… is not a valid phone number"). Phone numbers and
 * OpenIDs found inside them are masked; the rest of the text stays readable.
 */
const FREE_TEXT_KEYS: ReadonlySet<string> = new Set(['error', 'message', 'reason', 'detail', 'errmsg']);

/** A phone number in free text: E.164 with or without `+`, maybe `whatsapp:`-prefixed, 8-15 digits. */
const PHONE_IN_TEXT = /(?<![\w+])(whatsapp:)?(\+?)(\d{8,15})(?![\w])/gi;
/** A WeChat OpenID in free text: 28 characters of [A-Za-z0-9_-] starting with `o`. */
const OPENID_IN_TEXT = /(?<![\w-])o[\w-]{27}(?![\w-])/g;
/** A channel prefix kept in clear (`whatsapp:+1…`). */
const CHANNEL_PREFIX = /^(whatsapp|messenger|sms|tel):/i;
/** How deep nested log fields are walked. */
const MAX_DEPTH = 6;

/**
 * Masks one identifier for the logs, keeping enough to tell users apart while reading
 * them and not enough to reach the person: the channel prefix (`whatsapp:`), a leading
 * `+`, the first two and the last four characters. Keys built from an identifier
 * (`user#twilio#+14155552671`, `twilio#+1415…`) keep their structure: only the part
 * after the last `#` is masked.
 *
 * @example maskId('+14155552671') === '+14****2671'
 * @example maskId('whatsapp:+14155552671') === 'whatsapp:+14****2671'
 * @example maskId('oyORnuP8q7ou2gfYjqLzSIWZf0rs') === 'oy****f0rs'
 * @example maskId('user#twilio#+14155552671') === 'user#twilio#+14****2671'
 */
export function maskId(value: string): string {
  const hash = value.lastIndexOf('#');
  if (hash >= 0) return value.slice(0, hash + 1) + maskId(value.slice(hash + 1));
  const prefix = CHANNEL_PREFIX.exec(value)?.[0] ?? '';
  let rest = value.slice(prefix.length);
  const plus = rest.startsWith('+') ? '+' : '';
  rest = rest.slice(plus.length);
  if (rest.length === 0) return value;
  // Short values (a test id, a truncated number) keep at most their last two characters.
  if (rest.length <= 8) return `${prefix}${plus}****${rest.slice(-2)}`;
  return `${prefix}${plus}${rest.slice(0, 2)}****${rest.slice(-4)}`;
}

/** Masks the phone numbers and OpenIDs quoted in free text (a message, a vendor's error). */
export function maskIdsInText(text: string): string {
  return text
    .replace(PHONE_IN_TEXT, (_m, wa: string | undefined, plus: string, digits: string) => maskId(`${wa ?? ''}${plus}${digits}`))
    .replace(OPENID_IN_TEXT, (id) => maskId(id));
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** Every string inside `value` masked as an identifier. */
function maskAll(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return maskId(value);
  if (typeof value === 'number' || typeof value === 'bigint') return maskId(String(value));
  if (depth >= MAX_DEPTH) return '[masked]';
  if (Array.isArray(value)) return value.map((v) => maskAll(v, depth + 1));
  if (isPlainObject(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, maskAll(v, depth + 1)]));
  return value;
}

function redactValue(key: string, value: unknown, depth: number): unknown {
  const lower = key.toLowerCase();
  if (IDENTIFIER_KEYS.has(lower)) return maskAll(value, depth);
  if (value instanceof Error) return `${value.name}: ${maskIdsInText(value.message)}`;
  if (typeof value === 'string') return FREE_TEXT_KEYS.has(lower) ? maskIdsInText(value) : value;
  if (depth >= MAX_DEPTH) return value;
  if (Array.isArray(value)) return value.map((v) => redactValue(key, v, depth + 1));
  if (isPlainObject(value)) return redactLogFields(value, depth + 1);
  return value;
}

/**
 * A copy of a log record's fields with every identifier masked: values under
 * identifier keys (`userId`, `from`, `to`, `phone`, `openid`, `waId`, `recipient`,
 * `conversationKey`, `pk`, …) through {@link maskId}, and numbers or OpenIDs quoted in
 * free-text fields (`error`, `message`, `reason`, …) through {@link maskIdsInText}.
 * Nested objects and arrays are walked; other values are kept as they are.
 */
export function redactLogFields(fields: Record<string, unknown>, depth = 0): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(fields)) out[key] = redactValue(key, value, depth);
  return out;
}

/**
 * Wraps a {@link Log} so that nothing it writes carries a full phone number, WhatsApp id
 * or WeChat OpenID: the message's free text and every field go through the masking
 * above. Every log of the deployed functions is built by {@link createLog}, which applies
 * it, so call sites need not remember to mask.
 */
export function maskingLog(inner: Log): Log {
  const mask = (extra: Record<string, unknown> | undefined): Record<string, unknown> => (extra ? redactLogFields(extra) : {});
  return {
    debug: (message, extra) => inner.debug(maskIdsInText(message), mask(extra)),
    info: (message, extra) => inner.info(maskIdsInText(message), mask(extra)),
    warn: (message, extra) => inner.warn(maskIdsInText(message), mask(extra)),
    error: (message, extra) => inner.error(maskIdsInText(message), mask(extra)),
  };
}

/** The log key carrying the message key of the user message being handled. */
export const CORRELATION_KEY = 'correlation_id';

/** The message being handled in this async context (set once its key is known). */
const correlation = new AsyncLocalStorage<{ id: string | undefined }>();

/**
 * Runs `fn` in a correlation scope: every line {@link correlatedLog} writes inside it (across
 * awaits, in any module) carries the id set by {@link setCorrelationId}, or `id` if given. A
 * webhook opens a scope per request and sets the id once it knows the message key; the worker
 * opens one per job with the job's key. Concurrent scopes do not see each other's id (unlike
 * a logger-wide `appendKeys`, which the worker's parallel records would overwrite).
 */
export function withCorrelationId<T>(id: string | undefined, fn: () => Promise<T>): Promise<T> {
  return correlation.run({ id }, fn);
}

/** Sets the current scope's correlation id: the message key, the same in the ingress and the worker. No-op outside a scope. */
export function setCorrelationId(id: string): void {
  const scope = correlation.getStore();
  if (scope) scope.id = id;
}

/** The current scope's correlation id, if any. */
export function currentCorrelationId(): string | undefined {
  return correlation.getStore()?.id;
}

/**
 * Adds `correlation_id` (the message key, identifiers in it masked) to every line written in a
 * correlation scope, so one message can be followed from its webhook to its answer in
 * CloudWatch Logs Insights (README: "Tracing one message").
 */
export function correlatedLog(inner: Log): Log {
  const add = (extra: Record<string, unknown> | undefined): Record<string, unknown> | undefined => {
    const id = currentCorrelationId();
    return id === undefined ? extra : { [CORRELATION_KEY]: maskIdsInText(id), ...extra };
  };
  return {
    debug: (message, extra) => inner.debug(message, add(extra)),
    info: (message, extra) => inner.info(message, add(extra)),
    warn: (message, extra) => inner.warn(message, add(extra)),
    error: (message, extra) => inner.error(message, add(extra)),
  };
}

/**
 * Structured JSON logs (Powertools Logger): one line per event with the service name,
 * level and cold-start flag, searchable in CloudWatch Logs Insights. Identifiers are
 * masked ({@link maskingLog}): phone numbers and OpenIDs are personal data and logs
 * are kept and read more widely than the table. Lines written while a message is handled
 * carry its key as `correlation_id` ({@link correlatedLog}).
 */
export function createLog(serviceName: string, level: string): Log {
  const logger = new Logger({ serviceName, logLevel: level.toUpperCase() === 'DEBUG' ? 'DEBUG' : level.toUpperCase() === 'WARN' ? 'WARN' : level.toUpperCase() === 'ERROR' ? 'ERROR' : 'INFO' });
  return correlatedLog(
    maskingLog({
      debug: (message, extra) => logger.debug(message, extra ?? {}),
      info: (message, extra) => logger.info(message, extra ?? {}),
      warn: (message, extra) => logger.warn(message, extra ?? {}),
      error: (message, extra) => logger.error(message, extra ?? {}),
    }),
  );
}
