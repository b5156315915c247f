import { createHash } from 'node:crypto';
import {
  constantTimeEqualStrings,
  verifyMsgSignature,
  verifySignature,
  wechatSignature,
} from '../../../lib/channels/wechat/signature';
import { readVectors, vectorField as field, vectorSection } from '../../support/vectors';

const vectors = readVectors('wechat.json');
const plain = vectorSection(vectors, 'plain_signature');
const safe = vectorSection(vectors, 'safe_mode_decrypt');

describe('wechatSignature', () => {
  it('matches the official plain-signature vector', () => {
    // Arrange
    const parts = [field(plain, 'token'), field(plain, 'timestamp'), field(plain, 'nonce')];
    // Act
    const sig = wechatSignature(parts);
    // Assert
    expect(sig).toBe(field(plain, 'signature'));
  });

  it('matches the official msg_signature vector (token, timestamp, nonce, Encrypt)', () => {
    const sig = wechatSignature([
      field(safe, 'token'),
      field(safe, 'timestamp'),
      field(safe, 'nonce'),
      field(safe, 'encrypt'),
    ]);
    expect(sig).toBe(field(safe, 'msg_signature'));
  });

  it('is independent of the input order and does not reorder the caller array', () => {
    const parts = ['nonce', 'token', '1410685589'];
    const copy = [...parts];
    const sig = wechatSignature(parts);
    expect(parts).toEqual(copy);
    expect(wechatSignature(['1410685589', 'nonce', 'token'])).toBe(sig);
    expect(wechatSignature(['token', 'nonce', '1410685589'])).toBe(sig);
  });

  it('sorts lexicographically with no separator', () => {
    // sorted: ['1', '10', '2'] -> '1102'
    const expected = createHash('sha1').update('1102').digest('hex');
    expect(wechatSignature(['2', '10', '1'])).toBe(expected);
    expect(wechatSignature(['10', '2', '1'])).toBe(expected);
  });
});

describe('verifySignature', () => {
  const token = field(plain, 'token');
  const timestamp = field(plain, 'timestamp');
  const nonce = field(plain, 'nonce');

  it('accepts the official good signature', () => {
    expect(verifySignature(token, timestamp, nonce, field(plain, 'signature'))).toBe(true);
  });

  it('rejects the official must_fail signature (last hex digit changed)', () => {
    expect(verifySignature(token, timestamp, nonce, field(plain, 'must_fail_signature'))).toBe(false);
  });

  it('accepts upper-case hex of the same digest', () => {
    expect(verifySignature(token, timestamp, nonce, field(plain, 'signature').toUpperCase())).toBe(true);
  });

  it.each([
    ['empty token', '', timestamp, nonce],
    ['empty timestamp', token, '', nonce],
    ['empty nonce', token, timestamp, ''],
    ['undefined token', undefined, timestamp, nonce],
    ['null nonce', token, timestamp, null],
  ])('fails closed on %s', (_label, t, ts, n) => {
    expect(verifySignature(t, ts, n, field(plain, 'signature'))).toBe(false);
  });

  it('fails closed when the signature is missing or empty', () => {
    expect(verifySignature(token, timestamp, nonce, undefined)).toBe(false);
    expect(verifySignature(token, timestamp, nonce, '')).toBe(false);
  });

  it.each([
    ['too short', 'f21891de399b4e33a1a93c9a7b8a8fffb5a443f'],
    ['too long', 'f21891de399b4e33a1a93c9a7b8a8fffb5a443ff0'],
    ['non-hex', 'g21891de399b4e33a1a93c9a7b8a8fffb5a443ff'],
    ['padded', ' f21891de399b4e33a1a93c9a7b8a8fffb5a443ff'],
    ['sha256 length', 'a'.repeat(64)],
    ['unicode', 'ｆ21891de399b4e33a1a93c9a7b8a8fffb5a443ff'],
  ])('returns false (never throws) for a %s signature', (_label, sig) => {
    expect(() => verifySignature(token, timestamp, nonce, sig)).not.toThrow();
    expect(verifySignature(token, timestamp, nonce, sig)).toBe(false);
  });

  it('rejects a signature computed with another token', () => {
    const forged = wechatSignature(['other', timestamp, nonce]);
    expect(verifySignature(token, timestamp, nonce, forged)).toBe(false);
  });
});

describe('verifyMsgSignature', () => {
  const token = field(safe, 'token');
  const timestamp = field(safe, 'timestamp');
  const nonce = field(safe, 'nonce');
  const encrypt = field(safe, 'encrypt');
  const msgSignature = field(safe, 'msg_signature');

  it('accepts the official safe-mode vector', () => {
    expect(verifyMsgSignature(token, timestamp, nonce, encrypt, msgSignature)).toBe(true);
  });

  it('rejects a tampered Encrypt value', () => {
    const tampered = `A${encrypt.slice(1)}`;
    expect(verifyMsgSignature(token, timestamp, nonce, tampered, msgSignature)).toBe(false);
  });

  it('rejects a changed timestamp or nonce (replayed signature)', () => {
    expect(verifyMsgSignature(token, '1409735670', nonce, encrypt, msgSignature)).toBe(false);
    expect(verifyMsgSignature(token, timestamp, '1320562133', encrypt, msgSignature)).toBe(false);
  });

  it('does not accept the plain signature in place of msg_signature', () => {
    const plainSig = wechatSignature([token, timestamp, nonce]);
    expect(verifyMsgSignature(token, timestamp, nonce, encrypt, plainSig)).toBe(false);
  });

  it('fails closed on missing inputs and never throws on junk', () => {
    expect(verifyMsgSignature(undefined, timestamp, nonce, encrypt, msgSignature)).toBe(false);
    expect(verifyMsgSignature(token, timestamp, nonce, '', msgSignature)).toBe(false);
    expect(verifyMsgSignature(token, timestamp, nonce, encrypt, undefined)).toBe(false);
    expect(verifyMsgSignature(token, timestamp, nonce, encrypt, 'zz')).toBe(false);
  });
});

describe('constantTimeEqualStrings', () => {
  it('compares strings of equal and unequal length', () => {
    expect(constantTimeEqualStrings('wx2c2769f8efd9abc2', 'wx2c2769f8efd9abc2')).toBe(true);
    expect(constantTimeEqualStrings('wx2c2769f8efd9abc2', 'wx2c2769f8efd9abc3')).toBe(false);
    expect(constantTimeEqualStrings('wx2c2769f8efd9abc2', 'wx2c2769f8efd9abc')).toBe(false);
    expect(constantTimeEqualStrings('', '')).toBe(true);
    expect(constantTimeEqualStrings('', 'a')).toBe(false);
  });
});
