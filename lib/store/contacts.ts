/**
 * Contacts people registered by talking to the assistant (the `save_contact` tool).
 *
 * One item per phone number in a single directory partition:
 * pk = `contact#directory`, sk = `phone#{E.164 number}`. Listing is then one Query in
 * phone order (no Scan over the whole table, so the admin role needs only Query and
 * GetItem). A single partition takes about 1,000 writes/s, far beyond sign-up traffic.
 * Contacts do not expire.
 */
import { isConditionFailure } from './client';
import { GetCommand, QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { ChannelName } from '../types';

/** A registered contact. */
export interface Contact {
  /** E.164 phone number (`+15551234567`). */
  phone: string;
  name: string;
  /** Where the registration was made. */
  channel: ChannelName;
  /** The channel user who registered it (may differ from `phone`, e.g. on WeChat). */
  registeredBy: string;
  createdAtMs: number;
  updatedAtMs: number;
}

/** A page of contacts. */
export interface ContactPage {
  contacts: Contact[];
  /** Pass back as `after` for the next page; undefined on the last page. */
  nextCursor: string | undefined;
}

const PK = 'contact#directory';
const skOf = (phone: string): string => `phone#${phone}`;

/** Longest name stored. */
export const MAX_NAME_CHARS = 100;

/**
 * Normalises a phone number to E.164: spaces, dots, dashes and brackets dropped, `00`
 * read as `+`. Returns undefined when the result is not `+` and 8-15 digits (ITU-T
 * E.164 allows at most 15; shorter numbers are not reachable internationally).
 *
 * @example
 * ```ts
 * normalizePhone('+1 (555) 123-4567'); // '+15551234567'
 * normalizePhone('whatsapp:+4915112345678'); // '+4915112345678'
 * ```
 */
export function normalizePhone(raw: string): string | undefined {
  let p = raw.trim().replace(/^whatsapp:/i, '').replace(/[\s().\-/]/g, '');
  if (p.startsWith('00')) p = `+${p.slice(2)}`;
  return /^\+[1-9]\d{7,14}$/.test(p) ? p : undefined;
}

/** Cleans a person's name: trimmed, inner white space collapsed, control characters dropped, at most 100 characters. */
export function normalizeName(raw: string): string {
  return Array.from(raw.replace(/\p{Cc}/gu, ' ').replace(/\s+/g, ' ').trim()).slice(0, MAX_NAME_CHARS).join('');
}

function isChannel(v: unknown): v is ChannelName {
  return v === 'wechat' || v === 'whatsapp' || v === 'twilio';
}

function toContact(item: Record<string, unknown> | undefined): Contact | undefined {
  if (!item) return undefined;
  const { phone, name, channel, registeredBy, createdAtMs, updatedAtMs } = item;
  if (typeof phone !== 'string' || typeof name !== 'string' || !isChannel(channel)) return undefined;
  return {
    phone,
    name,
    channel,
    registeredBy: typeof registeredBy === 'string' ? registeredBy : '',
    createdAtMs: typeof createdAtMs === 'number' ? createdAtMs : 0,
    updatedAtMs: typeof updatedAtMs === 'number' ? updatedAtMs : 0,
  };
}

/** DynamoDB access for contacts. */
export class ContactStore {
  constructor(
    private readonly db: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  /**
   * Saves (or updates) the contact for `phone`, which must already be E.164 (see
   * {@link normalizePhone}). Registering the same number again renames it and keeps
   * `createdAtMs`. Returns the stored contact, or undefined when a condition kept an
   * existing contact as it was (the conditional write failed):
   * - without `overwriteOthers`, a contact registered by someone else is left alone;
   * - with `createOnly`, any existing contact is left alone (a caller whose caller ID is
   *   not verified may register a new number but change no registration).
   */
  async save(
    input: { phone: string; name: string; channel: ChannelName; registeredBy: string },
    nowMs: number,
    opts: { overwriteOthers: boolean; createOnly?: boolean } = { overwriteOthers: true },
  ): Promise<Contact | undefined> {
    const condition = opts.createOnly === true ? 'attribute_not_exists(sk)' : opts.overwriteOthers ? undefined : 'attribute_not_exists(sk) OR registeredBy = :by';
    try {
      const res = await this.db.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: PK, sk: skOf(input.phone) },
          UpdateExpression:
            'SET phone = :phone, #name = :name, channel = :channel, registeredBy = :by, updatedAtMs = :now, createdAtMs = if_not_exists(createdAtMs, :now)',
          ...(condition === undefined ? {} : { ConditionExpression: condition }),
          ExpressionAttributeNames: { '#name': 'name' },
          ExpressionAttributeValues: { ':phone': input.phone, ':name': input.name, ':channel': input.channel, ':by': input.registeredBy, ':now': nowMs },
          ReturnValues: 'ALL_NEW',
        }),
      );
      const contact = toContact(res.Attributes);
      if (!contact) throw new Error('saved contact is unreadable');
      return contact;
    } catch (err) {
      if (isConditionFailure(err)) return undefined;
      throw err;
    }
  }

  /** Reads one contact by E.164 number. */
  async get(phone: string): Promise<Contact | undefined> {
    const res = await this.db.send(new GetCommand({ TableName: this.tableName, Key: { pk: PK, sk: skOf(phone) }, ConsistentRead: true }));
    return toContact(res.Item);
  }

  /**
   * Lists contacts in phone-number order, `limit` at a time (1-100), starting after the
   * `after` cursor of the previous page.
   */
  async list(limit: number, after?: string): Promise<ContactPage> {
    const res = await this.db.send(
      new QueryCommand({
        TableName: this.tableName,
        KeyConditionExpression: 'pk = :pk',
        ExpressionAttributeValues: { ':pk': PK },
        Limit: Math.min(100, Math.max(1, Math.floor(limit))),
        ConsistentRead: true,
        ...(after !== undefined && after !== '' ? { ExclusiveStartKey: { pk: PK, sk: skOf(after) } } : {}),
      }),
    );
    const contacts: Contact[] = [];
    for (const item of res.Items ?? []) {
      const contact = toContact(item);
      if (contact) contacts.push(contact);
    }
    const last: unknown = res.LastEvaluatedKey?.sk;
    const nextCursor = typeof last === 'string' && last.startsWith('phone#') ? last.slice('phone#'.length) : undefined;
    return { contacts, nextCursor };
  }
}
