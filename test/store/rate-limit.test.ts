import { loadConfig } from '../../lib/config';
import { createDocumentClient } from '../../lib/store/client';
import { RateLimitStore } from '../../lib/store/rate-limit';
import { startTestStack, type TestStack } from '../../local/stack';

describe('RateLimitStore on DynamoDB', () => {
  let stack: TestStack;
  let clients: ReturnType<typeof createDocumentClient>[];
  let store: RateLimitStore;
  let tableName: string;
  const limit = { messages: 3, windowSec: 600 };
  /** A fixed instant at the start of a window, so tests control the roll-over. */
  const windowStart = Date.UTC(2026, 0, 1, 12, 0, 0);

  beforeAll(async () => {
    stack = await startTestStack();
    const cfg = loadConfig(stack.env);
    tableName = cfg.aws.tableName;
    clients = [createDocumentClient(cfg.aws), createDocumentClient(cfg.aws)];
    store = new RateLimitStore(clients[0] ?? createDocumentClient(cfg.aws), tableName);
  });

  afterAll(async () => {
    for (const client of clients) client.destroy();
    await stack.stop();
  });

  it('admits the limit, refuses the next, and tells only the first refused message', async () => {
    // Arrange
    const take = (msgKey: string, at = windowStart + 1000) => store.take('wechat', 'o-counted', msgKey, at, limit);
    // Act
    const admitted = [await take('m1'), await take('m2'), await take('m3')];
    const fourth = await take('m4');
    const fifth = await take('m5');
    const fourthAgain = await take('m4');
    // Assert
    expect(admitted.map((d) => d.allowed && d.count)).toEqual([1, 2, 3]);
    expect(fourth).toEqual({ allowed: false, first: true, resetAtMs: windowStart + 600_000 });
    expect(fifth).toMatchObject({ allowed: false, first: false });
    expect(fourthAgain).toMatchObject({ allowed: false, first: true });
  });

  it('counts a redelivered message once', async () => {
    const take = (msgKey: string) => store.take('whatsapp', '15551230000', msgKey, windowStart + 5000, limit);

    await take('wamid.1');
    await take('wamid.1');
    await take('wamid.2');
    const redelivered = await take('wamid.2');
    const third = await take('wamid.3');

    expect(redelivered).toMatchObject({ allowed: true, count: 2 });
    expect(third).toMatchObject({ allowed: true, count: 3 });
  });

  it('starts afresh when the window rolls over', async () => {
    const take = (msgKey: string, at: number) => store.take('twilio', '+15550001111', msgKey, at, limit);
    for (const key of ['s1', 's2', 's3']) await take(key, windowStart + 599_000);
    const lastInWindow = await take('s4', windowStart + 599_999);

    const nextWindow = await take('s5', windowStart + 600_000);

    expect(lastInWindow.allowed).toBe(false);
    expect(nextWindow).toMatchObject({ allowed: true, count: 1, resetAtMs: windowStart + 1_200_000 });
  });

  it('keeps users and channels apart', async () => {
    for (const key of ['a1', 'a2', 'a3', 'a4']) await store.take('wechat', 'o-busy', key, windowStart, limit);

    expect(await store.take('wechat', 'o-quiet', 'b1', windowStart, limit)).toMatchObject({ allowed: true, count: 1 });
    expect(await store.take('whatsapp', 'o-busy', 'c1', windowStart, limit)).toMatchObject({ allowed: true, count: 1 });
  });

  it('shares one counter between concurrent workers (separate clients)', async () => {
    // Arrange: two "instances", 30 distinct messages of one user at once, limit 20.
    const [a, b] = clients.map((client) => new RateLimitStore(client, tableName));
    if (!a || !b) throw new Error('two clients expected');
    const shared = { messages: 20, windowSec: 600 };

    // Act
    const decisions = await Promise.all(
      Array.from({ length: 30 }, (_, i) => (i % 2 === 0 ? a : b).take('wechat', 'o-concurrent', `m${i}`, windowStart, shared)),
    );

    // Assert
    expect(decisions.filter((d) => d.allowed)).toHaveLength(20);
    expect(decisions.filter((d) => !d.allowed && d.first)).toHaveLength(1);
  });

  it('admits everything without a write when the limit is off', async () => {
    const off = { messages: 0, windowSec: 600 };

    const decisions = await Promise.all(Array.from({ length: 5 }, (_, i) => store.take('wechat', 'o-free', `f${i}`, windowStart, off)));

    expect(decisions.every((d) => d.allowed)).toBe(true);
  });
});
