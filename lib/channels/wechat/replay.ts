/**
 * Binds each signed (timestamp, nonce) to the first message seen with it, for as long as
 * the timestamp is accepted. In plaintext mode WeChat's signature covers only token,
 * timestamp and nonce, not the body
 * (https://developers.weixin.qq.com/doc/offiaccount/en/Basic_Information/Access_Overview.html),
 * so without this a captured query string would sign any body (another user's
 * FromUserName, a "1" that takes their page, an `unsubscribe`). A redelivery of the same
 * message under the same query stays a redelivery; another message is refused.
 *
 * Item: pk `wxsig#{timestamp}#{nonce}`, sk `wxsig`, `messageHash`, `expiresAtSec`
 * (DynamoDB TTL; expired items are also ignored on read since deletion lags).
 *
 * @module
 */
import { GetCommand, PutCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { isConditionFailure } from '../../store/client';
import type { RequestBinding } from './request';

/** Key prefix of the binding items (IAM LeadingKeys must allow it for the WeChat function). */
export const SIGNATURE_KEY_PREFIX = 'wxsig#';

/** `first`: a new (timestamp, nonce); `same`: seen before with this message; `conflict`: seen with another message. */
export type BindOutcome = 'first' | 'same' | 'conflict';

/** Where bindings are kept; an in-memory fake implements it in unit tests. */
export interface SignatureBindings {
  bind(binding: RequestBinding, nowMs: number): Promise<BindOutcome>;
}

/** The bindings in the message table, one conditional put per request. */
export class DynamoSignatureBindings implements SignatureBindings {
  constructor(
    private readonly db: DynamoDBDocumentClient,
    private readonly tableName: string,
    /** How far a timestamp may be from now (WECHAT_MAX_CLOCK_SKEW_SEC): the binding lives that long past it. */
    private readonly maxClockSkewSec: number,
  ) {}

  async bind(binding: RequestBinding, nowMs: number): Promise<BindOutcome> {
    const key = { pk: `${SIGNATURE_KEY_PREFIX}${binding.timestamp}#${binding.nonce}`, sk: 'wxsig' };
    const nowSec = Math.floor(nowMs / 1000);
    try {
      await this.db.send(
        new PutCommand({
          TableName: this.tableName,
          // The query is accepted until timestampSec + skew; a minute more covers clock drift between instances.
          Item: { ...key, messageHash: binding.messageHash, expiresAtSec: binding.timestampSec + this.maxClockSkewSec + 60 },
          ConditionExpression: 'attribute_not_exists(pk) OR expiresAtSec < :nowSec',
          ExpressionAttributeValues: { ':nowSec': nowSec },
        }),
      );
      return 'first';
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
    }
    const res = await this.db.send(new GetCommand({ TableName: this.tableName, Key: key, ConsistentRead: true }));
    return res.Item?.messageHash === binding.messageHash ? 'same' : 'conflict';
  }
}
