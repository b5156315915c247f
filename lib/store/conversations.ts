/**
 * Conversation memory: the last turns per conversation (openai) and the Dify
 * conversation id (dify). One item per conversation: pk = `conv#{conversationKey}`.
 * Writers are serialised by the FIFO queue (one message group per user), so a plain
 * read-modify-write is safe here.
 */
import { DeleteCommand, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { ChatTurn } from '../llm/types';
import { ttlSec } from './client';

/** Stored memory of one conversation. */
export interface Conversation {
  turns: ChatTurn[];
  difyConversationId: string | undefined;
}

/** How much history a conversation keeps. */
export interface HistoryLimits {
  /** Exchanges (user + assistant turn pairs) kept. */
  maxTurns: number;
  /** UTF-8 bytes of stored turns, as {@link turnBytes} counts them. */
  maxBytes: number;
}

/**
 * What one stored turn adds to the item, counted the way DynamoDB sizes items: the UTF-8 bytes
 * of attribute names and string values, plus a few bytes per list element and map
 * (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html#ItemSizeCalculations).
 * 8 bytes of overhead per turn is a safe upper bound for the map and its list slot.
 */
export function turnBytes(turn: ChatTurn): number {
  return Buffer.byteLength('role') + Buffer.byteLength(turn.role) + Buffer.byteLength('content') + Buffer.byteLength(turn.content, 'utf8') + 8;
}

/** The longest prefix of `text` that fits in `maxBytes` of UTF-8, never splitting a character. */
export function truncateUtf8(text: string, maxBytes: number): string {
  if (Buffer.byteLength(text, 'utf8') <= maxBytes) return text;
  // encodeInto writes only whole characters; `read` is how many UTF-16 units made it.
  const { read } = new TextEncoder().encodeInto(text, new Uint8Array(Math.max(0, maxBytes)));
  return text.slice(0, read);
}

/**
 * The turns to store: the last `maxTurns` exchanges, then the oldest dropped first until the rest
 * fit in `maxBytes`. The newest exchange is always kept; when it alone is too big, its assistant
 * answer (then, if need be, the user's text) is truncated to fit. The stored history is what the
 * model sees next time, so a cut there costs context, never an answer: the answer itself lives
 * in the message record.
 */
export function trimTurns(turns: readonly ChatTurn[], limits: HistoryLimits): ChatTurn[] {
  const keep = Math.max(0, limits.maxTurns) * 2;
  const kept = keep === 0 ? [] : turns.slice(-keep);
  let total = kept.reduce((sum, turn) => sum + turnBytes(turn), 0);
  // Drop whole exchanges from the front while more than the newest one remains.
  while (total > limits.maxBytes && kept.length > 2) {
    const dropped = kept.splice(0, kept.length % 2 === 1 ? 1 : 2);
    total -= dropped.reduce((sum, turn) => sum + turnBytes(turn), 0);
  }
  if (total <= limits.maxBytes) return kept;
  // The newest exchange alone is too big: shorten its longest parts, the answer first.
  const fitted = kept.map((turn) => ({ ...turn }));
  for (const index of [fitted.length - 1, fitted.length - 2]) {
    const turn = fitted[index];
    if (!turn || total <= limits.maxBytes) continue;
    const others = total - turnBytes(turn);
    const room = Math.max(0, limits.maxBytes - others - turnBytes({ role: turn.role, content: '' }));
    turn.content = truncateUtf8(turn.content, room);
    total = others + turnBytes(turn);
  }
  return fitted;
}

/** Idle conversations are forgotten after this many days. */
export const CONVERSATION_TTL_DAYS = 30;

function isTurn(value: unknown): value is ChatTurn {
  return (
    typeof value === 'object' &&
    value !== null &&
    'role' in value &&
    'content' in value &&
    (value.role === 'user' || value.role === 'assistant') &&
    typeof value.content === 'string'
  );
}

/** DynamoDB access for conversation memory. */
export class ConversationStore {
  constructor(
    private readonly db: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  private key(conversationKey: string): { pk: string; sk: string } {
    return { pk: `conv#${conversationKey}`, sk: 'state' };
  }

  /** Loads the conversation; an unknown or expired one is empty. */
  async load(conversationKey: string, nowMs: number): Promise<Conversation> {
    const res = await this.db.send(
      new GetCommand({ TableName: this.tableName, Key: this.key(conversationKey), ConsistentRead: true }),
    );
    const item: Record<string, unknown> | undefined = res.Item;
    const expires = typeof item?.expiresAtSec === 'number' ? item.expiresAtSec : 0;
    if (!item || (expires > 0 && expires * 1000 < nowMs)) return { turns: [], difyConversationId: undefined };
    const turns = Array.isArray(item.turns) ? item.turns.filter(isTurn) : [];
    const dify = typeof item.difyConversationId === 'string' && item.difyConversationId !== '' ? item.difyConversationId : undefined;
    return { turns, difyConversationId: dify };
  }

  /**
   * Saves the conversation, keeping only the last `maxTurns` exchanges (user + assistant) and at
   * most `maxBytes` of turns (see {@link trimTurns}), so the item stays far below DynamoDB's
   * 400 KB item limit whatever the answers' length.
   */
  async save(conversationKey: string, conversation: Conversation, limits: HistoryLimits, nowMs: number): Promise<void> {
    const turns = trimTurns(conversation.turns, limits);
    await this.db.send(
      new PutCommand({
        TableName: this.tableName,
        Item: {
          ...this.key(conversationKey),
          turns,
          difyConversationId: conversation.difyConversationId ?? '',
          updatedAtMs: nowMs,
          expiresAtSec: ttlSec(nowMs, CONVERSATION_TTL_DAYS),
        },
      }),
    );
  }

  /** Forgets the conversation (`/clear`, unsubscribe). */
  async clear(conversationKey: string): Promise<void> {
    await this.db.send(new DeleteCommand({ TableName: this.tableName, Key: this.key(conversationKey) }));
  }
}
