/**
 * Twilio Programmable Messaging webhooks → the gateway's jobs (pure, no I/O).
 *
 * Parameters (Twilio docs, "Messaging webhook request",
 * https://www.twilio.com/docs/messaging/guides/webhook-request):
 * `MessageSid`, `From`, `To`, `Body`, `NumMedia`, `MediaUrl{N}`, `MediaContentType{N}`;
 * WhatsApp adds `ProfileName`, `WaId`, `ButtonPayload`, `Latitude`/`Longitude`, and its
 * addresses look like `whatsapp:+14155238886`.
 *
 * One person is one user whatever the medium: the user id is the bare number (the
 * `whatsapp:` prefix stripped), so SMS, WhatsApp and voice of one number share a FIFO
 * message group (answered in order) and one conversation memory.
 *
 * @module
 */
import type { Job, ReplyTarget, TurnInput } from '../../types';
import { param, type TwilioParams } from './form';

/** The prefix Twilio puts on WhatsApp addresses. */
export const WHATSAPP_PREFIX = 'whatsapp:';

/** Told when media arrives that the gateway cannot read (video, documents, contacts…). */
export const UNSUPPORTED_MEDIA_TEXT =
  'Sorry, I can only read text, images and voice messages here. Please type your question.';
/** Told for an empty message (e.g. a shared location without text). */
export const EMPTY_MESSAGE_TEXT = 'Sorry, I did not get any text in that message. Please type your question.';

/** True for a WhatsApp address (`whatsapp:+…`). */
export function isWhatsAppAddress(address: string): boolean {
  return address.toLowerCase().startsWith(WHATSAPP_PREFIX);
}

/** The number without the `whatsapp:` prefix: `whatsapp:+1555…` → `+1555…`. */
export function bareNumber(address: string): string {
  return isWhatsAppAddress(address) ? address.slice(WHATSAPP_PREFIX.length) : address;
}

/** Conversation memory of one phone number, shared by SMS, WhatsApp and voice. */
export function conversationKeyOf(address: string): string {
  return `twilio#${bareNumber(address)}`;
}

/**
 * Audio types OpenAI's transcription API accepts (flac mp3 mp4 mpeg mpga m4a ogg wav webm;
 * https://platform.openai.com/docs/api-reference/audio/createTranscription), with the file
 * extension to upload as.
 * MMS voice notes in AMR are not among them.
 */
const TRANSCRIBABLE: Readonly<Record<string, string>> = {
  'audio/ogg': 'ogg',
  'audio/opus': 'ogg',
  'audio/mpeg': 'mp3',
  'audio/mp3': 'mp3',
  'audio/mp4': 'm4a',
  'audio/m4a': 'm4a',
  'audio/x-m4a': 'm4a',
  'audio/aac': 'm4a',
  'audio/wav': 'wav',
  'audio/x-wav': 'wav',
  'audio/wave': 'wav',
  'audio/webm': 'webm',
  'audio/flac': 'flac',
};

/** The base MIME type, lower-cased, without parameters (`audio/ogg; codecs=opus` → `audio/ogg`). */
export function baseMimeType(mimeType: string): string {
  return (mimeType.split(';')[0] ?? '').trim().toLowerCase();
}

/** The file extension the transcription API needs for `mimeType`, if it takes it at all. */
export function transcriptionExtension(mimeType: string): string | undefined {
  return TRANSCRIBABLE[baseMimeType(mimeType)];
}

/** Image types vision models take (OpenAI: png, jpeg, gif, webp). */
function isVisionImage(mimeType: string): boolean {
  return ['image/jpeg', 'image/jpg', 'image/png', 'image/gif', 'image/webp'].includes(baseMimeType(mimeType));
}

/** One media item of an inbound message. */
export interface TwilioMedia {
  url: string;
  contentType: string;
}

/** An inbound message, parsed. */
export interface TwilioInboundMessage {
  messageSid: string;
  /** Sender as Twilio wrote it (`+1555…` or `whatsapp:+1555…`). */
  from: string;
  /** Our number the user wrote to. */
  to: string;
  body: string;
  media: TwilioMedia[];
  medium: 'sms' | 'whatsapp';
}

/** Why a request is not a usable inbound message. */
export class TwilioFormError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TwilioFormError';
  }
}

/** Most media items one message can carry (Twilio MMS: 10). */
const MAX_MEDIA = 10;

/**
 * Reads an inbound message from the webhook's parameters.
 * @throws TwilioFormError when `MessageSid` or `From` is missing.
 */
export function parseInboundMessage(params: TwilioParams): TwilioInboundMessage {
  const messageSid = param(params, 'MessageSid') || param(params, 'SmsMessageSid');
  const from = param(params, 'From');
  if (!/^[A-Za-z0-9]{2,64}$/.test(messageSid)) throw new TwilioFormError('MessageSid is missing or malformed');
  if (from === '') throw new TwilioFormError('From is missing');
  const count = Math.min(MAX_MEDIA, Math.max(0, Number.parseInt(param(params, 'NumMedia') || '0', 10) || 0));
  const media: TwilioMedia[] = [];
  for (let i = 0; i < count; i++) {
    const url = param(params, `MediaUrl${i}`);
    if (url !== '') media.push({ url, contentType: param(params, `MediaContentType${i}`) });
  }
  // A WhatsApp quick-reply button sends its payload; its text is in Body already.
  const body = param(params, 'Body') || param(params, 'ButtonText') || param(params, 'ButtonPayload');
  return { messageSid, from, to: param(params, 'To'), body, media, medium: isWhatsAppAddress(from) ? 'whatsapp' : 'sms' };
}

/**
 * What the user asked: text; else the first image (caption = Body) or transcribable
 * voice note; else a polite notice. The worker decides whether images reach a vision
 * model and audio a transcription model (lib/core/turn.ts).
 */
export function turnInputOf(msg: TwilioInboundMessage): TurnInput {
  const image = msg.media.find((m) => isVisionImage(m.contentType));
  if (image) return { kind: 'image', mediaRef: image.url, caption: msg.body, mimeType: baseMimeType(image.contentType) };
  const audio = msg.media.find((m) => baseMimeType(m.contentType).startsWith('audio/'));
  if (audio && msg.body.trim() === '') {
    if (transcriptionExtension(audio.contentType) === undefined) return { kind: 'notice', text: UNSUPPORTED_MEDIA_TEXT };
    return { kind: 'audio', mediaRef: audio.url, mimeType: baseMimeType(audio.contentType) };
  }
  if (msg.body.trim() !== '') return { kind: 'text', text: msg.body };
  return { kind: 'notice', text: msg.media.length > 0 ? UNSUPPORTED_MEDIA_TEXT : EMPTY_MESSAGE_TEXT };
}

/** The job for an inbound message (dedupe key: `MessageSid`). */
export function messageJob(msg: TwilioInboundMessage, arrivedAtMs: number): Job {
  const reply: ReplyTarget = { channel: 'twilio', to: msg.from, from: msg.to, medium: msg.medium, callSid: '' };
  return {
    v: 1,
    channel: 'twilio',
    userId: bareNumber(msg.from),
    msgKey: msg.messageSid,
    conversationKey: conversationKeyOf(msg.from),
    input: turnInputOf(msg),
    reply,
    arrivedAtMs,
  };
}
