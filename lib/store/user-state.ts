/**
 * Small per-user facts a channel must remember between messages, e.g. that WhatsApp's
 * 24-hour window is closed (131047) or that a WeChat push failed and the user should be
 * told on their next message. One item per user and channel: pk = `state#{channel}#{userId}`.
 */
import { GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { ChannelName } from '../types';
import { ttlSec } from './client';

/** Named string facts about a user; absent names are unset. */
export type UserFacts = Readonly<Record<string, string>>;

/** Facts live this long after their last update. */
export const USER_STATE_TTL_DAYS = 30;

/** DynamoDB access for per-user facts. */
export class UserStateStore {
  constructor(
    private readonly db: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  private key(channel: ChannelName, userId: string): { pk: string; sk: string } {
    return { pk: `state#${channel}#${userId}`, sk: 'state' };
  }

  /** Reads the user's facts (empty when none or expired). */
  async get(channel: ChannelName, userId: string, nowMs: number): Promise<UserFacts> {
    const res = await this.db.send(new GetCommand({ TableName: this.tableName, Key: this.key(channel, userId), ConsistentRead: true }));
    const item: Record<string, unknown> | undefined = res.Item;
    if (!item) return {};
    const expires = typeof item.expiresAtSec === 'number' ? item.expiresAtSec : 0;
    if (expires > 0 && expires * 1000 < nowMs) return {};
    const facts: Record<string, string> = {};
    const stored = item.facts;
    if (typeof stored === 'object' && stored !== null) {
      for (const [name, value] of Object.entries(stored)) if (typeof value === 'string') facts[name] = value;
    }
    return facts;
  }

  /** Sets (string) or clears (undefined) some facts, leaving the others as they are. */
  async set(channel: ChannelName, userId: string, changes: Readonly<Record<string, string | undefined>>, nowMs: number): Promise<void> {
    const sets: string[] = ['expiresAtSec = :exp', 'updatedAtMs = :now'];
    const removes: string[] = [];
    const names: Record<string, string> = {};
    const values: Record<string, unknown> = { ':exp': ttlSec(nowMs, USER_STATE_TTL_DAYS), ':now': nowMs };
    let i = 0;
    for (const [name, value] of Object.entries(changes)) {
      names[`#f${i}`] = name;
      if (value === undefined) removes.push(`facts.#f${i}`);
      else {
        sets.push(`facts.#f${i} = :v${i}`);
        values[`:v${i}`] = value;
      }
      i++;
    }
    // Make sure the map exists before setting paths inside it.
    await this.db.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: this.key(channel, userId),
        UpdateExpression: 'SET facts = if_not_exists(facts, :empty)',
        ExpressionAttributeValues: { ':empty': {} },
      }),
    );
    await this.db.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: this.key(channel, userId),
        UpdateExpression: `SET ${sets.join(', ')}${removes.length > 0 ? ` REMOVE ${removes.join(', ')}` : ''}`,
        ...(i > 0 ? { ExpressionAttributeNames: names } : {}),
        ExpressionAttributeValues: values,
      }),
    );
  }
}
