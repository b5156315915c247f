/**
 * TwiML: the XML Twilio reads from a webhook response (pure, no I/O).
 *
 * Only the verbs the gateway uses are built here, each as a small function returning an
 * XML fragment; {@link twiml} wraps them in `<Response>` and {@link twimlResponse} makes
 * the HTTP response (`text/xml`, Twilio docs "TwiML"). Every attribute value and text is
 * XML-escaped, so a model's answer containing `<`, `&` or quotes can never break the
 * document or inject verbs.
 *
 * @module
 */
import type { HttpResponse } from '../http';

/** Escapes text for XML element content and double-quoted attribute values. */
export function escapeXml(value: string): string {
  // Characters outside XML 1.0's allowed set (C0 controls except tab/LF/CR, lone
  // surrogates, U+FFFE/U+FFFF) make the document invalid: drop them.
  let valid = '';
  for (const ch of value) {
    const code = ch.codePointAt(0) ?? 0;
    const lone = ch.length === 1 && code >= 0xd800 && code <= 0xdfff;
    const control = code < 0x20 && code !== 0x09 && code !== 0x0a && code !== 0x0d;
    if (!lone && !control && code !== 0xfffe && code !== 0xffff) valid += ch;
  }
  return valid.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

function attrs(values: Readonly<Record<string, string | number | undefined>>): string {
  let out = '';
  for (const [name, value] of Object.entries(values)) {
    if (value === undefined) continue;
    out += ` ${name}="${escapeXml(String(value))}"`;
  }
  return out;
}

/** `<Say>`: text-to-speech in the given language (BCP-47, e.g. `en-US`). */
export function say(text: string, language?: string): string {
  return `<Say${attrs({ language })}>${escapeXml(text)}</Say>`;
}

/** `<Pause length="N"/>`: N seconds of silence (Twilio accepts whole seconds). */
export function pause(lengthSec: number): string {
  return `<Pause${attrs({ length: Math.max(1, Math.round(lengthSec)) })}/>`;
}

/** `<Redirect method="POST">url</Redirect>`: Twilio fetches `url` (signed) for the next TwiML. */
export function redirect(url: string): string {
  return `<Redirect method="POST">${escapeXml(url)}</Redirect>`;
}

/** `<Hangup/>`: ends the call. */
export function hangup(): string {
  return '<Hangup/>';
}

/** Options of {@link gather}. */
export interface GatherOptions {
  /** Where Twilio posts `SpeechResult` (signed, like every webhook). */
  action: string;
  /** Speech-recognition language (`TWILIO_VOICE_LANGUAGE`). */
  language: string;
  /** Verbs played while listening (a `<Say>` prompt); the caller may speak over them. */
  prompt?: string;
}

/**
 * `<Gather input="speech" speechTimeout="auto">`: listens for speech and posts
 * `SpeechResult` / `Confidence` to `action`. Without speech Twilio runs the next verb
 * (Twilio docs, "TwiML Voice: <Gather>"), so callers follow it with a redirect that
 * handles silence.
 */
export function gather(opts: GatherOptions): string {
  const open = `<Gather${attrs({ input: 'speech', speechTimeout: 'auto', language: opts.language, action: opts.action, method: 'POST' })}`;
  return opts.prompt === undefined || opts.prompt === '' ? `${open}/>` : `${open}>${opts.prompt}</Gather>`;
}

/** A whole TwiML document of the given verbs; no verbs gives `<Response/>` (do nothing). */
export function twiml(...verbs: readonly string[]): string {
  const body = verbs.join('');
  return body === '' ? '<?xml version="1.0" encoding="UTF-8"?><Response/>' : `<?xml version="1.0" encoding="UTF-8"?><Response>${body}</Response>`;
}

/** A 200 `text/xml` response carrying TwiML. */
export function twimlResponse(document: string): HttpResponse {
  return { statusCode: 200, headers: { 'content-type': 'text/xml; charset=utf-8' }, body: document };
}
