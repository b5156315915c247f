/**
 * The worker's side of WhatsApp: read receipt + typing indicator when a job starts, the
 * two-step media download for voice notes and images, and delivery of the finished answer
 * in parts through the Graph API.
 *
 * Delivery rules (Meta "WhatsApp Cloud API → Error codes / Throughput",
 * https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/):
 * - `text.body` holds at most 4,096 characters: longer answers go in parts, cut on
 *   paragraph / sentence / word boundaries ({@link splitForChannel}).
 * - Pair rate limit: about one message per 6 s to the same user (131056); bursts borrow
 *   against later quota. Parts are spaced by `pairIntervalMs`, and a 131056 / 130429 is
 *   retried with exponential backoff a few times before the job is handed back to SQS.
 * - Every part that Meta accepted is recorded at once (`deliveredParts`), so a retry in
 *   this invocation or an SQS redelivery resumes with the first part not yet sent and
 *   never shows the user a part twice.
 * - 131047 (more than 24 h since the user last wrote): free-form messages cannot be sent,
 *   so it is not retried; the re-engagement template goes instead if one is configured,
 *   and the outcome is recorded on the record and on the user.
 * - 190 (access token expired/invalid): no retry can fix it until an operator replaces the
 *   token, so it is logged as an error and handed back as a non-retryable failure.
 *
 * @module
 */
import type { WhatsAppConfig } from '../../config';
import type { AdapterDeps, ChannelAdapter, Media } from '../../core/channel';
import { DeliveryError } from '../../core/channel';
import { sendOutbound, type SendVerdict } from '../../core/outbound';
import { splitForChannel, WHATSAPP_MAX_CHARS } from '../../core/chunking';
import { isWindowClosed } from '../../core/service-window';
import type { Job } from '../../types';
import type { MessageKey, MessageRecord, MessageStore } from '../../store/messages';
import type { UserStateStore } from '../../store/user-state';
import { formatNote, type RecordNote, type SendStop } from '../../store/notes';
import { createGraphClient, GraphCode, GraphError, NETWORK_ERROR_CODE, TOO_LARGE_CODE, type GraphApi } from './graph';
import { maxMediaBytesFor } from '../media-limits';
import { WHATSAPP_WINDOW, WINDOW_CLOSED_AT_FACT, WINDOW_CLOSED_BY_FACT, windowClosedFacts } from './state';

/** What the adapter needs; {@link AdapterDeps} satisfies it, and tests pass small stubs. */
export interface WhatsAppAdapterDeps extends Pick<AdapterDeps, 'clock' | 'log' | 'fetch'> {
  messages: Pick<MessageStore, 'recordParts'>;
  users: Pick<UserStateStore, 'get' | 'set'>;
}

/** Tuning knobs; the defaults follow the configuration. */
export interface WhatsAppAdapterOptions {
  /** The Graph client (default: one over `deps.fetch` with the configured token). */
  graph?: GraphApi;
  /** Tries per part for rate limits and transient failures before handing back to SQS (default 3). */
  maxAttemptsPerPart?: number;
  /** First backoff after a rate limit (default: the pair interval, or 1 s when pacing is off). */
  backoffBaseMs?: number;
  /** Longest single backoff (default 60 s). */
  backoffMaxMs?: number;
  /** Largest media accepted (default by kind: 5 MB images, 16 MB audio; media-limits.ts). */
  maxMediaBytes?: number;
  /** Characters per part (default 4,096, Meta's `text.body` limit). */
  maxChars?: number;
}

/** Outcomes written to the record's `note` (searchable when a user asks where an answer went). */
export const WhatsAppNote = {
  TEMPLATE_SENT: { kind: 'window_closed', outcome: 'template_sent' },
  NO_TEMPLATE: { kind: 'window_closed', outcome: 'no_template' },
  templateFailed: (code: number): RecordNote => ({ kind: 'window_closed', outcome: 'template_failed', code: String(code) }),
  stopped: (reason: SendStop, code: number): RecordNote => ({ kind: 'send_stopped', reason, code: String(code) }),
} as const satisfies Record<string, RecordNote | ((...args: never[]) => RecordNote)>;

/** How a Graph failure is handled. */
type FailureKind = 'rate' | 'transient' | 'window' | 'token' | 'undeliverable' | 'permanent';

/** Sorts a Graph failure by what helps: waiting, a template, an operator, or nothing. */
export function classifyGraphError(err: GraphError): FailureKind {
  switch (err.code) {
    case GraphCode.PAIR_RATE:
    case GraphCode.THROUGHPUT:
    case GraphCode.APP_RATE_LIMIT:
    case GraphCode.WABA_RATE_LIMIT:
      return 'rate';
    case GraphCode.REENGAGEMENT:
      return 'window';
    case GraphCode.TOKEN:
      return 'token';
    case GraphCode.UNDELIVERABLE:
      return 'undeliverable';
    case GraphCode.UNKNOWN:
    case GraphCode.SERVICE:
    case GraphCode.GENERIC_USER:
    case GraphCode.SERVICE_UNAVAILABLE:
    case NETWORK_ERROR_CODE:
      return 'transient';
    case TOO_LARGE_CODE:
      return 'permanent';
    default:
      // An unknown code on a 5xx or 429 is Meta's problem and may pass; a 4xx will not.
      return err.httpStatus >= 500 || err.httpStatus === 429 ? 'transient' : 'permanent';
  }
}

/** File names by media type, with extensions OpenAI's transcription API accepts where possible. */
const FILE_NAMES: Readonly<Record<string, string>> = {
  // WhatsApp voice notes are OGG/Opus, which transcription takes as is
  // (https://platform.openai.com/docs/api-reference/audio/createTranscription).
  'audio/ogg': 'voice.ogg',
  'audio/opus': 'voice.ogg',
  'audio/mpeg': 'audio.mp3',
  'audio/mp4': 'audio.m4a',
  'audio/aac': 'audio.aac',
  'audio/amr': 'audio.amr',
  'audio/wav': 'audio.wav',
  'audio/webm': 'audio.webm',
  'image/jpeg': 'image.jpg',
  'image/png': 'image.png',
  'image/webp': 'image.webp',
};

/** `audio/ogg; codecs=opus` → `audio/ogg`. */
function baseMimeType(mimeType: string): string {
  return (mimeType.split(';')[0] ?? '').trim().toLowerCase();
}

/** Remembered send times are dropped past this many users (one Lambda instance's memory). */
const MAX_PACED_USERS = 5_000;

/** Builds the WhatsApp adapter for the worker. */
export function createWhatsAppAdapter(cfg: WhatsAppConfig, deps: WhatsAppAdapterDeps, opts: WhatsAppAdapterOptions = {}): ChannelAdapter {
  const graph = opts.graph ?? createGraphClient({ base: cfg.graphBase, version: cfg.graphVersion, accessToken: cfg.accessToken, fetch: deps.fetch });
  const maxAttempts = Math.max(1, opts.maxAttemptsPerPart ?? 3);
  const backoffBaseMs = opts.backoffBaseMs ?? (cfg.pairIntervalMs > 0 ? cfg.pairIntervalMs : 1_000);
  const backoffMaxMs = opts.backoffMaxMs ?? 60_000;
  const maxChars = opts.maxChars ?? WHATSAPP_MAX_CHARS;
  const { clock, log } = deps;

  /**
   * When we last sent to each user from this instance. One user's jobs run one at a time
   * (SQS FIFO group), usually on the same warm instance, so this also spaces the first
   * part of an answer from the last part of the previous one. Across instances the
   * 131056 backoff takes over.
   */
  const lastSentAtMs = new Map<string, number>();

  function noteSent(to: string): void {
    const now = clock.nowMs();
    lastSentAtMs.delete(to);
    lastSentAtMs.set(to, now);
    if (lastSentAtMs.size > MAX_PACED_USERS) {
      // A Map iterates in insertion order and a send re-inserts: the first entries are the stalest.
      for (const user of lastSentAtMs.keys()) {
        if (lastSentAtMs.size <= MAX_PACED_USERS / 2) break;
        lastSentAtMs.delete(user);
      }
    }
  }

  /** Waits until the pair interval since the last message to `to` has passed. */
  async function pace(to: string): Promise<void> {
    const last = lastSentAtMs.get(to);
    if (last === undefined) return;
    const waitMs = last + cfg.pairIntervalMs - clock.nowMs();
    if (waitMs > 0) await clock.sleep(waitMs);
  }

  function backoffMs(attempt: number): number {
    return Math.min(backoffMaxMs, backoffBaseMs * 2 ** attempt);
  }

  /** Sends one message, retrying rate limits and transient failures in place; throws the last GraphError. */
  async function sendWithRetry(to: string, what: string, send: () => Promise<string>): Promise<string> {
    for (let attempt = 0; ; attempt++) {
      await pace(to);
      try {
        const id = await send();
        noteSent(to);
        return id;
      } catch (err) {
        if (!(err instanceof GraphError)) throw err;
        const kind = classifyGraphError(err);
        if (kind === 'rate') noteSent(to); // the pair budget is spent: the next try waits a full interval too
        if ((kind !== 'rate' && kind !== 'transient') || attempt + 1 >= maxAttempts) throw err;
        const delay = backoffMs(attempt);
        log.warn('whatsapp send will be retried', { what, code: err.code, attempt: attempt + 1, delayMs: delay });
        await clock.sleep(delay);
      }
    }
  }

  function keyOf(record: MessageRecord): MessageKey {
    return { channel: record.channel, userId: record.userId, msgKey: record.msgKey };
  }

  /** Logs a rejected token loudly (190). */
  function logTokenError(err: GraphError, context: Record<string, unknown>): void {
    // Loud on purpose: every WhatsApp answer fails until an operator replaces WHATSAPP_ACCESS_TOKEN.
    log.error('WHATSAPP ACCESS TOKEN REJECTED (190): replace WHATSAPP_ACCESS_TOKEN; nothing can be sent until then', {
      ...context,
      code: err.code,
      subcode: err.subcode,
      fbtraceId: err.fbtraceId,
      message: err.message,
    });
  }

  /** Logs a rejected token and returns the non-retryable failure to throw. */
  function tokenError(err: GraphError, context: Record<string, unknown>): DeliveryError {
    logTokenError(err, context);
    return new DeliveryError(err.message, String(err.code), false);
  }

  /**
   * The 24 h window is closed: free-form text would fail with 131047 again, so send the
   * re-engagement template if there is one and close the record either way (no retry).
   */
  async function windowClosed(record: MessageRecord, to: string, phoneNumberId: string, delivered: number, learnt: boolean): Promise<void> {
    const key = keyOf(record);
    if (learnt) await deps.users.set('whatsapp', record.userId, windowClosedFacts(clock.nowMs(), `send:${record.msgKey}`), clock.nowMs());
    let note: RecordNote = WhatsAppNote.NO_TEMPLATE;
    if (cfg.reengageTemplate !== '') {
      try {
        await sendWithRetry(to, 'template', () => graph.sendTemplate(phoneNumberId, to, cfg.reengageTemplate, cfg.reengageTemplateLanguage));
        note = WhatsAppNote.TEMPLATE_SENT;
      } catch (err) {
        if (!(err instanceof GraphError)) throw err;
        if (classifyGraphError(err) === 'token') {
          await deps.messages.recordParts(key, delivered, false, clock.nowMs(), WhatsAppNote.stopped('token_error', err.code));
          throw tokenError(err, { msgKey: record.msgKey, during: 'template' });
        }
        note = WhatsAppNote.templateFailed(err.code);
      }
    }
    log.warn('whatsapp answer not delivered: 24 h window closed (131047)', { msgKey: record.msgKey, deliveredParts: delivered, outcome: formatNote(note) });
    await deps.messages.recordParts(key, delivered, true, clock.nowMs(), note);
  }

  return {
    async onJobStart(job: Job): Promise<void> {
      if (job.reply.channel !== 'whatsapp') return;
      try {
        // Blue ticks plus "typing…" right away: the answer may take a while to stream.
        await graph.markRead(job.reply.phoneNumberId, job.reply.messageId);
      } catch (err) {
        // Best effort (the contract says never throw), but a dead token must still be loud.
        if (err instanceof GraphError && classifyGraphError(err) === 'token') logTokenError(err, { msgKey: job.msgKey, during: 'mark read' });
        else log.warn('whatsapp mark-read failed', { msgKey: job.msgKey, error: err instanceof Error ? err.message : String(err) });
      }
    },

    async fetchMedia(job: Job, mediaRef: string, mimeType: string): Promise<Media> {
      try {
        const info = await graph.mediaInfo(mediaRef);
        const bytes = await graph.download(info.url, opts.maxMediaBytes ?? maxMediaBytesFor(job.input.kind));
        const type = baseMimeType(info.mimeType || mimeType) || baseMimeType(mimeType);
        return { bytes, mimeType: type, filename: FILE_NAMES[type] ?? 'media.bin' };
      } catch (err) {
        if (!(err instanceof GraphError)) throw err;
        const kind = classifyGraphError(err);
        if (kind === 'token') throw tokenError(err, { msgKey: job.msgKey, during: 'media download' });
        throw new DeliveryError(err.message, String(err.code), kind === 'rate' || kind === 'transient');
      }
    },

    async deliver(record: MessageRecord): Promise<void> {
      const reply = record.job.reply;
      if (reply.channel !== 'whatsapp') throw new DeliveryError(`not a WhatsApp job: ${reply.channel}`, 'wrong_channel', false);
      const key = keyOf(record);
      // Deterministic: a resumed delivery recomputes the same parts and skips those sent.
      const parts = splitForChannel(record.answer, maxChars);
      const delivered = Math.min(record.deliveredParts, parts.length);
      if (delivered >= parts.length) {
        await deps.messages.recordParts(key, delivered, true, clock.nowMs(), record.note);
        return;
      }

      const facts = await deps.users.get('whatsapp', record.userId, clock.nowMs());
      if (isWindowClosed(WHATSAPP_WINDOW, facts, record.job.arrivedAtMs, clock.nowMs())) {
        await windowClosed(record, reply.to, reply.phoneNumberId, delivered, false);
        return;
      }

      const result = await sendOutbound<string>(
        {
          part: (i) => parts[i],
          send: async (part, i) => {
            await sendWithRetry(reply.to, `part ${i + 1}/${parts.length}`, () => graph.sendText(reply.phoneNumberId, reply.to, part));
          },
          classify: (err, i): SendVerdict | undefined => {
            if (!(err instanceof GraphError)) return undefined;
            const kind = classifyGraphError(err);
            const context = { msgKey: record.msgKey, part: i + 1, parts: parts.length, code: err.code };
            switch (kind) {
              case 'window':
                return { kind: 'window_closed' };
              case 'token':
                return { kind: 'token', note: WhatsAppNote.stopped('token_error', err.code), error: tokenError(err, context) };
              case 'undeliverable':
                // Not a WhatsApp user any more, or an app too old: retrying cannot help.
                log.warn('whatsapp answer undeliverable', context);
                return { kind: 'fatal', note: WhatsAppNote.stopped('undeliverable', err.code) };
              case 'rate':
              case 'transient':
                // Hand back to SQS: the redelivery resumes at this part.
                log.warn('whatsapp delivery paused; SQS will redeliver and resume', context);
                return {
                  kind: 'retry',
                  note: WhatsAppNote.stopped(kind === 'rate' ? 'rate_limited' : 'transient_error', err.code),
                  error: new DeliveryError(err.message, String(err.code), true),
                };
              case 'permanent':
                log.error('whatsapp delivery failed', { ...context, message: err.message, fbtraceId: err.fbtraceId });
                return { kind: 'fatal', note: WhatsAppNote.stopped('failed', err.code), error: new DeliveryError(err.message, String(err.code), false) };
            }
          },
          record: async (n, done, note) => {
            if (note === undefined) await deps.messages.recordParts(key, n, done, clock.nowMs());
            else await deps.messages.recordParts(key, n, done, clock.nowMs(), note);
          },
        },
        delivered,
      );
      if (result.outcome === 'window_closed') {
        await windowClosed(record, reply.to, reply.phoneNumberId, result.delivered, true);
        return;
      }
      if (result.outcome === 'stopped') return;

      if (facts[WINDOW_CLOSED_AT_FACT] !== undefined) {
        // Free-form text went through, so the window is open again: forget the old report.
        await deps.users.set('whatsapp', record.userId, { [WINDOW_CLOSED_AT_FACT]: undefined, [WINDOW_CLOSED_BY_FACT]: undefined }, clock.nowMs());
      }
    },
  };
}
