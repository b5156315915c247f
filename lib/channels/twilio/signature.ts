/**
 * Twilio request signatures (pure, no I/O).
 *
 * Twilio's rule (Twilio docs, "Webhooks security",
 * https://www.twilio.com/docs/usage/webhooks/webhooks-security):
 * `X-Twilio-Signature = base64(HMAC-SHA1(auth token, url + concat(sorted(name + value))))`
 * over the POST parameters, where `url` is the exact URL Twilio called, query included.
 * Behind API Gateway that URL cannot be rebuilt reliably from headers (host, scheme and
 * port are the gateway's), so it is built from the configured public base URL plus the
 * request's path and raw query; through a Lambda function URL, from that URL, which Lambda
 * names in the event ({@link calledBaseUrl}).
 *
 * The check itself is Twilio's own `validateRequest`, imported from its webhooks module
 * alone (a few kB bundled; the package's root pulls in the whole REST client). It
 * compares in constant time and tries the URL both without and with the default port
 * (`:443` / `:80`), because Twilio signs whichever form the webhook was configured with.
 *
 * @module
 */
import { validateRequest } from 'twilio/lib/webhooks/webhooks';
import type { HttpRequest } from '../http';
import type { TwilioParams } from './form';

/**
 * The public URL Twilio called: `PUBLIC_BASE_URL` + path + (`?` + raw query, if any).
 * The raw query is used verbatim: Twilio signs the characters it sent, so re-encoding
 * it (e.g. through `URLSearchParams`) could break a valid signature.
 *
 * @example
 * ```ts
 * publicUrl('https://abc.execute-api.us-east-1.amazonaws.com', '/twilio/voice/poll', 't=1&r=0');
 * // 'https://abc.execute-api.us-east-1.amazonaws.com/twilio/voice/poll?t=1&r=0'
 * ```
 */
export function publicUrl(publicBaseUrl: string, path: string, rawQuery: string): string {
  const base = publicBaseUrl.replace(/\/+$/, '');
  return rawQuery === '' ? `${base}${path}` : `${base}${path}?${rawQuery}`;
}

/**
 * The base of the URL Twilio called, to verify its signature and to build the next URLs of a
 * call: the function URL the request came through, else `PUBLIC_BASE_URL` (the HTTP API's URL
 * or a custom domain in front of it). A function cannot be given its own function URL in its
 * configuration (CloudFormation would see a cycle), so it is taken from the request.
 */
export function calledBaseUrl(publicBaseUrl: string, req: Pick<HttpRequest, 'functionUrlOrigin'>): string {
  return req.functionUrlOrigin ?? publicBaseUrl;
}

/**
 * Verifies `X-Twilio-Signature` for a form-encoded request. Fails closed: an empty
 * token or signature, or a URL that does not parse, is `false`, never an exception.
 *
 * @param authToken - the account's auth token (`TWILIO_AUTH_TOKEN`).
 * @param signature - the `X-Twilio-Signature` header value.
 * @param url - the public URL Twilio called (see {@link publicUrl}).
 * @param params - the POST parameters (see `parseForm`).
 */
export function verifyTwilioSignature(authToken: string, signature: string, url: string, params: TwilioParams): boolean {
  if (authToken === '' || signature === '') return false;
  // The validator's parameter type is `Record<string, any>`; copy into a plain record
  // of strings and string arrays, which is what it handles.
  const plain: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(params)) plain[name] = typeof value === 'string' ? value : [...value];
  try {
    return validateRequest(authToken, signature, url, plain);
  } catch {
    // `new URL()` inside the validator throws on a malformed URL: not a valid request.
    return false;
  }
}
