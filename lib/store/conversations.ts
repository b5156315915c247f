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

  /** Saves the conversation, keeping only the last `maxTurns` exchanges (user + assistant). */
  async save(conversationKey: string, conversation: Conversation, maxTurns: number, nowMs: number): Promise<void> {
    const keep = Math.max(0, maxTurns) * 2;
    const turns = keep === 0 ? [] : conversation.turns.slice(-keep);
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
