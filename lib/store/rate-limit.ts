/**
 * Per-user rate limit of LLM-bound messages, shared by every worker instance through DynamoDB.
 *
 * A fixed window: one item per user, channel and window, pk = `rate#{channel}#{userId}`,
 * sk = `window#{windowStartSec}` (window start = now rounded down to a multiple of the window
 * length). A message is admitted by one atomic conditional UpdateItem that adds its `msgKey` to
 * a string set while the set holds fewer than the limit
 * (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.ConditionExpressions.html).
 * Counting message keys rather than a number keeps the counter idempotent: SQS redelivers a job
 * at least once, and a redelivered message must not count twice (`contains` lets it through).
 *
 * Why a fixed window: one write per message and no clock coordination between instances. Its
 * known edge: a burst at the end of one window and the start of the next can reach twice the
 * limit within one window's length; for keeping a script off the LLM bill that is enough.
 * Items expire (TTL) an hour after their window closes.
 */
import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { RateLimitConfig } from '../config';
import type { ChannelName } from '../types';
import { isConditionFailure } from './client';

/** The partition-key prefix of rate-limit items (IAM `dynamodb:LeadingKeys` scoping). */
export const RATE_KEY_PREFIX = 'rate#';

/** The verdict on one message. */
export type RateDecision =
  /** Within the limit (`count` messages admitted in this window so far, this one included). */
  | { allowed: true; count: number; resetAtMs: number }
  /**
   * Over the limit. `first` is true for the first refused message of the window (and for
   * redeliveries of it): that one is told why; later ones are dropped quietly, so a flood costs
   * no outbound messages either.
   */
  | { allowed: false; first: boolean; resetAtMs: number };

/** DynamoDB access for the per-user rate limit. */
export class RateLimitStore {
  constructor(
    private readonly db: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  /**
   * Counts `msgKey` against the user's current window, atomically.
   * @param limit - messages per window; `messages: 0` admits everything without a write.
   */
  async take(channel: ChannelName, userId: string, msgKey: string, nowMs: number, limit: RateLimitConfig): Promise<RateDecision> {
    const windowMs = limit.windowSec * 1000;
    const windowStartMs = Math.floor(nowMs / windowMs) * windowMs;
    const resetAtMs = windowStartMs + windowMs;
    if (limit.messages <= 0) return { allowed: true, count: 0, resetAtMs };
    const key = { pk: `${RATE_KEY_PREFIX}${channel}#${userId}`, sk: `window#${windowStartMs / 1000}` };
    const expiresAtSec = Math.floor(resetAtMs / 1000) + 3600;
    try {
      const res = await this.db.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: key,
          UpdateExpression: 'ADD msgs :key SET expiresAtSec = :exp',
          ConditionExpression: 'attribute_not_exists(msgs) OR size(msgs) < :limit OR contains(msgs, :msgKey)',
          ExpressionAttributeValues: { ':key': new Set([msgKey]), ':exp': expiresAtSec, ':limit': limit.messages, ':msgKey': msgKey },
          ReturnValues: 'UPDATED_NEW',
        }),
      );
      const msgs: unknown = res.Attributes?.msgs;
      return { allowed: true, count: msgs instanceof Set ? msgs.size : 1, resetAtMs };
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
    }
    // Over the limit: remember the first refused message, so only it is answered.
    try {
      await this.db.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: key,
          UpdateExpression: 'SET refused = :msgKey',
          ConditionExpression: 'attribute_not_exists(refused) OR refused = :msgKey',
          ExpressionAttributeValues: { ':msgKey': msgKey },
        }),
      );
      return { allowed: false, first: true, resetAtMs };
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
      return { allowed: false, first: false, resetAtMs };
    }
  }
}
