/**
 * Twilio webhook parameters (pure, no I/O).
 *
 * Twilio posts `application/x-www-form-urlencoded` bodies (Twilio docs, "Webhooks:
 * request parameters"). The signature covers every POST parameter, and a name may
 * repeat, so repeated names are kept as arrays: dropping one would make a genuine
 * request fail validation (https://www.twilio.com/docs/usage/webhooks/webhooks-security).
 *
 * @module
 */

/** Form parameters by name; a repeated name holds every value in order. */
export type TwilioParams = Readonly<Record<string, string | readonly string[]>>;

/**
 * Parses the exact body bytes Twilio sent.
 *
 * @example
 * ```ts
 * parseForm(Buffer.from('Body=hi&MediaUrl0=a&X=1&X=2'));
 * // { Body: 'hi', MediaUrl0: 'a', X: ['1', '2'] }
 * ```
 */
export function parseForm(body: Buffer): TwilioParams {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of new URLSearchParams(body.toString('utf8'))) {
    const seen = out[name];
    if (seen === undefined) out[name] = value;
    else if (typeof seen === 'string') out[name] = [seen, value];
    else seen.push(value);
  }
  return out;
}

/** The (first) value of a parameter, or `''` when absent. */
export function param(params: TwilioParams, name: string): string {
  const value = params[name];
  if (value === undefined) return '';
  if (typeof value === 'string') return value;
  return value[0] ?? '';
}

/** Encodes parameters as a form body (outbound REST calls and test fakes). */
export function encodeForm(params: Readonly<Record<string, string>>): string {
  return new URLSearchParams(params).toString();
}
