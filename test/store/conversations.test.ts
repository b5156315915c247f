import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { loadConfig } from '../../lib/config';
import type { ChatTurn } from '../../lib/llm/types';
import { createDocumentClient } from '../../lib/store/client';
import { ConversationStore, trimTurns, truncateUtf8, turnBytes } from '../../lib/store/conversations';
import { startTestStack, type TestStack } from '../../local/stack';

/** DynamoDB's item size as its docs describe it: attribute names plus values, with small overheads for maps and lists. */
function itemBytes(value: unknown): number {
  if (typeof value === 'string') return Buffer.byteLength(value, 'utf8');
  if (typeof value === 'number') return Math.ceil(String(value).length / 2) + 1;
  if (typeof value === 'boolean' || value === null || value === undefined) return 1;
  if (Array.isArray(value)) return 3 + value.reduce((sum: number, v: unknown) => sum + 1 + itemBytes(v), 0);
  if (typeof value === 'object') return 3 + Object.entries(value).reduce((sum, [k, v]) => sum + 1 + Buffer.byteLength(k) + itemBytes(v), 0);
  return 0;
}

/**
 * `bytes` of UTF-8, mostly ASCII with some Chinese and emoji (so characters and bytes differ).
 * Mostly ASCII because dynalite sizes strings in UTF-16 units where AWS counts UTF-8 bytes: for
 * ASCII both agree, so the stand-in refuses an over-400 KB item just as DynamoDB would.
 */
function longAnswer(bytes: number, seed: number): string {
  const unit = `Answer ${seed}: ${'The quick brown fox jumps over the lazy dog. '.repeat(4)}长答案 🚀 `;
  return truncateUtf8(unit.repeat(Math.ceil(bytes / Buffer.byteLength(unit)) + 1), bytes);
}

const exchange = (question: string, answer: string): ChatTurn[] => [
  { role: 'user', content: question },
  { role: 'assistant', content: answer },
];

describe('truncateUtf8', () => {
  it('cuts to the byte budget without splitting a character', () => {
    expect(truncateUtf8('ab你好🚀', 4)).toBe('ab');
    expect(truncateUtf8('ab你好🚀', 5)).toBe('ab你');
    expect(truncateUtf8('ab你好🚀', 11)).toBe('ab你好');
    expect(truncateUtf8('ab你好🚀', 12)).toBe('ab你好🚀');
  });
});

describe('trimTurns', () => {
  it('drops the oldest exchanges first until the rest fit the byte budget', () => {
    // Arrange: three exchanges of about 1 KB each, room for two.
    const turns = [...exchange('q1', 'a'.repeat(1000)), ...exchange('q2', 'b'.repeat(1000)), ...exchange('q3', 'c'.repeat(1000))];
    const twoExchanges = turns.slice(2).reduce((sum, t) => sum + turnBytes(t), 0);

    // Act
    const kept = trimTurns(turns, { maxTurns: 10, maxBytes: twoExchanges + 10 });

    // Assert
    expect(kept.map((t) => t.content.slice(0, 2))).toEqual(['q2', 'bb', 'q3', 'cc']);
  });

  it('still keeps at most maxTurns exchanges', () => {
    const turns = [...exchange('q1', 'a1'), ...exchange('q2', 'a2'), ...exchange('q3', 'a3')];

    expect(trimTurns(turns, { maxTurns: 1, maxBytes: 65_536 })).toEqual(exchange('q3', 'a3'));
    expect(trimTurns(turns, { maxTurns: 0, maxBytes: 65_536 })).toEqual([]);
  });

  it('keeps the newest exchange even alone over budget, truncating its answer', () => {
    const huge = longAnswer(500_000, 1);

    const kept = trimTurns([...exchange('old', 'old answer'), ...exchange('what is new?', huge)], { maxTurns: 10, maxBytes: 4096 });

    expect(kept).toHaveLength(2);
    expect(kept[0]).toEqual({ role: 'user', content: 'what is new?' });
    expect(huge.startsWith(kept[1]?.content ?? 'missing')).toBe(true);
    expect(kept.reduce((sum, t) => sum + turnBytes(t), 0)).toBeLessThanOrEqual(4096);
    expect(kept[1]?.content.length).toBeGreaterThan(1000);
  });

  it('truncates the question too when the question alone is over budget', () => {
    const kept = trimTurns(exchange('q'.repeat(10_000), 'a'.repeat(10_000)), { maxTurns: 10, maxBytes: 2048 });

    expect(kept.reduce((sum, t) => sum + turnBytes(t), 0)).toBeLessThanOrEqual(2048);
    expect(kept.map((t) => t.role)).toEqual(['user', 'assistant']);
  });
});

describe('ConversationStore on DynamoDB', () => {
  let stack: TestStack;
  let store: ConversationStore;
  let db: ReturnType<typeof createDocumentClient>;
  let tableName: string;
  const limits = { maxTurns: 10, maxBytes: 64 * 1024 };

  beforeAll(async () => {
    stack = await startTestStack();
    const cfg = loadConfig(stack.env);
    db = createDocumentClient(cfg.aws);
    tableName = cfg.aws.tableName;
    store = new ConversationStore(db, tableName);
  });

  afterAll(async () => {
    db.destroy();
    await stack.stop();
  });

  it('saves ten 60 KB answers in a row, each one whole, and the item stays under the cap', async () => {
    const key = 'wechat#o-long-answers';
    const sizes: number[] = [];
    for (let i = 0; i < 10; i++) {
      // Arrange: what the turn does after each answer: load, append the exchange, save.
      const now = Date.now();
      const answer = longAnswer(60 * 1024, i);
      const conv = await store.load(key, now);

      // Act
      await store.save(key, { turns: [...conv.turns, ...exchange(`question ${i}`, answer)], difyConversationId: undefined }, limits, now);

      // Assert: the newest answer is stored whole, and the item stays far below DynamoDB's 400 KB.
      const saved = await store.load(key, now);
      expect(saved.turns.at(-1)).toEqual({ role: 'assistant', content: answer });
      expect(saved.turns.at(-2)).toEqual({ role: 'user', content: `question ${i}` });
      const item = await db.send(new GetCommand({ TableName: tableName, Key: { pk: `conv#${key}`, sk: 'state' } }));
      sizes.push(itemBytes(item.Item));
    }
    expect(Math.max(...sizes)).toBeLessThan(limits.maxBytes + 1024);
  });

  it('stores a single answer far over 400 KB, truncated, instead of failing the save', async () => {
    const key = 'wechat#o-huge';
    const huge = longAnswer(600 * 1024, 7);

    await store.save(key, { turns: exchange('tell me everything', huge), difyConversationId: undefined }, limits, Date.now());

    const saved = await store.load(key, Date.now());
    expect(saved.turns[0]).toEqual({ role: 'user', content: 'tell me everything' });
    expect(huge.startsWith(saved.turns[1]?.content ?? 'missing')).toBe(true);
    expect(Buffer.byteLength(saved.turns[1]?.content ?? '')).toBeGreaterThan(60 * 1024);
  });
});
