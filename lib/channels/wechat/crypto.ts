/**
 * WeChat safe-mode (安全模式) message encryption, pure and synchronous.
 *
 * Written from the vendor's description of the scheme (WeChat Official Account docs,
 * "消息加解密说明", the scheme of Tencent's WXBizMsgCrypt samples;
 * https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Message_encryption_and_decryption_instructions.html):
 * - `AESKey = base64decode(EncodingAESKey + "=")`, 32 bytes; AES-256-CBC with
 *   IV = the first 16 bytes of the key.
 * - PKCS#7 padding with a **32-byte** block (pad value 1..32), so Node's built-in
 *   16-byte padding is switched off and padding is done here.
 * - Plaintext = 16 random bytes ‖ uint32 big-endian byte length of msg ‖ msg (UTF-8) ‖ appid.
 * - `msg_signature = hex(sha1(sort([token, timestamp, nonce, Encrypt]).join('')))`.
 *
 * The cipher has no MAC: verify `msg_signature` (see `verifyMsgSignature`) before calling
 * {@link decrypt} so that nobody without the Token can probe the padding checks.
 * Randomness and time are parameters, never read here.
 *
 * @module
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { constantTimeEqualStrings, wechatSignature } from './signature';

/** Why a safe-mode operation failed. */
export type WeChatCryptoErrorCode =
  /** The EncodingAESKey or AES key is not valid (length or alphabet). */
  | 'bad_key'
  /** The PKCS#7 (32-byte block) padding is not valid. */
  | 'bad_padding'
  /** The decrypted block is too short or its declared message length does not fit. */
  | 'bad_length'
  /** The decrypted appid is not the expected one. */
  | 'appid_mismatch'
  /** The ciphertext is not valid base64 / block-aligned, or the cipher or UTF-8 decoding failed. */
  | 'decrypt_failed';

/**
 * Typed error for every failure in this module. Messages never contain key
 * material or plaintext.
 */
export class WeChatCryptoError extends Error {
  /** Machine-readable reason. */
  readonly code: WeChatCryptoErrorCode;

  /**
   * @param code - machine-readable reason.
   * @param message - human-readable detail (no secrets, no plaintext).
   */
  constructor(code: WeChatCryptoErrorCode, message: string) {
    super(message);
    this.name = 'WeChatCryptoError';
    this.code = code;
  }
}

/** PKCS#7 block size used by WeChat (not the AES block size of 16). */
export const WECHAT_PAD_BLOCK = 32;
/** AES-256 key length in bytes. */
const AES_KEY_BYTES = 32;
/** Length of the random prefix of the plaintext. */
const RANDOM_BYTES = 16;
/** Length of the big-endian message length field. */
const LENGTH_FIELD_BYTES = 4;
/** AES block size: the ciphertext length must be a multiple of it. */
const AES_BLOCK = 16;

/**
 * Derives the 32-byte AES key from the 43-character EncodingAESKey.
 *
 * Vendor rule: `AESKey = base64decode(EncodingAESKey + "=")`. The 43rd character
 * carries 2 bits that the decoder drops; they are not required to be zero
 * (Tencent's own sample key `abc…EFG` has them set).
 *
 * @param encodingAesKey - the EncodingAESKey from the admin console.
 * @returns the 32-byte AES key.
 * @throws {@link WeChatCryptoError} `bad_key` when the key is not 43 characters of the
 *   standard base64 alphabet.
 */
export function aesKeyFromEncodingAesKey(encodingAesKey: string): Buffer {
  if (!/^[A-Za-z0-9+/]{43}$/.test(encodingAesKey)) {
    throw new WeChatCryptoError(
      'bad_key',
      'EncodingAESKey must be exactly 43 characters of the base64 alphabet',
    );
  }
  const key = Buffer.from(`${encodingAesKey}=`, 'base64');
  if (key.length !== AES_KEY_BYTES) {
    throw new WeChatCryptoError('bad_key', 'EncodingAESKey does not decode to 32 bytes');
  }
  return key;
}

/**
 * Appends PKCS#7 padding for a 32-byte block: 1..32 bytes, each equal to the pad length.
 * A buffer whose length is already a multiple of 32 gets a full block of 32.
 *
 * @param buf - the data to pad (not modified).
 * @returns a new buffer whose length is a positive multiple of 32.
 */
export function pkcs7Pad32(buf: Uint8Array): Buffer {
  const pad = WECHAT_PAD_BLOCK - (buf.length % WECHAT_PAD_BLOCK);
  return Buffer.concat([buf, Buffer.alloc(pad, pad)]);
}

/**
 * Removes PKCS#7 padding for a 32-byte block, validating it completely.
 *
 * Unlike Tencent's samples, the pad byte is not trusted blindly: the length must be a
 * positive multiple of 32, the pad value must be in 1..32 and every one of the pad
 * bytes must equal it. The pad bytes are all inspected without an early exit.
 *
 * @param buf - decrypted data.
 * @returns a view of `buf` without the padding.
 * @throws {@link WeChatCryptoError} `bad_padding`.
 */
export function pkcs7Unpad32(buf: Uint8Array): Buffer {
  const data = Buffer.from(buf.buffer, buf.byteOffset, buf.length);
  if (data.length === 0 || data.length % WECHAT_PAD_BLOCK !== 0) {
    throw new WeChatCryptoError('bad_padding', 'padded data is not a multiple of 32 bytes');
  }
  const pad = data[data.length - 1] ?? 0;
  if (pad < 1 || pad > WECHAT_PAD_BLOCK) {
    throw new WeChatCryptoError('bad_padding', 'pad value out of range 1..32');
  }
  let diff = 0;
  for (let i = data.length - pad; i < data.length; i++) {
    diff |= (data[i] ?? 0) ^ pad;
  }
  if (diff !== 0) {
    throw new WeChatCryptoError('bad_padding', 'pad bytes are inconsistent');
  }
  return data.subarray(0, data.length - pad);
}

/** Throws `bad_key` unless `key` is a 32-byte AES key. */
function assertAesKey(key: Uint8Array): void {
  if (key.length !== AES_KEY_BYTES) {
    throw new WeChatCryptoError('bad_key', 'AES key must be 32 bytes');
  }
}

/** Strict base64 (standard alphabet, canonical padding); Node's decoder skips junk silently. */
function isStrictBase64(s: string): boolean {
  return s.length > 0 && s.length % 4 === 0 && /^[A-Za-z0-9+/]+={0,2}$/.test(s);
}

/** UTF-8 decoder that rejects invalid sequences instead of inserting U+FFFD. */
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Encrypts a reply (or any XML) the way WeChat expects in safe mode.
 *
 * Plaintext = `random16 ‖ uint32BE(byteLength(msg)) ‖ msg ‖ appId`, padded to 32 bytes,
 * AES-256-CBC with IV = `key[0..16]`, base64.
 *
 * @param plainXml - the message (UTF-8 encoded).
 * @param appId - the account's AppID, appended after the message.
 * @param key - the 32-byte AES key ({@link aesKeyFromEncodingAesKey}).
 * @param random16 - 16 random bytes (injected so tests can pin them).
 * @returns the base64 ciphertext for the `<Encrypt>` element.
 * @throws {@link WeChatCryptoError} `bad_key`; `RangeError` when `random16` is not 16 bytes.
 */
export function encrypt(plainXml: string, appId: string, key: Uint8Array, random16: Uint8Array): string {
  assertAesKey(key);
  if (random16.length !== RANDOM_BYTES) {
    throw new RangeError('random16 must be exactly 16 bytes');
  }
  const msg = Buffer.from(plainXml, 'utf8');
  const length = Buffer.alloc(LENGTH_FIELD_BYTES);
  length.writeUInt32BE(msg.length, 0);
  const plain = pkcs7Pad32(Buffer.concat([random16, length, msg, Buffer.from(appId, 'utf8')]));
  const cipher = createCipheriv('aes-256-cbc', key, key.subarray(0, AES_BLOCK));
  cipher.setAutoPadding(false);
  return Buffer.concat([cipher.update(plain), cipher.final()]).toString('base64');
}

/** Result of {@link decrypt}. */
export interface DecryptedMessage {
  /** The decrypted message (the inbound XML). */
  xml: string;
  /** The appid found after the message; check it against yours. */
  appId: string;
}

/**
 * Decrypts a safe-mode `<Encrypt>` value. Does not check the appid (see
 * {@link decryptAndCheck}).
 *
 * @param encryptB64 - the base64 text of `<Encrypt>`.
 * @param key - the 32-byte AES key.
 * @throws {@link WeChatCryptoError} `decrypt_failed` (not base64, not block-aligned,
 *   invalid UTF-8), `bad_padding`, `bad_length` (shorter than the 20-byte header or the
 *   declared length does not fit), `bad_key`.
 */
export function decrypt(encryptB64: string, key: Uint8Array): DecryptedMessage {
  assertAesKey(key);
  if (!isStrictBase64(encryptB64)) {
    throw new WeChatCryptoError('decrypt_failed', 'ciphertext is not base64');
  }
  const cipherText = Buffer.from(encryptB64, 'base64');
  if (cipherText.length === 0 || cipherText.length % AES_BLOCK !== 0) {
    throw new WeChatCryptoError('decrypt_failed', 'ciphertext is not a whole number of AES blocks');
  }
  let padded: Buffer;
  try {
    const decipher = createDecipheriv('aes-256-cbc', key, key.subarray(0, AES_BLOCK));
    decipher.setAutoPadding(false);
    padded = Buffer.concat([decipher.update(cipherText), decipher.final()]);
  } catch {
    throw new WeChatCryptoError('decrypt_failed', 'AES decryption failed');
  }
  const content = pkcs7Unpad32(padded);
  const header = RANDOM_BYTES + LENGTH_FIELD_BYTES;
  if (content.length < header) {
    throw new WeChatCryptoError('bad_length', 'decrypted block is shorter than its header');
  }
  const msgLength = content.readUInt32BE(RANDOM_BYTES);
  // The declared length must fit in what is left after the header.
  if (msgLength > content.length - header) {
    throw new WeChatCryptoError('bad_length', 'declared message length exceeds the decrypted block');
  }
  try {
    return {
      xml: strictUtf8.decode(content.subarray(header, header + msgLength)),
      appId: strictUtf8.decode(content.subarray(header + msgLength)),
    };
  } catch {
    throw new WeChatCryptoError('decrypt_failed', 'decrypted data is not valid UTF-8');
  }
}

/** Result of {@link decryptAndCheck}. */
export interface CheckedMessage {
  /** The decrypted inbound XML. */
  xml: string;
  /** Which of the given keys worked: 0 = current, 1 = previous, … */
  keyIndex: number;
}

/**
 * Decrypts with the current key and falls back to previous keys (key rotation:
 * WeChat may still use the old EncodingAESKey for a while), then checks the appid in
 * constant time.
 *
 * Error choice when no key works: `appid_mismatch` if some key decrypted cleanly but
 * to another appid (the key fits, the message is for another account); otherwise the
 * error of the first (current) key.
 *
 * @param encryptB64 - the base64 text of `<Encrypt>`; verify `msg_signature` first.
 * @param keys - AES keys, current first, then previous ones.
 * @param expectedAppId - your AppID.
 * @throws {@link WeChatCryptoError} `bad_padding` | `bad_length` | `appid_mismatch` |
 *   `decrypt_failed` (also when `keys` is empty) | `bad_key`.
 */
export function decryptAndCheck(
  encryptB64: string,
  keys: readonly Uint8Array[],
  expectedAppId: string,
): CheckedMessage {
  if (keys.length === 0) {
    throw new WeChatCryptoError('decrypt_failed', 'no AES key configured');
  }
  let firstError: WeChatCryptoError | undefined;
  let mismatch: WeChatCryptoError | undefined;
  for (const [keyIndex, key] of keys.entries()) {
    try {
      const { xml, appId } = decrypt(encryptB64, key);
      if (expectedAppId.length > 0 && constantTimeEqualStrings(appId, expectedAppId)) {
        return { xml, keyIndex };
      }
      mismatch ??= new WeChatCryptoError('appid_mismatch', 'decrypted appid is not the expected one');
    } catch (err) {
      if (!(err instanceof WeChatCryptoError)) throw err;
      firstError ??= err;
    }
  }
  throw mismatch ?? firstError ?? new WeChatCryptoError('decrypt_failed', 'decryption failed');
}

/** Inputs of {@link buildEncryptedReply}. */
export interface EncryptedReplyInput {
  /** The plain passive reply XML (e.g. from `buildTextReply`). */
  replyXml: string;
  /** Your AppID. */
  appId: string;
  /** The current 32-byte AES key. */
  key: Uint8Array;
  /** The configured Token. */
  token: string;
  /** Epoch seconds for `<TimeStamp>` (injected clock). */
  timestampSec: number;
  /** Nonce for `<Nonce>`: letters, digits, `_` or `-`, 1..64 characters. */
  nonce: string;
  /** 16 random bytes (injected randomness). */
  random16: Uint8Array;
}

/**
 * Builds the safe-mode passive reply envelope:
 * `<xml><Encrypt><![CDATA[…]]></Encrypt><MsgSignature><![CDATA[…]]></MsgSignature><TimeStamp>…</TimeStamp><Nonce><![CDATA[…]]></Nonce></xml>`
 * where `MsgSignature = hex(sha1(sort([token, TimeStamp, Nonce, Encrypt]).join('')))`.
 *
 * The base64 ciphertext and the hex signature cannot contain `]]>`; the nonce is
 * restricted to a safe alphabet for the same reason.
 *
 * @throws `RangeError` for a bad timestamp or nonce; {@link WeChatCryptoError} `bad_key`.
 */
export function buildEncryptedReply(input: EncryptedReplyInput): string {
  const { replyXml, appId, key, token, timestampSec, nonce, random16 } = input;
  if (!Number.isSafeInteger(timestampSec) || timestampSec < 0) {
    throw new RangeError('timestampSec must be a non-negative integer');
  }
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(nonce)) {
    throw new RangeError('nonce must be 1..64 characters of [A-Za-z0-9_-]');
  }
  const encrypted = encrypt(replyXml, appId, key, random16);
  const timestamp = String(timestampSec);
  const signature = wechatSignature([token, timestamp, nonce, encrypted]);
  return (
    `<xml><Encrypt><![CDATA[${encrypted}]]></Encrypt>` +
    `<MsgSignature><![CDATA[${signature}]]></MsgSignature>` +
    `<TimeStamp>${timestamp}</TimeStamp>` +
    `<Nonce><![CDATA[${nonce}]]></Nonce></xml>`
  );
}
