/**
 * Meta webhook authentication (pure, no I/O).
 *
 * Vendor rules (Meta "Webhooks → Event notifications → Validating payloads",
 * https://developers.facebook.com/docs/graph-api/webhooks/getting-started):
 * - Every POST carries `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, raw body)>`.
 * - The HMAC covers the exact bytes Meta sent. Meta escapes non-ASCII characters
 *   (`"H\u00e4"`), so parsing and re-serialising the JSON changes the bytes and the
 *   signature: always hash the raw body (API Gateway's base64 bodies decoded first).
 * - The verification GET carries `hub.verify_token`, the token typed into the app console.
 *
 * Both checks fail closed (a missing secret, header or token never verifies) and compare
 * in constant time, so an attacker cannot learn the expected value byte by byte.
 *
 * @module
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/** The header's value prefix; Meta always sends lower-case `sha256=`. */
const PREFIX = 'sha256=';
/** Hex characters in a SHA-256 digest. */
const SHA256_HEX_LENGTH = 64;

/**
 * Computes the `X-Hub-Signature-256` header value for a body, as Meta does.
 * Used by tests, fakes and the benchmark to sign sample requests.
 *
 * @param appSecret - the Meta app secret.
 * @param rawBody - the exact body bytes (a string is taken as UTF-8).
 * @returns `sha256=` followed by the lower-case hex HMAC-SHA256.
 *
 * @example
 * ```ts
 * signMetaBody('test_app_secret', '{"object":"whatsapp_business_account","entry":[]}');
 * // => 'sha256=dec6a680679a968e7e0319355b23599cbfc54502c0784668e9618baa0c633756'
 * ```
 */
export function signMetaBody(appSecret: string, rawBody: Uint8Array | string): string {
  return PREFIX + createHmac('sha256', appSecret).update(rawBody).digest('hex');
}

/**
 * Verifies `X-Hub-Signature-256` over the raw body, in constant time.
 *
 * Returns `false` (never throws) when the secret or header is missing or empty, when the
 * header is not `sha256=` followed by 64 hex digits (hex case is ignored), or when the
 * HMAC does not match.
 *
 * @param appSecret - the Meta app secret (`WHATSAPP_APP_SECRET`).
 * @param rawBody - the exact body bytes received.
 * @param header - the `X-Hub-Signature-256` header value, if any.
 */
export function verifyMetaSignature(appSecret: string | undefined, rawBody: Uint8Array, header: string | undefined): boolean {
  if (appSecret === undefined || appSecret === '' || header === undefined) return false;
  const value = header.trim();
  if (!value.toLowerCase().startsWith(PREFIX)) return false;
  const hex = value.slice(PREFIX.length);
  if (hex.length !== SHA256_HEX_LENGTH || !/^[0-9a-fA-F]+$/.test(hex)) return false;
  const expected = createHmac('sha256', appSecret).update(rawBody).digest();
  const received = Buffer.from(hex, 'hex');
  return received.length === expected.length && timingSafeEqual(expected, received);
}

/**
 * Compares the `hub.verify_token` of a verification request with the configured token
 * in constant time. Both sides are hashed first so that inputs of different lengths
 * still compare in equal time. An empty configured token never matches.
 *
 * @param expected - the configured `WHATSAPP_VERIFY_TOKEN`.
 * @param received - the `hub.verify_token` query parameter, if any.
 */
export function verifyTokenMatches(expected: string, received: string | undefined): boolean {
  if (expected === '' || received === undefined) return false;
  const a = createHash('sha256').update(expected, 'utf8').digest();
  const b = createHash('sha256').update(received, 'utf8').digest();
  return timingSafeEqual(a, b) && expected.length === received.length;
}
