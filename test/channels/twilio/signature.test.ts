import { createHmac } from 'node:crypto';
import { parseForm } from '../../../lib/channels/twilio/form';
import { calledBaseUrl, publicUrl, verifyTwilioSignature } from '../../../lib/channels/twilio/signature';
import { readVectors } from '../../support/vectors';

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function stringRecord(value: unknown): Record<string, string> {
  if (!isRecord(value)) throw new Error('vector is not an object');
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== 'string') throw new Error(`vector ${k} is not a string`);
    out[k] = v;
  }
  return out;
}

const vectors = readVectors('twilio.json');
if (!isRecord(vectors) || typeof vectors.auth_token !== 'string' || !Array.isArray(vectors.cases)) throw new Error('unexpected vector file');
const AUTH_TOKEN = vectors.auth_token;
const PARAMS = stringRecord(vectors.params);
const CASES = vectors.cases.map(stringRecord);

/**
 * Twilio's rule (https://www.twilio.com/docs/usage/webhooks/webhooks-security), written out
 * independently of the validator.
 */
function sign(token: string, url: string, params: Record<string, string>): string {
  const data = Object.keys(params)
    .sort()
    .reduce((acc, k) => acc + k + (params[k] ?? ''), url);
  return createHmac('sha1', token).update(data, 'utf8').digest('base64');
}

describe('verifyTwilioSignature', () => {
  it.each(CASES.map((c) => [c.url ?? '', c.signature ?? '']))('accepts the known-answer vector for %s', (url, signature) => {
    expect(verifyTwilioSignature(AUTH_TOKEN, signature, url, PARAMS)).toBe(true);
  });

  it('accepts a request signed for the URL with :443 when we know it without the port, and vice versa', () => {
    const [withoutPort, withPort] = CASES;
    // Arrange: the URL we rebuild from PUBLIC_BASE_URL has no port.
    const ours = withoutPort?.url ?? '';
    // Act + Assert: Twilio signed the :443 spelling.
    expect(verifyTwilioSignature(AUTH_TOKEN, withPort?.signature ?? '', ours, PARAMS)).toBe(true);
    expect(verifyTwilioSignature(AUTH_TOKEN, withoutPort?.signature ?? '', withPort?.url ?? '', PARAMS)).toBe(true);
  });

  it('matches the rule written out from Twilio\'s webhook security page', () => {
    const url = 'https://gateway.example.com/twilio/messaging';
    const params = { Body: 'héllo & <bye>', From: '+15551234567', MessageSid: 'SM123' };
    expect(verifyTwilioSignature('tok', sign('tok', url, params), url, params)).toBe(true);
  });

  it('rejects a changed parameter, URL, query, token or a missing signature', () => {
    const url = CASES[0]?.url ?? '';
    const signature = CASES[0]?.signature ?? '';
    expect(verifyTwilioSignature(AUTH_TOKEN, signature, url, { ...PARAMS, Digits: '1235' })).toBe(false);
    expect(verifyTwilioSignature(AUTH_TOKEN, signature, url.replace('https:', 'http:'), PARAMS)).toBe(false);
    expect(verifyTwilioSignature(AUTH_TOKEN, signature, url.replace('foo=1', 'foo=2'), PARAMS)).toBe(false);
    expect(verifyTwilioSignature('54321', signature, url, PARAMS)).toBe(false);
    expect(verifyTwilioSignature(AUTH_TOKEN, '', url, PARAMS)).toBe(false);
    expect(verifyTwilioSignature('', signature, url, PARAMS)).toBe(false);
  });

  it('fails closed on a malformed URL instead of throwing', () => {
    expect(verifyTwilioSignature(AUTH_TOKEN, 'abc=', 'not a url', PARAMS)).toBe(false);
  });

  it('signs repeated parameters as sorted name+value pairs', () => {
    // Arrange: a form with a repeated name, as parsed from the exact body.
    const url = 'https://gateway.example.com/twilio/messaging';
    const params = parseForm(Buffer.from('B=2&A=x&B=1'));
    const signature = createHmac('sha1', 'tok').update(`${url}AxB1B2`).digest('base64');
    // Act + Assert
    expect(verifyTwilioSignature('tok', signature, url, params)).toBe(true);
  });
});

describe('publicUrl', () => {
  it('joins the configured base, the path and the raw query verbatim', () => {
    expect(publicUrl('https://api.example.com', '/twilio/voice/poll', 't=1&r=0')).toBe('https://api.example.com/twilio/voice/poll?t=1&r=0');
    expect(publicUrl('https://api.example.com/', '/twilio/messaging', '')).toBe('https://api.example.com/twilio/messaging');
    expect(publicUrl('https://api.example.com', '/x', 'a=%27q%27')).toBe('https://api.example.com/x?a=%27q%27');
  });
});

describe('calledBaseUrl', () => {
  it('takes the function URL the request came through, else PUBLIC_BASE_URL', () => {
    const origin = 'https://z4abc7ogynmz2tq0ttlhe1kpsi0jgkxv.lambda-url.eu-west-1.on.aws';
    expect(calledBaseUrl('https://api.example.com', { functionUrlOrigin: origin })).toBe(origin);
    expect(calledBaseUrl('https://api.example.com', {})).toBe('https://api.example.com');
  });
});
