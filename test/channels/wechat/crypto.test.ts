import { createCipheriv, createDecipheriv } from 'node:crypto';
import {
  WeChatCryptoError,
  aesKeyFromEncodingAesKey,
  buildEncryptedReply,
  decrypt,
  decryptAndCheck,
  encrypt,
  pkcs7Pad32,
  pkcs7Unpad32,
  type WeChatCryptoErrorCode,
} from '../../../lib/channels/wechat/crypto';
import { verifyMsgSignature } from '../../../lib/channels/wechat/signature';
import { parseEncryptedEnvelope, parseInbound } from '../../../lib/channels/wechat/xml';
import { readVectors, vectorField as field, vectorSection } from '../../support/vectors';

const safe = vectorSection(readVectors('wechat.json'), 'safe_mode_decrypt');

const V = {
  token: field(safe, 'token'),
  encodingAesKey: field(safe, 'encoding_aes_key'),
  appId: field(safe, 'app_id'),
  timestamp: field(safe, 'timestamp'),
  nonce: field(safe, 'nonce'),
  msgSignature: field(safe, 'msg_signature'),
  aesKeyHex: field(safe, 'aes_key_hex'),
  encrypt: field(safe, 'encrypt'),
  plaintext: field(safe, 'plaintext'),
};

/** The 16 "random" bytes of the official vector (see its notes). */
const VECTOR_RANDOM16 = Buffer.from('89465c840c5f116f', 'ascii');
const KEY = aesKeyFromEncodingAesKey(V.encodingAesKey);
const OTHER_KEY = aesKeyFromEncodingAesKey('ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut');
const PINNED_RANDOM = Buffer.from('000102030405060708090a0b0c0d0e0f', 'hex');

/** Raw AES-256-CBC decryption without unpadding, to look at the padding itself. */
function rawDecrypt(b64: string, key: Buffer): Buffer {
  const d = createDecipheriv('aes-256-cbc', key, key.subarray(0, 16));
  d.setAutoPadding(false);
  return Buffer.concat([d.update(Buffer.from(b64, 'base64')), d.final()]);
}

/** Raw AES-256-CBC encryption of an already padded block (to craft bad plaintexts). */
function rawEncrypt(plain: Buffer, key: Buffer): string {
  const c = createCipheriv('aes-256-cbc', key, key.subarray(0, 16));
  c.setAutoPadding(false);
  return Buffer.concat([c.update(plain), c.final()]).toString('base64');
}

/** Runs `fn` and returns the WeChatCryptoError code it throws. */
function cryptoErrorCode(fn: () => unknown): WeChatCryptoErrorCode {
  try {
    fn();
  } catch (err) {
    if (err instanceof WeChatCryptoError) return err.code;
    throw err;
  }
  throw new Error('expected a WeChatCryptoError');
}

function flipBit(b64: string, byteIndex: number): string {
  const buf = Buffer.from(b64, 'base64');
  buf[byteIndex] = (buf[byteIndex] ?? 0) ^ 0x01;
  return buf.toString('base64');
}

describe('aesKeyFromEncodingAesKey', () => {
  it('derives the official vector key', () => {
    expect(KEY.toString('hex')).toBe(V.aesKeyHex);
    expect(KEY).toHaveLength(32);
  });

  it.each([
    ['42 characters', V.encodingAesKey.slice(0, 42)],
    ['44 characters', `${V.encodingAesKey}A`],
    ['already padded', `${V.encodingAesKey.slice(0, 42)}=`],
    ['url-safe alphabet', `${V.encodingAesKey.slice(0, 42)}-`],
    ['whitespace', ` ${V.encodingAesKey.slice(1)}`],
    ['empty', ''],
  ])('rejects a key with %s as bad_key', (_label, k) => {
    expect(cryptoErrorCode(() => aesKeyFromEncodingAesKey(k))).toBe('bad_key');
  });
});

describe('pkcs7Pad32 / pkcs7Unpad32', () => {
  it.each([
    [0, 32],
    [1, 31],
    [15, 17],
    [16, 16],
    [31, 1],
    [32, 32],
    [33, 31],
  ])('pads %i bytes with %i bytes of that value', (len, pad) => {
    const padded = pkcs7Pad32(Buffer.alloc(len, 0x61));
    expect(padded).toHaveLength(len + pad);
    expect(padded.length % 32).toBe(0);
    expect([...padded.subarray(len)]).toEqual(new Array<number>(pad).fill(pad));
    expect(pkcs7Unpad32(padded)).toEqual(Buffer.alloc(len, 0x61));
  });

  it('does not modify its input', () => {
    const input = Buffer.from('abc');
    pkcs7Pad32(input);
    expect(input.toString()).toBe('abc');
  });

  it('rejects data that is empty or not a multiple of 32 bytes', () => {
    expect(cryptoErrorCode(() => pkcs7Unpad32(Buffer.alloc(0)))).toBe('bad_padding');
    expect(cryptoErrorCode(() => pkcs7Unpad32(Buffer.alloc(16, 16)))).toBe('bad_padding');
    expect(cryptoErrorCode(() => pkcs7Unpad32(Buffer.alloc(33, 1)))).toBe('bad_padding');
  });

  it('rejects a pad value of 0 or above 32', () => {
    const zero = Buffer.alloc(32, 0);
    const big = Buffer.alloc(64, 33);
    expect(cryptoErrorCode(() => pkcs7Unpad32(zero))).toBe('bad_padding');
    expect(cryptoErrorCode(() => pkcs7Unpad32(big))).toBe('bad_padding');
  });

  it('checks every pad byte, not only the last one', () => {
    // Arrange: valid pad of 20, then corrupt the first pad byte (the farthest from the end).
    const padded = pkcs7Pad32(Buffer.alloc(12, 0x61));
    expect(padded[31]).toBe(20);
    padded[12] = 19;
    // Act / Assert
    expect(cryptoErrorCode(() => pkcs7Unpad32(padded))).toBe('bad_padding');
  });

  it('accepts a full block of padding (value 32)', () => {
    expect(pkcs7Unpad32(Buffer.concat([Buffer.alloc(32, 7), Buffer.alloc(32, 32)]))).toEqual(Buffer.alloc(32, 7));
  });
});

describe('official safe-mode vector', () => {
  it('verifies msg_signature, decrypts to exactly the plaintext and the appid', () => {
    // Arrange / Act
    const signed = verifyMsgSignature(V.token, V.timestamp, V.nonce, V.encrypt, V.msgSignature);
    const out = decrypt(V.encrypt, KEY);
    // Assert
    expect(signed).toBe(true);
    expect(out.xml).toBe(V.plaintext);
    expect(out.appId).toBe(V.appId);
  });

  it('decryptAndCheck accepts the expected appid with the current key', () => {
    expect(decryptAndCheck(V.encrypt, [KEY], V.appId)).toEqual({ xml: V.plaintext, keyIndex: 0 });
  });

  it('has a 320-byte block with pad value 2 and the documented random prefix', () => {
    const raw = rawDecrypt(V.encrypt, KEY);
    expect(raw).toHaveLength(320);
    expect(raw[319]).toBe(2);
    expect(raw[318]).toBe(2);
    expect(raw.subarray(0, 16).toString('ascii')).toBe('89465c840c5f116f');
  });

  it('encrypt reproduces the official ciphertext byte for byte with the same random prefix', () => {
    expect(encrypt(V.plaintext, V.appId, KEY, VECTOR_RANDOM16)).toBe(V.encrypt);
  });

  it('keeps the 64-bit MsgId of the decrypted message as an exact string', () => {
    const msg = parseInbound(decrypt(V.encrypt, KEY).xml);
    expect(msg.kind).toBe('text');
    if (msg.kind !== 'text') return;
    expect(msg.msgId).toBe('6054768590064713728');
    expect(msg.content).toBe('abcdteT');
  });
});

describe('encrypt -> decrypt round trip', () => {
  const appId = V.appId; // 18 bytes
  const header = 16 + 4;

  // Choose message lengths so that the pad value covers 17..32 (and 1..16 too).
  it.each(Array.from({ length: 32 }, (_unused, i) => i + 1))('pad value %i', (pad) => {
    // Arrange: total = 20 + msg + 18 must be ≡ 32 - pad (mod 32).
    const base = 256;
    const msgLength = base + ((((32 - pad) - header - appId.length - base) % 32) + 64) % 32;
    const message = `<xml>${'x'.repeat(msgLength - 11)}</xml>`;
    expect(Buffer.byteLength(message)).toBe(msgLength);
    // Act
    const b64 = encrypt(message, appId, KEY, PINNED_RANDOM);
    const raw = rawDecrypt(b64, KEY);
    // Assert: the pad value and all pad bytes, then the round trip.
    expect(raw[raw.length - 1]).toBe(pad);
    expect([...raw.subarray(raw.length - pad)]).toEqual(new Array<number>(pad).fill(pad));
    expect(raw.subarray(0, 16)).toEqual(PINNED_RANDOM);
    expect(raw.readUInt32BE(16)).toBe(msgLength);
    expect(decrypt(b64, KEY)).toEqual({ xml: message, appId });
  });

  it('uses the UTF-8 byte length (not the character count) in the length field', () => {
    const message = '<xml><Content><![CDATA[你好 😀 ]]></Content></xml>';
    const b64 = encrypt(message, appId, KEY, PINNED_RANDOM);
    expect(rawDecrypt(b64, KEY).readUInt32BE(16)).toBe(Buffer.byteLength(message, 'utf8'));
    expect(decrypt(b64, KEY)).toEqual({ xml: message, appId });
  });

  it('round-trips an empty message', () => {
    expect(decrypt(encrypt('', appId, KEY, PINNED_RANDOM), KEY)).toEqual({ xml: '', appId });
  });

  it('is deterministic for pinned randomness and changes with it', () => {
    const a = encrypt('<xml/>', appId, KEY, PINNED_RANDOM);
    expect(encrypt('<xml/>', appId, KEY, PINNED_RANDOM)).toBe(a);
    expect(encrypt('<xml/>', appId, KEY, Buffer.alloc(16, 0xff))).not.toBe(a);
  });

  it('refuses a random prefix that is not 16 bytes and a key that is not 32 bytes', () => {
    expect(() => encrypt('<xml/>', appId, KEY, Buffer.alloc(15))).toThrow(RangeError);
    expect(cryptoErrorCode(() => encrypt('<xml/>', appId, KEY.subarray(0, 16), PINNED_RANDOM))).toBe('bad_key');
    expect(cryptoErrorCode(() => decrypt(V.encrypt, KEY.subarray(0, 31)))).toBe('bad_key');
  });
});

describe('decrypt failures are typed', () => {
  it('tampering the last byte of the next-to-last block breaks the padding', () => {
    // CBC: flipping a bit of ciphertext block n-1 flips the same bit of plaintext block n,
    // so the pad value 2 becomes 3 and the pad bytes no longer agree.
    const len = Buffer.from(V.encrypt, 'base64').length;
    const tampered = flipBit(V.encrypt, len - 17);
    expect(cryptoErrorCode(() => decrypt(tampered, KEY))).toBe('bad_padding');
  });

  it('tampering the last block never yields a message, only typed errors', () => {
    // The last plaintext block is garbled at random: usually the padding fails, but a
    // garbled block can end in 0x01 (1 in 256) and fail later, on the UTF-8 of the appid.
    const len = Buffer.from(V.encrypt, 'base64').length;
    const codes = new Set<WeChatCryptoErrorCode>();
    for (let i = len - 16; i < len; i++) {
      codes.add(cryptoErrorCode(() => decrypt(flipBit(V.encrypt, i), KEY)));
    }
    expect(codes.has('bad_padding')).toBe(true);
    for (const code of codes) expect(['bad_padding', 'bad_length', 'decrypt_failed']).toContain(code);
  });

  it('tampering the first block corrupts the declared length', () => {
    // Flips the low bit of plaintext byte 16, the top byte of the length field: +2^24.
    expect(cryptoErrorCode(() => decrypt(flipBit(V.encrypt, 0), KEY))).toBe('bad_length');
  });

  it('rejects a ciphertext that is not strict base64 or not block-aligned', () => {
    expect(cryptoErrorCode(() => decrypt('not base64!', KEY))).toBe('decrypt_failed');
    expect(cryptoErrorCode(() => decrypt('', KEY))).toBe('decrypt_failed');
    expect(cryptoErrorCode(() => decrypt(V.encrypt.slice(0, -4), KEY))).toBe('decrypt_failed');
    expect(cryptoErrorCode(() => decrypt(`${V.encrypt} `, KEY))).toBe('decrypt_failed');
    expect(cryptoErrorCode(() => decrypt(Buffer.alloc(20).toString('base64'), KEY))).toBe('decrypt_failed');
  });

  it('rejects one AES block (16 bytes): not a multiple of the 32-byte pad block', () => {
    expect(cryptoErrorCode(() => decrypt(rawEncrypt(Buffer.alloc(16, 1), KEY), KEY))).toBe('bad_padding');
  });

  it('rejects content shorter than the 20-byte header', () => {
    const plain = pkcs7Pad32(Buffer.alloc(10, 0x41)); // 10 bytes + pad 22
    expect(cryptoErrorCode(() => decrypt(rawEncrypt(plain, KEY), KEY))).toBe('bad_length');
  });

  it('rejects a declared length that does not fit', () => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(1000, 0);
    const plain = pkcs7Pad32(Buffer.concat([PINNED_RANDOM, len, Buffer.from('<xml/>wx')]));
    expect(cryptoErrorCode(() => decrypt(rawEncrypt(plain, KEY), KEY))).toBe('bad_length');
  });

  it('accepts a declared length that exactly fills the block (empty appid)', () => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(6, 0);
    const plain = pkcs7Pad32(Buffer.concat([PINNED_RANDOM, len, Buffer.from('<xml/>')]));
    expect(decrypt(rawEncrypt(plain, KEY), KEY)).toEqual({ xml: '<xml/>', appId: '' });
  });

  it('rejects a message that is not valid UTF-8', () => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(2, 0);
    const plain = pkcs7Pad32(Buffer.concat([PINNED_RANDOM, len, Buffer.from([0xc3, 0x28]), Buffer.from(V.appId)]));
    expect(cryptoErrorCode(() => decrypt(rawEncrypt(plain, KEY), KEY))).toBe('decrypt_failed');
  });

  it('a wrong key fails the structural checks', () => {
    const code = cryptoErrorCode(() => decrypt(V.encrypt, OTHER_KEY));
    expect(['bad_padding', 'bad_length', 'decrypt_failed']).toContain(code);
  });
});

describe('decryptAndCheck', () => {
  it('reports appid_mismatch for a message encrypted for another appid', () => {
    expect(cryptoErrorCode(() => decryptAndCheck(V.encrypt, [KEY], 'wx0000000000000000'))).toBe('appid_mismatch');
    expect(cryptoErrorCode(() => decryptAndCheck(V.encrypt, [KEY], 'wx2c2769f8efd9abc'))).toBe('appid_mismatch');
    expect(cryptoErrorCode(() => decryptAndCheck(V.encrypt, [KEY], ''))).toBe('appid_mismatch');
  });

  it('reports the current key error when no key fits', () => {
    const expected = cryptoErrorCode(() => decrypt(V.encrypt, OTHER_KEY));
    expect(cryptoErrorCode(() => decryptAndCheck(V.encrypt, [OTHER_KEY], V.appId))).toBe(expected);
    expect(cryptoErrorCode(() => decryptAndCheck(V.encrypt, [OTHER_KEY, OTHER_KEY], V.appId))).toBe(expected);
  });

  it('falls back to the previous key after a rotation', () => {
    // Arrange: WeChat still encrypts with the old key (the vector key), we rotated to OTHER_KEY.
    // Act
    const out = decryptAndCheck(V.encrypt, [OTHER_KEY, KEY], V.appId);
    // Assert
    expect(out).toEqual({ xml: V.plaintext, keyIndex: 1 });
  });

  it('prefers the current key when it works', () => {
    const b64 = encrypt('<xml>new</xml>', V.appId, OTHER_KEY, PINNED_RANDOM);
    expect(decryptAndCheck(b64, [OTHER_KEY, KEY], V.appId)).toEqual({ xml: '<xml>new</xml>', keyIndex: 0 });
  });

  it('reports appid_mismatch over a padding error when some key decrypts to another appid', () => {
    expect(cryptoErrorCode(() => decryptAndCheck(V.encrypt, [OTHER_KEY, KEY], 'wx_other'))).toBe('appid_mismatch');
  });

  it('fails closed without keys and skips a malformed key', () => {
    expect(cryptoErrorCode(() => decryptAndCheck(V.encrypt, [], V.appId))).toBe('decrypt_failed');
    expect(decryptAndCheck(V.encrypt, [Buffer.alloc(3), KEY], V.appId).keyIndex).toBe(1);
  });
});

describe('buildEncryptedReply', () => {
  const replyXml =
    '<xml><ToUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></ToUserName><FromUserName><![CDATA[gh_10f6c3c3ac5a]]></FromUserName><CreateTime>1409735669</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[你好]]></Content></xml>';
  const input = {
    replyXml,
    appId: V.appId,
    key: KEY,
    token: V.token,
    timestampSec: 1409735669,
    nonce: '1320562132',
    random16: PINNED_RANDOM,
  };

  it('has the documented shape and a MsgSignature that verifies', () => {
    // Act
    const xml = buildEncryptedReply(input);
    // Assert
    const m =
      /^<xml><Encrypt><!\[CDATA\[([A-Za-z0-9+/=]+)\]\]><\/Encrypt><MsgSignature><!\[CDATA\[([0-9a-f]{40})\]\]><\/MsgSignature><TimeStamp>1409735669<\/TimeStamp><Nonce><!\[CDATA\[1320562132\]\]><\/Nonce><\/xml>$/.exec(
        xml,
      );
    expect(m).not.toBeNull();
    const [, enc = '', sig = ''] = m ?? [];
    expect(verifyMsgSignature(V.token, '1409735669', '1320562132', enc, sig)).toBe(true);
    expect(decryptAndCheck(enc, [KEY], V.appId).xml).toBe(replyXml);
  });

  it('parses back through the envelope parser', () => {
    const env = parseEncryptedEnvelope(buildEncryptedReply(input));
    expect(env.toUserName).toBeUndefined();
    expect(decrypt(env.encrypt, KEY)).toEqual({ xml: replyXml, appId: V.appId });
  });

  it('is deterministic for pinned randomness and time', () => {
    expect(buildEncryptedReply(input)).toBe(buildEncryptedReply({ ...input }));
  });

  it('refuses a bad timestamp or nonce', () => {
    expect(() => buildEncryptedReply({ ...input, timestampSec: -1 })).toThrow(RangeError);
    expect(() => buildEncryptedReply({ ...input, timestampSec: 1.5 })).toThrow(RangeError);
    expect(() => buildEncryptedReply({ ...input, nonce: '' })).toThrow(RangeError);
    expect(() => buildEncryptedReply({ ...input, nonce: 'a]]>b' })).toThrow(RangeError);
  });
});
