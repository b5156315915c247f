/**
 * The worker's side of Twilio: replies go out through the REST API (Messages.json) in
 * parts of at most 1,600 characters, resuming after a failure without resending the
 * parts already delivered; media is downloaded for vision / transcription; voice turns
 * get a "short spoken answer" instruction and are spoken by the voice webhook's poll
 * (lib/channels/twilio/voice.ts), not sent.
 *
 * @module
 */
import type { TwilioConfig } from '../../config';
import { TWILIO_MAX_CHARS, splitForChannel } from '../../core/chunking';
import { DeliveryError, type AdapterDeps, type ChannelAdapter, type Media } from '../../core/channel';
import { sendOutbound, type SendVerdict } from '../../core/outbound';
import { isWindowClosed } from '../../core/service-window';
import type { Job, ReplyTarget } from '../../types';
import type { MessageKey, MessageRecord } from '../../store/messages';
import { NO_NOTE, type RecordNote } from '../../store/notes';
import type { UserFacts } from '../../store/user-state';
import { baseMimeType, transcriptionExtension } from './inbound';
import { TwilioApiError, TwilioRest, WHATSAPP_SESSION_CLOSED, type OutboundMessage } from './rest';
import { FACT_UNDELIVERED_PREFIX, TWILIO_WHATSAPP_WINDOW, clearSessionFacts, onSessionClosed, undeliveredOf, whatsappSender, type SessionDeps } from './session';
import { VOICE_INSTRUCTION } from './speech';
import { statusCallbackUrl } from './urls';
import { maxMediaBytesFor } from '../media-limits';

/** Added to the system prompt for SMS turns: phones show markdown as literal characters. */
export const SMS_INSTRUCTION = 'The user reads your answer as an SMS text message: write plain text without markdown.';


/** Options of {@link createTwilioAdapter}. */
export interface TwilioAdapterOptions {
  /** `PUBLIC_BASE_URL`: WhatsApp sends carry a status callback there, to catch a late 63016. Empty: none. */
  publicBaseUrl?: string;
}

type TwilioReply = Extract<ReplyTarget, { channel: 'twilio' }>;

const keyOf = (record: MessageRecord): MessageKey => ({ channel: record.channel, userId: record.userId, msgKey: record.msgKey });

/** The sender of a reply: the WhatsApp sender for WhatsApp; else the Messaging Service if set, else `TWILIO_FROM`. */
export function senderFor(cfg: TwilioConfig, reply: TwilioReply): OutboundMessage['sender'] {
  if (reply.medium === 'whatsapp') return { from: whatsappSender(cfg, reply.from) };
  if (cfg.messagingServiceSid !== '') return { messagingServiceSid: cfg.messagingServiceSid };
  return { from: cfg.from !== '' ? cfg.from : reply.from };
}

function fileExtension(mimeType: string): string {
  const audio = transcriptionExtension(mimeType);
  if (audio !== undefined) return audio;
  const sub = baseMimeType(mimeType).split('/')[1] ?? 'bin';
  return sub === 'jpeg' ? 'jpg' : sub.replace(/[^a-z0-9]/g, '') || 'bin';
}

/** Builds the Twilio adapter for the worker. */
export function createTwilioAdapter(cfg: TwilioConfig, deps: AdapterDeps, opts: TwilioAdapterOptions = {}): ChannelAdapter {
  const rest = new TwilioRest(cfg, deps.fetch);
  const session: SessionDeps = { config: cfg, rest, users: deps.users, log: deps.log, nowMs: () => deps.clock.nowMs() };
  const publicBaseUrl = opts.publicBaseUrl ?? '';

  /**
   * Sends `parts[from…]` of one answer through the core send loop ({@link sendOutbound}).
   * Returns normally when the answer is delivered or given up; throws a retryable
   * DeliveryError for SQS redelivery. `onProgress(n, done, note)` stores "n parts delivered".
   */
  async function sendParts(
    record: MessageRecord,
    reply: TwilioReply,
    parts: readonly string[],
    from: number,
    onProgress: (delivered: number, done: boolean, note: RecordNote) => Promise<void>,
  ): Promise<{ outcome: 'delivered' | 'session_closed' | 'failed'; delivered: number }> {
    const sender = senderFor(cfg, reply);
    const result = await sendOutbound<string>(
      {
        part: (i) => parts[i],
        send: async (body, i) => {
          await rest.sendMessage({
            to: reply.to,
            sender,
            content: { body },
            ...(reply.medium === 'whatsapp' && publicBaseUrl !== '' ? { statusCallback: statusCallbackUrl(publicBaseUrl, record.msgKey, i) } : {}),
          });
        },
        classify: (err, i): SendVerdict | undefined => {
          if (!(err instanceof TwilioApiError)) return undefined;
          if (err.code === WHATSAPP_SESSION_CLOSED && reply.medium === 'whatsapp') return { kind: 'window_closed' };
          if (err.retryable) {
            deps.log.warn('twilio send failed; SQS will retry', { msgKey: record.msgKey, part: i, code: err.code });
            return { kind: 'retry', error: new DeliveryError(err.message, err.code, true) };
          }
          deps.log.error('twilio send failed for good', { msgKey: record.msgKey, part: i, code: err.code });
          return { kind: 'fatal', note: { kind: 'send_stopped', reason: 'failed', code: err.code } };
        },
        record: (delivered, done, note) => onProgress(delivered, done, note ?? NO_NOTE),
      },
      from,
    );
    if (result.outcome === 'window_closed') {
      await onSessionClosed(session, record.userId, reply.to, whatsappSender(cfg, reply.from), record.msgKey, result.delivered);
      return { outcome: 'session_closed', delivered: result.delivered };
    }
    return { outcome: result.outcome === 'stopped' ? 'failed' : 'delivered', delivered: result.delivered };
  }

  /** Answers kept back by a closed WhatsApp session go out first once the user writes again. */
  async function flushUndelivered(current: MessageRecord, reply: TwilioReply, facts: UserFacts): Promise<void> {
    const now = deps.clock.nowMs();
    const waiting = undeliveredOf(facts).filter((u) => u.msgKey !== current.msgKey);
    if (waiting.length === 0) return;
    const records: { rec: MessageRecord; fromPart: number }[] = [];
    for (const u of waiting) {
      const rec = await deps.messages.get({ channel: 'twilio', userId: current.userId, msgKey: u.msgKey }, now);
      if (rec) records.push({ rec, fromPart: u.fromPart });
    }
    records.sort((a, b) => a.rec.arrivedAtMs - b.rec.arrivedAtMs);
    const done: string[] = waiting.filter((u) => !records.some((r) => r.rec.msgKey === u.msgKey)).map((u) => u.msgKey);
    for (const { rec, fromPart } of records) {
      const parts = splitForChannel(rec.answer, TWILIO_MAX_CHARS);
      const { outcome } = await sendParts(rec, reply, parts, fromPart, async (delivered) => {
        await deps.users.set('twilio', rec.userId, { [`${FACT_UNDELIVERED_PREFIX}${rec.msgKey}`]: String(delivered) }, deps.clock.nowMs());
      });
      if (outcome === 'session_closed') return; // still closed: keep everything for later
      done.push(rec.msgKey);
    }
    await clearSessionFacts(session, current.userId, done);
  }

  return {
    systemPromptSuffix(job: Job): string {
      if (job.reply.channel !== 'twilio') return '';
      if (job.reply.medium === 'voice') return VOICE_INSTRUCTION;
      return job.reply.medium === 'sms' ? SMS_INSTRUCTION : '';
    },

    async fetchMedia(job: Job, mediaRef: string, mimeType: string): Promise<Media> {
      try {
        const media = await rest.fetchMedia(mediaRef, maxMediaBytesFor(job.input.kind));
        const type = baseMimeType(media.contentType) || mimeType;
        return { bytes: media.bytes, mimeType: type, filename: `media.${fileExtension(type)}` };
      } catch (err) {
        if (err instanceof TwilioApiError) throw new DeliveryError(err.message, err.code, err.retryable);
        throw err;
      }
    },

    async deliver(record: MessageRecord): Promise<void> {
      const reply = record.job.reply;
      if (reply.channel !== 'twilio') return;
      const key = keyOf(record);
      if (reply.medium === 'voice') {
        // Spoken by the voice webhook's poll; nothing to send.
        await deps.messages.recordParts(key, 0, true, deps.clock.nowMs());
        return;
      }
      const parts = splitForChannel(record.answer, TWILIO_MAX_CHARS);
      if (parts.length === 0) {
        await deps.messages.recordParts(key, 0, true, deps.clock.nowMs());
        return;
      }
      if (reply.medium === 'whatsapp') {
        const facts = await deps.users.get('twilio', record.userId, deps.clock.nowMs());
        if (isWindowClosed(TWILIO_WHATSAPP_WINDOW, facts, record.arrivedAtMs, deps.clock.nowMs())) {
          // Known closed for this message: a free-form send would only fail with 63016 again.
          await onSessionClosed(session, record.userId, reply.to, whatsappSender(cfg, reply.from), record.msgKey, record.deliveredParts);
          await deps.messages.recordParts(key, record.deliveredParts, true, deps.clock.nowMs(), { kind: 'session_closed', code: WHATSAPP_SESSION_CLOSED });
          return;
        }
        // The user wrote on WhatsApp after the window closed, so it is open again.
        await flushUndelivered(record, reply, facts);
      }
      const { outcome, delivered } = await sendParts(record, reply, parts, record.deliveredParts, async (n, done, note) => {
        await deps.messages.recordParts(key, n, done, deps.clock.nowMs(), note);
      });
      if (outcome === 'session_closed') {
        // Kept in the user's facts (see session.ts), out of the pending index.
        await deps.messages.recordParts(key, delivered, true, deps.clock.nowMs(), { kind: 'session_closed', code: WHATSAPP_SESSION_CLOSED });
      }
    },
  };
}
