import { signMetaBody, verifyMetaSignature, verifyTokenMatches } from '../../../lib/channels/whatsapp/signature';
import { readVectors } from '../../support/vectors';

interface MetaCase {
  body: string;
  header: string;
  note: string;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Reads the vectors file, failing the test when it has another shape. */
function loadVectors(): { appSecret: string; cases: MetaCase[] } {
  const parsed = readVectors('meta.json');
  if (!isRecord(parsed) || typeof parsed.app_secret !== 'string' || !Array.isArray(parsed.cases)) throw new Error('unexpected meta.json shape');
  const cases: MetaCase[] = parsed.cases.map((c: unknown) => {
    if (!isRecord(c) || typeof c.body !== 'string' || typeof c.header !== 'string') throw new Error('unexpected case shape');
    return { body: c.body, header: c.header, note: typeof c.note === 'string' ? c.note : '' };
  });
  return { appSecret: parsed.app_secret, cases };
}

const vectors = loadVectors();

describe('Meta webhook signature (X-Hub-Signature-256)', () => {
  it.each(vectors.cases.map((c) => [c.body, c]))('matches the known answer for %s', (_label, c) => {
    // Arrange
    const bytes = Buffer.from(c.body, 'utf8');
    // Act
    const computed = signMetaBody(vectors.appSecret, bytes);
    const ok = verifyMetaSignature(vectors.appSecret, bytes, c.header);
    // Assert
    expect(computed).toBe(c.header);
    expect(ok).toBe(true);
  });

  it('hashes the escaped bytes: the re-serialised UTF-8 body does not verify', () => {
    // Arrange: vector 2 carries "\u00e4" literally; vector 3 is the same JSON as UTF-8.
    const escaped = vectors.cases.find((c) => c.body.includes('\\u00e4'));
    const utf8 = vectors.cases.find((c) => c.body.includes('ä'));
    if (!escaped || !utf8) throw new Error('vectors lack the unicode cases');
    const reserialised = Buffer.from(JSON.stringify(JSON.parse(escaped.body)), 'utf8');
    // Act / Assert
    expect(reserialised.toString('utf8')).toBe(utf8.body);
    expect(verifyMetaSignature(vectors.appSecret, reserialised, escaped.header)).toBe(false);
  });

  it('accepts upper-case hex and surrounding white space', () => {
    const c = vectors.cases[0];
    if (!c) throw new Error('no vectors');
    const upper = `sha256=${c.header.slice('sha256='.length).toUpperCase()}`;
    expect(verifyMetaSignature(vectors.appSecret, Buffer.from(c.body), ` ${upper} `)).toBe(true);
  });

  it('fails closed on a missing, empty, malformed or wrong signature', () => {
    const c = vectors.cases[0];
    if (!c) throw new Error('no vectors');
    const body = Buffer.from(c.body);
    const hex = c.header.slice('sha256='.length);
    const flipped = `sha256=${hex.slice(0, -1)}${hex.endsWith('0') ? '1' : '0'}`;
    expect(verifyMetaSignature(vectors.appSecret, body, undefined)).toBe(false);
    expect(verifyMetaSignature(vectors.appSecret, body, '')).toBe(false);
    expect(verifyMetaSignature(vectors.appSecret, body, hex)).toBe(false); // no prefix
    expect(verifyMetaSignature(vectors.appSecret, body, `sha1=${hex}`)).toBe(false);
    expect(verifyMetaSignature(vectors.appSecret, body, `sha256=${hex.slice(2)}`)).toBe(false); // short
    expect(verifyMetaSignature(vectors.appSecret, body, `sha256=${'z'.repeat(64)}`)).toBe(false); // not hex
    expect(verifyMetaSignature(vectors.appSecret, body, flipped)).toBe(false);
    expect(verifyMetaSignature('another_secret', body, c.header)).toBe(false);
    expect(verifyMetaSignature(vectors.appSecret, Buffer.concat([body, Buffer.from(' ')]), c.header)).toBe(false);
  });

  it('never verifies without an app secret', () => {
    const body = Buffer.from('{}');
    expect(verifyMetaSignature('', body, signMetaBody('', body))).toBe(false);
    expect(verifyMetaSignature(undefined, body, signMetaBody('', body))).toBe(false);
  });
});

describe('verifyTokenMatches', () => {
  it('matches only the exact configured token', () => {
    expect(verifyTokenMatches('my-verify-token', 'my-verify-token')).toBe(true);
    expect(verifyTokenMatches('my-verify-token', 'my-verify-tokeN')).toBe(false);
    expect(verifyTokenMatches('my-verify-token', 'my-verify-token ')).toBe(false);
    expect(verifyTokenMatches('my-verify-token', undefined)).toBe(false);
  });

  it('never matches an empty configured token', () => {
    expect(verifyTokenMatches('', '')).toBe(false);
  });
});
