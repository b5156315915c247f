/**
 * The per-user rate limit through the pipeline: WeChat messages in, the worker counting
 * LLM-bound messages in DynamoDB, the fake LLM counting calls. "Reply 1" fetches and commands
 * do not count; the window rolls over on the worker's clock; workers share one counter.
 */
import { HELP_TEXT } from '../../lib/core/commands';
import { rateLimitedText } from '../../lib/core/notes';
import { runTurn } from '../../lib/core/turn';
import { systemClock, silentLog, type Clock, type Job } from '../../lib/types';
import { createTurnDeps } from '../../functions/compose';
import { startFakeOpenAi, type FakeOpenAi } from '../fakes/fake-openai';
import { WeChatPlatform } from '../../local/fakes/wechat-platform';
import { startGateway, type Gateway } from '../../local/gateway';

/** The worker's clock: real time plus an offset the tests move forward. */
const shifted = { offsetMs: 0 };
const workerClock: Clock = { nowMs: () => Date.now() + shifted.offsetMs, sleep: (ms) => systemClock.sleep(ms) };

describe('per-user rate limit (20 LLM-bound messages per 600 s)', () => {
  let llm: FakeOpenAi;
  let gw: Gateway;
  let platform: WeChatPlatform;

  /** LLM calls made for questions starting with `prefix`. */
  const callsFor = (prefix: string): number => llm.chatRequests.filter((r) => r.lastUserText.startsWith(prefix)).length;

  beforeAll(async () => {
    // Start one second into a fresh window, so no test straddles a window boundary by chance.
    const now = Date.now();
    shifted.offsetMs = Math.ceil(now / 600_000) * 600_000 - now + 1000;
    llm = await startFakeOpenAi();
    gw = await startGateway({
      env: { OPENAI_API_KEY: 'sk-test', OPENAI_BASE_URL: llm.baseUrl, WECHAT_TOKEN: 't', WECHAT_REPLY_WAIT_MS: '1500' },
      wechat: { pollMs: 20, holdMs: 2150 },
      worker: { clock: workerClock },
    });
    platform = new WeChatPlatform({ url: `${gw.http.url}/wechat`, token: 't', windowMs: 2000 });
  });

  afterAll(async () => {
    await gw.stop();
    await llm.close();
  });

  it('answers 20 questions, tells the 21st about the limit without calling the LLM, and drops the 22nd quietly', async () => {
    // Arrange
    const replies: (string | undefined)[] = [];
    for (let i = 1; i <= 20; i++) replies.push((await platform.send('o-chatty', `chatty question ${i}`)).reply);

    // Act
    const twentyFirst = await platform.send('o-chatty', 'chatty question 21');
    const twentySecond = await platform.send('o-chatty', 'chatty question 22');
    await gw.idle();

    // Assert
    expect(replies).toEqual(Array.from({ length: 20 }, (_, i) => `Echo: chatty question ${i + 1}`));
    expect(twentyFirst.reply).toMatch(/^You have sent a lot of messages in a short time\. Please try again in \d+ minutes?\.$/);
    expect(twentySecond.reply).toBeUndefined();
    expect(callsFor('chatty question')).toBe(20);
  }, 60_000);

  it('answers again once the window has rolled over', async () => {
    // Arrange: o-chatty is over the limit (previous test); move the worker's clock a window on.
    shifted.offsetMs += 600_000;

    // Act
    const next = await platform.send('o-chatty', 'chatty question after the window');

    // Assert
    expect(next.reply).toBe('Echo: chatty question after the window');
    expect(callsFor('chatty question after')).toBe(1);
  });

  it('does not count "reply 1" fetches or commands', async () => {
    // Arrange: a first answer longer than a page, so "1" has a page to fetch.
    llm.answer = (req) => (req.lastUserText === 'fetcher 1' ? `${'Long answer. '.repeat(250)}The end.` : `Echo: ${req.lastUserText}`);
    const first = await platform.send('o-fetcher', 'fetcher 1');

    // Act
    const page = await platform.send('o-fetcher', '1');
    const help = await platform.send('o-fetcher', '/help');
    const rest: (string | undefined)[] = [];
    for (let i = 2; i <= 20; i++) rest.push((await platform.send('o-fetcher', `fetcher ${i}`)).reply);
    const over = await platform.send('o-fetcher', 'fetcher 21');
    await gw.idle();
    llm.answer = (req) => `Echo: ${req.lastUserText}`;

    // Assert: the fetch and the command were served, the 20 questions answered, the 21st refused.
    expect(first.reply).toContain('Long answer.');
    expect(page.reply).toContain('The end.');
    expect(help.reply).toBe(HELP_TEXT);
    expect(rest).toEqual(Array.from({ length: 19 }, (_, i) => `Echo: fetcher ${i + 2}`));
    expect(over.reply).toMatch(/^You have sent a lot of messages/);
    expect(callsFor('fetcher')).toBe(20);
  }, 60_000);

  it('answers in Chinese to a user who writes Chinese', async () => {
    for (let i = 1; i <= 20; i++) await platform.send('o-zh', `问题 ${i}`);

    const over = await platform.send('o-zh', '再问一个问题');

    expect(over.reply).toMatch(/^您发送的消息有点多，请 \d+ 分钟后再试。$/);
    expect(rateLimitedText(10).zh).toBe('您发送的消息有点多，请 10 分钟后再试。');
  }, 60_000);

  it('shares one counter between two workers answering the same user at once', async () => {
    // Arrange: two workers with their own DynamoDB clients, 25 jobs of one user.
    const workers = [createTurnDeps(gw.config, silentLog, { clock: workerClock }), createTurnDeps(gw.config, silentLog, { clock: workerClock })];
    const jobs: Job[] = Array.from({ length: 25 }, (_, i) => ({
      v: 1,
      channel: 'wechat',
      userId: 'o-two-workers',
      msgKey: `two-workers-${i}`,
      conversationKey: `wechat#o-two-workers-${i}`,
      input: { kind: 'text', text: `two workers ${i}` },
      reply: { channel: 'wechat', accountId: 'gh_test' },
      arrivedAtMs: Date.now(),
    }));

    // Act
    const records = await Promise.all(jobs.map((job, i) => runTurn(workers[i % 2] ?? gw.turnDeps, job)));

    // Assert: exactly 20 LLM calls; one refusal with the note; the rest dropped without a reply.
    expect(callsFor('two workers')).toBe(20);
    expect(records.filter((r) => r.answer.startsWith('Echo: two workers'))).toHaveLength(20);
    expect(records.filter((r) => r.note.kind === 'over_limit' && r.answer.startsWith('You have sent'))).toHaveLength(1);
    expect(records.filter((r) => r.note.kind === 'over_limit' && r.answer === '' && !r.pending)).toHaveLength(4);
  });
});
