/**
 * The largest media the worker downloads, by kind: what the vendors deliver at most, so no
 * real message is refused, and the worker's memory (sized from `npm run bench -- memory`)
 * never has to hold more.
 *
 * - Images: 5 MB on WhatsApp (https://developers.facebook.com/docs/whatsapp/cloud-api/reference/media#supported-media-types)
 *   and per Twilio message (https://www.twilio.com/docs/messaging/guides/accepted-mime-types).
 * - Audio: 16 MB on WhatsApp (same page) and through Twilio's WhatsApp (same Twilio page),
 *   under OpenAI's 25 MB transcription limit (https://platform.openai.com/docs/guides/speech-to-text).
 *
 * @module
 */

/** Images: 5 MB, WhatsApp's and Twilio's limit. */
export const MAX_IMAGE_BYTES = 5 * 1024 * 1024;
/** Audio: 16 MB, WhatsApp's limit. */
export const MAX_AUDIO_BYTES = 16 * 1024 * 1024;

/** The cap for a job's media: audio for a voice note, image otherwise. */
export function maxMediaBytesFor(kind: string): number {
  return kind === 'audio' ? MAX_AUDIO_BYTES : MAX_IMAGE_BYTES;
}
