/**
 * Where the fleet-wide WeChat access token lives between Lambda instances: one item per
 * AppID (`token#wechat#<appId>` / `token`) holding the token and the daily `force_refresh`
 * ledger, and a lease item (`lock`) so one instance at a time asks WeChat for a new token.
 * The refresh policy (when to refresh, what WeChat allows) is lib/channels/wechat/token.ts.
 *
 * @module
 */
import { randomUUID } from 'node:crypto';
import { DeleteCommand, GetCommand, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { isConditionFailure, ttlSec } from './client';
import { isJsonObject, numberField, stringField } from '../json';

/** A token as stored. */
export interface StoredToken {
  token: string;
  expiresAtMs: number;
  /** When to start refreshing; absent on items written before it was stored. */
  refreshAtMs?: number;
}

/** The fleet's `force_refresh:true` calls (WeChat: 20 a day, 30 s apart). */
export interface ForceLedger {
  /** Last `force_refresh:true` call (epoch ms), 0 if none. */
  atMs: number;
  /** China-time day (`YYYY-MM-DD`) that `count` belongs to. */
  day: string;
  count: number;
}

/** A held refresh lease. */
export interface TokenLease {
  owner: string;
}

/** The token's shared storage, injected into the WeChat token provider. */
export interface TokenStore {
  /** The stored token (if any) and the force-refresh ledger, read consistently. */
  read(): Promise<{ token: StoredToken | undefined; force: ForceLedger }>;
  /** Stores a fresh token, leaving the ledger on the same item untouched. */
  store(token: Required<StoredToken>, nowMs: number): Promise<void>;
  /** Records one forced refresh, if the ledger still is `previous`; false when another instance moved it first. */
  recordForce(previous: ForceLedger, next: ForceLedger): Promise<boolean>;
  /** Takes the refresh lease until `nowMs + leaseMs`; undefined while another instance holds it. */
  acquireLease(nowMs: number, leaseMs: number): Promise<TokenLease | undefined>;
  /** Gives the lease back; a lease lost to expiry is fine. */
  releaseLease(lease: TokenLease): Promise<void>;
}

/** {@link TokenStore} on the gateway's DynamoDB table. */
export class DynamoTokenStore implements TokenStore {
  private readonly pk: string;

  constructor(
    private readonly db: DynamoDBDocumentClient,
    private readonly tableName: string,
    appId: string,
  ) {
    this.pk = `token#wechat#${appId}`;
  }

  async read(): Promise<{ token: StoredToken | undefined; force: ForceLedger }> {
    const res = await this.db.send(new GetCommand({ TableName: this.tableName, Key: { pk: this.pk, sk: 'token' }, ConsistentRead: true }));
    const item = isJsonObject(res.Item) ? res.Item : {};
    const token = stringField(item, 'token');
    const expiresAtMs = numberField(item, 'expiresAtMs');
    const refreshAtMs = numberField(item, 'refreshAtMs');
    return {
      token: token !== undefined && token !== '' && expiresAtMs !== undefined ? { token, expiresAtMs, ...(refreshAtMs !== undefined ? { refreshAtMs } : {}) } : undefined,
      force: { atMs: numberField(item, 'forcedAtMs') ?? 0, day: stringField(item, 'forcedDay') ?? '', count: numberField(item, 'forcedCount') ?? 0 },
    };
  }

  async store(t: Required<StoredToken>, nowMs: number): Promise<void> {
    await this.db.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: { pk: this.pk, sk: 'token' },
        UpdateExpression: 'SET #t = :t, expiresAtMs = :e, refreshAtMs = :r, fetchedAtMs = :now, expiresAtSec = :ttl',
        ExpressionAttributeNames: { '#t': 'token' },
        ExpressionAttributeValues: {
          ':t': t.token,
          ':e': t.expiresAtMs,
          ':r': t.refreshAtMs,
          ':now': nowMs,
          // Keep the item (and its daily force ledger) a day past the token's expiry.
          ':ttl': ttlSec(t.expiresAtMs, 1),
        },
      }),
    );
  }

  async recordForce(previous: ForceLedger, next: ForceLedger): Promise<boolean> {
    try {
      await this.db.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: this.pk, sk: 'token' },
          UpdateExpression: 'SET forcedAtMs = :now, forcedDay = :day, forcedCount = :count',
          ConditionExpression: 'attribute_not_exists(forcedAtMs) OR forcedAtMs = :prev',
          ExpressionAttributeValues: { ':now': next.atMs, ':day': next.day, ':count': next.count, ':prev': previous.atMs },
        }),
      );
      return true;
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
  }

  async acquireLease(nowMs: number, leaseMs: number): Promise<TokenLease | undefined> {
    const owner = randomUUID();
    try {
      await this.db.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { pk: this.pk, sk: 'lock', owner, leaseUntilMs: nowMs + leaseMs, expiresAtSec: ttlSec(nowMs, 1) },
          // Free, or the holder's lease ran out (it crashed or timed out).
          ConditionExpression: 'attribute_not_exists(pk) OR leaseUntilMs < :now',
          ExpressionAttributeValues: { ':now': nowMs },
        }),
      );
      return { owner };
    } catch (err) {
      if (isConditionFailure(err)) return undefined;
      throw err;
    }
  }

  async releaseLease(lease: TokenLease): Promise<void> {
    try {
      await this.db.send(
        new DeleteCommand({
          TableName: this.tableName,
          Key: { pk: this.pk, sk: 'lock' },
          ConditionExpression: '#o = :o',
          ExpressionAttributeNames: { '#o': 'owner' },
          ExpressionAttributeValues: { ':o': lease.owner },
        }),
      );
    } catch (err) {
      // Lost it to expiry: the lease ran out by itself.
      if (!isConditionFailure(err)) throw err;
    }
  }
}
