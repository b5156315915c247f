/**
 * WhatsApp Cloud API webhook payloads → typed inbound messages and statuses (pure, no I/O).
 *
 * Shape (Meta "WhatsApp Cloud API → Webhooks → messages",
 * https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/): `entry[].changes[]`
 * with `field: "messages"` and a `value` holding `metadata.phone_number_id`, `contacts[]`,
 * `messages[]` and/or `statuses[]`. One delivery may batch several entries, changes and
 * messages: every one is returned. Items that lack the fields we need are skipped (and
 * counted) rather than failing the whole batch: one odd item must not make Meta retry the
 * others for 7 days.
 *
 * Parsed with type guards only; nothing is cast.
 *
 * @module
 */
import { isJsonObject } from '../../json';

/** Raised for a body that is not JSON or not a JSON object. */
export class WhatsAppPayloadError extends Error {
  constructor(
    message: string,
    readonly code: 'not_json' | 'not_object',
  ) {
    super(message);
    this.name = 'WhatsAppPayloadError';
  }
}

/** Fields every inbound message has. */
export interface InboundBase {
  /** The message id (`wamid.…`): the dedupe key, and the id to mark as read. */
  id: string;
  /** The sender's WhatsApp id (phone number without `+`). */
  from: string;
  /** Seconds since the epoch, from Meta's string `timestamp` (0 when absent). */
  timestampSec: number;
  /** The business phone number the message was sent to (`metadata.phone_number_id`). */
  phoneNumberId: string;
  /** The sender's profile name from `contacts[]` ('' when absent). */
  profileName: string;
}

/** What a message carries, by `type`. */
export type InboundContent =
  | { type: 'text'; body: string }
  | { type: 'audio'; mediaId: string; mimeType: string; voice: boolean }
  | { type: 'image'; mediaId: string; mimeType: string; caption: string }
  /** An interactive `button_reply` / `list_reply`, or a template quick-reply `button`. */
  | { type: 'choice'; source: 'button_reply' | 'list_reply' | 'button'; choiceId: string; title: string }
  | { type: 'reaction'; messageId: string; emoji: string }
  /** Notifications from WhatsApp itself (e.g. `user_changed_number`), not written by the user. */
  | { type: 'system'; body: string }
  /** Anything else: video, document, sticker, location, contacts, order, unsupported, … */
  | { type: 'other'; rawType: string };

/** One inbound user message. */
export type InboundMessage = InboundBase & InboundContent;

/** Delivery statuses Meta reports for messages we sent. */
export type StatusKind = 'sent' | 'delivered' | 'read' | 'failed' | 'other';

/** One status webhook item (about three arrive for every message we send). */
export interface StatusUpdate {
  /** Our outbound message's id. */
  id: string;
  status: StatusKind;
  /** The user the message went to. */
  recipientId: string;
  timestampSec: number;
  /** `errors[].code` of a `failed` status, e.g. 131047 (24 h window closed). */
  errorCodes: number[];
}

/** Everything in one webhook delivery. */
export interface WebhookBatch {
  messages: InboundMessage[];
  statuses: StatusUpdate[];
  /** Items skipped because they lacked required fields. */
  skipped: number;
}

function records(value: unknown): Record<string, unknown>[] {
  return Array.isArray(value) ? value.filter(isJsonObject) : [];
}

function str(obj: Record<string, unknown> | undefined, name: string): string {
  const v = obj?.[name];
  return typeof v === 'string' ? v : '';
}

function sub(obj: Record<string, unknown> | undefined, name: string): Record<string, unknown> | undefined {
  const v = obj?.[name];
  return isJsonObject(v) ? v : undefined;
}

/** Meta sends timestamps as decimal strings of epoch seconds. */
function seconds(obj: Record<string, unknown>, name: string): number {
  const v = obj[name];
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'string' && /^\d+$/.test(v)) return Number(v);
  return 0;
}

function statusKind(v: string): StatusKind {
  return v === 'sent' || v === 'delivered' || v === 'read' || v === 'failed' ? v : 'other';
}

function errorCodes(obj: Record<string, unknown>): number[] {
  const codes: number[] = [];
  for (const err of records(obj.errors)) {
    const code = err.code;
    if (typeof code === 'number') codes.push(code);
    else if (typeof code === 'string' && /^\d+$/.test(code)) codes.push(Number(code));
  }
  return codes;
}

/** The content arm of a message, or undefined when a required field is missing. */
function content(m: Record<string, unknown>): InboundContent | undefined {
  const type = str(m, 'type');
  switch (type) {
    case 'text': {
      const text = sub(m, 'text');
      return text && typeof text.body === 'string' ? { type: 'text', body: text.body } : undefined;
    }
    case 'audio': {
      const audio = sub(m, 'audio');
      const mediaId = str(audio, 'id');
      if (mediaId === '') return undefined;
      return { type: 'audio', mediaId, mimeType: str(audio, 'mime_type') || 'audio/ogg', voice: audio?.voice === true };
    }
    case 'image': {
      const image = sub(m, 'image');
      const mediaId = str(image, 'id');
      if (mediaId === '') return undefined;
      return { type: 'image', mediaId, mimeType: str(image, 'mime_type') || 'image/jpeg', caption: str(image, 'caption') };
    }
    case 'interactive': {
      const interactive = sub(m, 'interactive');
      const kind = str(interactive, 'type');
      if (kind !== 'button_reply' && kind !== 'list_reply') return { type: 'other', rawType: `interactive.${kind || 'unknown'}` };
      const reply = sub(interactive, kind);
      const title = str(reply, 'title');
      if (title === '') return undefined;
      return { type: 'choice', source: kind, choiceId: str(reply, 'id'), title };
    }
    case 'button': {
      // A quick-reply button of a template message: `text` is the label the user tapped.
      const button = sub(m, 'button');
      const label = str(button, 'text') || str(button, 'payload');
      if (label === '') return undefined;
      return { type: 'choice', source: 'button', choiceId: str(button, 'payload'), title: label };
    }
    case 'reaction': {
      const reaction = sub(m, 'reaction');
      // `emoji` is absent when the user removes a reaction.
      return { type: 'reaction', messageId: str(reaction, 'message_id'), emoji: str(reaction, 'emoji') };
    }
    case 'system':
      return { type: 'system', body: str(sub(m, 'system'), 'body') };
    default:
      return { type: 'other', rawType: type || 'unknown' };
  }
}

/**
 * Extracts messages and statuses from a parsed webhook body.
 * A body for another `object` (not `whatsapp_business_account`) or other `field`s
 * (account updates, template reviews…) yields an empty batch.
 */
export function parseWebhook(body: unknown): WebhookBatch {
  const batch: WebhookBatch = { messages: [], statuses: [], skipped: 0 };
  if (!isJsonObject(body) || body.object !== 'whatsapp_business_account') return batch;
  for (const entry of records(body.entry)) {
    for (const change of records(entry.changes)) {
      if (change.field !== undefined && change.field !== 'messages') continue;
      const value = sub(change, 'value');
      if (!value) continue;
      const phoneNumberId = str(sub(value, 'metadata'), 'phone_number_id');
      const names = new Map<string, string>();
      for (const contact of records(value.contacts)) {
        names.set(str(contact, 'wa_id'), str(sub(contact, 'profile'), 'name'));
      }
      for (const m of records(value.messages)) {
        const id = str(m, 'id');
        const from = str(m, 'from');
        const c = content(m);
        if (id === '' || from === '' || !c) {
          batch.skipped++;
          continue;
        }
        batch.messages.push({ id, from, timestampSec: seconds(m, 'timestamp'), phoneNumberId, profileName: names.get(from) ?? '', ...c });
      }
      for (const s of records(value.statuses)) {
        const id = str(s, 'id');
        if (id === '') {
          batch.skipped++;
          continue;
        }
        batch.statuses.push({
          id,
          status: statusKind(str(s, 'status')),
          recipientId: str(s, 'recipient_id'),
          timestampSec: seconds(s, 'timestamp'),
          errorCodes: errorCodes(s),
        });
      }
    }
  }
  return batch;
}

const utf8 = new TextDecoder('utf-8');

/**
 * Parses the raw body bytes (already signature-checked) into a {@link WebhookBatch}.
 * @throws {@link WhatsAppPayloadError} when the body is not a JSON object.
 */
export function parseWebhookBody(raw: Uint8Array | string): WebhookBatch {
  let parsed: unknown;
  try {
    parsed = JSON.parse(typeof raw === 'string' ? raw : utf8.decode(raw));
  } catch {
    throw new WhatsAppPayloadError('webhook body is not JSON', 'not_json');
  }
  if (!isJsonObject(parsed)) throw new WhatsAppPayloadError('webhook body is not a JSON object', 'not_object');
  return parseWebhook(parsed);
}
