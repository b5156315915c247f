import { encodeForm, param, parseForm } from '../../../lib/channels/twilio/form';

describe('parseForm', () => {
  it('decodes form encoding and keeps repeated names as arrays', () => {
    const params = parseForm(Buffer.from('Body=Hello+w%C3%B6rld%21&From=%2B15551234567&X=1&X=2&X=3'));
    expect(params).toEqual({ Body: 'Hello wörld!', From: '+15551234567', X: ['1', '2', '3'] });
  });

  it('returns an empty object for an empty body', () => {
    expect(parseForm(Buffer.alloc(0))).toEqual({});
  });
});

describe('param', () => {
  it('gives the first value, or an empty string when absent', () => {
    const params = parseForm(Buffer.from('A=1&A=2&B=b'));
    expect(param(params, 'A')).toBe('1');
    expect(param(params, 'B')).toBe('b');
    expect(param(params, 'C')).toBe('');
  });
});

describe('encodeForm', () => {
  it('round-trips through parseForm', () => {
    const body = encodeForm({ To: 'whatsapp:+1555', Body: 'a & b = c\n😀' });
    expect(parseForm(Buffer.from(body))).toEqual({ To: 'whatsapp:+1555', Body: 'a & b = c\n😀' });
  });
});
