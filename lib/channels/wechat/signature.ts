/**
 * WeChat Official Account request signatures (pure, no I/O).
 *
 * Vendor rules (WeChat Official Account docs, "接入指南" / "消息加解密说明";
 * https://developers.weixin.qq.com/doc/offiaccount/Basic_Information/Access_Overview.html,
 * https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Message_encryption_and_decryption_instructions.html):
 * - URL verification and every plain POST carry
 *   `signature = hex(sha1(join(sort([token, timestamp, nonce]))))`.
 * - Safe mode (`encrypt_type=aes`) adds
 *   `msg_signature = hex(sha1(join(sort([token, timestamp, nonce, Encrypt]))))`.
 * The sort is lexicographic with no separator between the parts.
 *
 * Checks fail closed: a missing or empty input never verifies, and a malformed
 * signature is a plain `false`, never an exception.
 *
 * @module
 */
import { createHash, timingSafeEqual } from 'node:crypto';

/** Length in hex characters of a SHA-1 digest. */
const SHA1_HEX_LENGTH = 40;

/**
 * Byte-wise comparison of the UTF-8 encodings of two strings.
 *
 * Tencent's reference implementations sort the raw strings byte-wise (PHP
 * `sort($a, SORT_STRING)`, Python 2 `list.sort()` on `str`). For the ASCII values
 * WeChat actually sends this equals JavaScript's default sort; byte order only
 * differs from UTF-16 code-unit order above U+D7FF, and we follow the vendor there.
 */
function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/**
 * Computes a WeChat signature: hex(sha1(sorted(parts).join(''))).
 *
 * The input array is not modified.
 *
 * @param parts - the values to sign, e.g. `[token, timestamp, nonce]` or
 *   `[token, timestamp, nonce, encrypt]`.
 * @returns the lower-case hex SHA-1 digest (40 characters).
 *
 * @example
 * ```ts
 * wechatSignature(['test', '1410685589', 'test']);
 * // => 'f21891de399b4e33a1a93c9a7b8a8fffb5a443ff'
 * ```
 */
export function wechatSignature(parts: readonly string[]): string {
  const sorted = [...parts].sort(compareUtf8);
  return createHash('sha1').update(sorted.join(''), 'utf8').digest('hex');
}

/**
 * Compares two strings in time independent of where they differ.
 *
 * Both sides are hashed with SHA-256 first so the comparison also runs on
 * equal-length buffers when the inputs differ in length (then the result is `false`).
 *
 * @returns `true` when `a === b`.
 */
export function constantTimeEqualStrings(a: string, b: string): boolean {
  const da = createHash('sha256').update(a, 'utf8').digest();
  const db = createHash('sha256').update(b, 'utf8').digest();
  // The length check is redundant after hashing but keeps the contract explicit.
  return timingSafeEqual(da, db) && a.length === b.length;
}

/** True for a non-empty string. */
function present(value: string | undefined | null): value is string {
  return typeof value === 'string' && value.length > 0;
}

/**
 * Compares a received hex signature with the expected one in constant time.
 * Non-hex or wrong-length input is `false`; hex case is ignored.
 */
function hexSignatureMatches(expectedHex: string, receivedHex: string): boolean {
  if (receivedHex.length !== SHA1_HEX_LENGTH || !/^[0-9a-fA-F]+$/.test(receivedHex)) {
    return false;
  }
  const expected = Buffer.from(expectedHex, 'hex');
  const received = Buffer.from(receivedHex, 'hex');
  if (expected.length !== received.length) return false;
  return timingSafeEqual(expected, received);
}

/**
 * Verifies the plain `signature` query parameter WeChat sends on the URL check (GET)
 * and on every POST.
 *
 * Fails closed: returns `false` when any input is missing or empty (a missing
 * token must never mean "accept all"), when the signature is not 40 hex
 * characters, or when it does not match. Never throws.
 *
 * @param token - the Token configured in the WeChat admin console.
 * @param timestamp - the `timestamp` query parameter, verbatim.
 * @param nonce - the `nonce` query parameter, verbatim.
 * @param signature - the `signature` query parameter.
 */
export function verifySignature(
  token: string | undefined | null,
  timestamp: string | undefined | null,
  nonce: string | undefined | null,
  signature: string | undefined | null,
): boolean {
  if (!present(token) || !present(timestamp) || !present(nonce) || !present(signature)) {
    return false;
  }
  return hexSignatureMatches(wechatSignature([token, timestamp, nonce]), signature);
}

/**
 * Verifies the safe-mode `msg_signature` query parameter over the `Encrypt`
 * element of the body. Verify this before decrypting: the cipher has no MAC of
 * its own, so this signature is what authenticates the ciphertext.
 *
 * Fails closed like {@link verifySignature}; never throws.
 *
 * @param token - the configured Token.
 * @param timestamp - the `timestamp` query parameter, verbatim.
 * @param nonce - the `nonce` query parameter, verbatim.
 * @param encrypt - the text of the body's `<Encrypt>` element, verbatim.
 * @param msgSignature - the `msg_signature` query parameter.
 */
export function verifyMsgSignature(
  token: string | undefined | null,
  timestamp: string | undefined | null,
  nonce: string | undefined | null,
  encrypt: string | undefined | null,
  msgSignature: string | undefined | null,
): boolean {
  if (
    !present(token) ||
    !present(timestamp) ||
    !present(nonce) ||
    !present(encrypt) ||
    !present(msgSignature)
  ) {
    return false;
  }
  return hexSignatureMatches(wechatSignature([token, timestamp, nonce, encrypt]), msgSignature);
}
