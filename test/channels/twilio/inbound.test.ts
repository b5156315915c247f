import { parseForm } from '../../../lib/channels/twilio/form';
import {
  EMPTY_MESSAGE_TEXT,
  TwilioFormError,
  UNSUPPORTED_MEDIA_TEXT,
  bareNumber,
  conversationKeyOf,
  messageJob,
  parseInboundMessage,
  transcriptionExtension,
} from '../../../lib/channels/twilio/inbound';

const form = (fields: Record<string, string>) => parseForm(Buffer.from(new URLSearchParams(fields).toString()));
const base = { MessageSid: 'SM0123456789abcdef0123456789abcdef', From: '+15551234567', To: '+15005550006', NumMedia: '0' };

describe('addresses', () => {
  it('uses the bare number for users and one conversation per number across media', () => {
    expect(bareNumber('whatsapp:+15551234567')).toBe('+15551234567');
    expect(bareNumber('+15551234567')).toBe('+15551234567');
    expect(conversationKeyOf('whatsapp:+15551234567')).toBe('twilio#+15551234567');
    expect(conversationKeyOf('+15551234567')).toBe('twilio#+15551234567');
  });
});

describe('parseInboundMessage / messageJob', () => {
  it('makes an SMS a text job keyed by MessageSid', () => {
    const job = messageJob(parseInboundMessage(form({ ...base, Body: 'hi' })), 1000);
    expect(job).toEqual({
      v: 1,
      channel: 'twilio',
      userId: '+15551234567',
      msgKey: base.MessageSid,
      conversationKey: 'twilio#+15551234567',
      input: { kind: 'text', text: 'hi' },
      reply: { channel: 'twilio', to: '+15551234567', from: '+15005550006', medium: 'sms', callSid: '' },
      arrivedAtMs: 1000,
    });
  });

  it('recognises WhatsApp and keeps the prefixed address for the reply', () => {
    const job = messageJob(parseInboundMessage(form({ ...base, From: 'whatsapp:+15551234567', To: 'whatsapp:+14155238886', Body: 'yo' })), 1);
    expect(job.userId).toBe('+15551234567');
    expect(job.reply).toMatchObject({ medium: 'whatsapp', to: 'whatsapp:+15551234567', from: 'whatsapp:+14155238886' });
  });

  it('makes the first image an image input with the body as caption', () => {
    const msg = parseInboundMessage(form({ ...base, Body: 'what is it', NumMedia: '2', MediaUrl0: 'https://m/0', MediaContentType0: 'video/mp4', MediaUrl1: 'https://m/1', MediaContentType1: 'image/jpeg' }));
    expect(messageJob(msg, 1).input).toEqual({ kind: 'image', mediaRef: 'https://m/1', caption: 'what is it', mimeType: 'image/jpeg' });
  });

  it('makes a voice note an audio input, AMR (not transcribable) a polite notice', () => {
    const ogg = parseInboundMessage(form({ ...base, NumMedia: '1', MediaUrl0: 'https://m/0', MediaContentType0: 'audio/ogg; codecs=opus' }));
    const amr = parseInboundMessage(form({ ...base, NumMedia: '1', MediaUrl0: 'https://m/0', MediaContentType0: 'audio/amr' }));
    expect(messageJob(ogg, 1).input).toEqual({ kind: 'audio', mediaRef: 'https://m/0', mimeType: 'audio/ogg' });
    expect(messageJob(amr, 1).input).toEqual({ kind: 'notice', text: UNSUPPORTED_MEDIA_TEXT });
  });

  it('answers other media and empty messages with a notice', () => {
    const video = parseInboundMessage(form({ ...base, NumMedia: '1', MediaUrl0: 'https://m/0', MediaContentType0: 'video/mp4' }));
    expect(messageJob(video, 1).input).toEqual({ kind: 'notice', text: UNSUPPORTED_MEDIA_TEXT });
    expect(messageJob(parseInboundMessage(form(base)), 1).input).toEqual({ kind: 'notice', text: EMPTY_MESSAGE_TEXT });
  });

  it('rejects a webhook without MessageSid or From', () => {
    expect(() => parseInboundMessage(form({ From: '+1555' }))).toThrow(TwilioFormError);
    expect(() => parseInboundMessage(form({ MessageSid: 'SM1' }))).toThrow(TwilioFormError);
  });

  it('maps audio types to extensions the transcription API takes', () => {
    expect(transcriptionExtension('audio/ogg; codecs=opus')).toBe('ogg');
    expect(transcriptionExtension('audio/mpeg')).toBe('mp3');
    expect(transcriptionExtension('audio/amr')).toBeUndefined();
  });
});
