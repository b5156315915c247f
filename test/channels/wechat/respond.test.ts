/**
 * The WeChat reply policies (passive, customer-service, "reply 1") against an in-memory
 * delivery store and a fake clock: what each request is answered with, what it waits
 * for, and what it writes.
 */
import { loadConfig, type WeChatConfig } from '../../../lib/config';
import { moreNote, thinkingText, writingNote } from '../../../lib/channels/wechat/texts';
import { PUSH_FAILED_LEAD, respondCustomerService, respondFetch, respondPassive, type ClaimedRequest, type RespondDeps } from '../../../lib/channels/wechat/respond';
import { silentLog, type Job } from '../../../lib/types';
import { FakeDeliveryStore } from '../../fakes/fake-delivery-store';
import { FakeClock } from '../../support/fake-clock';

const T0 = Date.UTC(2026, 11, 3, 8, 0, 0);
const USER = 'o-user';
const HOLD_MS = 5300;
const FAILED_JOB_HOLD_MS = 60_000;

function config(env: Record<string, string> = {}): WeChatConfig {
  const cfg = loadConfig({ WECHAT_TOKEN: 't', WECHAT_PAGE_BYTES: '300', ...env }).wechat;
  if (!cfg) throw new Error('not configured');
  return cfg;
}

function job(msgKey: string, text: string, arrivedAtMs: number): Job {
  return {
    v: 1,
    channel: 'wechat',
    userId: USER,
    msgKey,
    conversationKey: `wechat#${USER}`,
    input: { kind: 'text', text },
    reply: { channel: 'wechat', accountId: 'gh_x' },
    arrivedAtMs,
  };
}

function setup(env: Record<string, string> = {}): { store: FakeDeliveryStore; clock: FakeClock; deps: RespondDeps } {
  const store = new FakeDeliveryStore();
  const clock = new FakeClock(T0);
  const cfg = config(env);
  const deps: RespondDeps = {
    delivery: store,
    clock,
    config: cfg,
    log: silentLog,
    holdMs: HOLD_MS,
    pageBytes: cfg.pageBytes,
    fetchKeyword: cfg.fetchKeyword,
    pollMs: 100,
    failedJobHoldMs: FAILED_JOB_HOLD_MS,
  };
  return { store, clock, deps };
}

/** A delivery of message `msgKey` arriving now (a claim, as the ingress makes it). */
function deliver(store: FakeDeliveryStore, clock: FakeClock, msgKey: string, text = 'question', arrivedAtMs = clock.nowMs()): ClaimedRequest {
  const j = job(msgKey, text, arrivedAtMs);
  const claimed = store.claim(j, clock.nowMs());
  return { job: j, record: claimed.record, created: claimed.created, receivedAtMs: clock.nowMs() };
}

function fetchRequest(store: FakeDeliveryStore, clock: FakeClock, msgKey: string): ClaimedRequest {
  const j = job(msgKey, '1', clock.nowMs());
  const claimed = store.claim(j, clock.nowMs(), { pending: false, note: { kind: 'fetch' } });
  return { job: j, record: claimed.record, created: claimed.created, receivedAtMs: clock.nowMs() };
}

describe('respondPassive', () => {
  it('answers with the whole answer when it is ready within the wait, and closes the record in the same write', async () => {
    // Arrange
    const { store, clock, deps } = setup();
    const req = deliver(store, clock, 'm1');
    clock.at(T0 + 800, () => store.answer('m1', { status: 'done', answer: 'The answer.' }));
    // Act
    const reply = await respondPassive(deps, req);
    // Assert
    expect(reply).toEqual({ kind: 'text', content: 'The answer.' });
    expect(store.stored('m1')).toMatchObject({ pending: false, deliveredChars: 11, servedText: 'The answer.' });
    expect(store.writes).toEqual(['showPage']);
  });

  it('holds a non-final delivery past WeChat\'s 5 s when nothing is ready, showing nothing', async () => {
    const { store, clock, deps } = setup();
    const req = deliver(store, clock, 'm1');
    const reply = await respondPassive(deps, req);
    expect(reply).toEqual({ kind: 'none' });
    expect(clock.nowMs()).toBe(T0 + HOLD_MS);
    expect(store.stored('m1')).toMatchObject({ pending: true, deliveredChars: 0, servedText: '' });
    expect(store.writes).toEqual([]);
  });

  it('polls at pollMs for the first 2 s of its wait, then at 4 × pollMs (fewer reads while the user waits longer)', async () => {
    // Arrange: a first delivery with nothing ready; the wait is 4.5 s (WECHAT_REPLY_WAIT_MS).
    const { store, clock, deps } = setup();
    const req = deliver(store, clock, 'm1');
    // Act
    await respondPassive(deps, req);
    // Assert: 20 polls 100 ms apart in the first 2 s, then 400 ms apart until 4.5 s: 7 more.
    expect(store.peeks).toBe(20 + 7);
  });

  it('shows an answer that finishes after 2 s at the next slower poll', async () => {
    // Arrange
    const { store, clock, deps } = setup();
    const req = deliver(store, clock, 'm1');
    clock.at(T0 + 2_050, () => store.answer('m1', { status: 'done', answer: 'Late answer.' }));
    // Act
    const reply = await respondPassive(deps, req);
    // Assert: seen by the poll at 2.4 s (2.0 s + 400 ms), not at 2.1 s.
    expect(reply).toEqual({ kind: 'text', content: 'Late answer.' });
    expect(clock.nowMs()).toBe(T0 + 2_400);
  });

  it('gives the last delivery what has streamed so far, with the "reply 1" note', async () => {
    // Arrange: third delivery; 40 characters written, more to come.
    const { store, clock, deps } = setup();
    deliver(store, clock, 'm1');
    deliver(store, clock, 'm1');
    const third = deliver(store, clock, 'm1');
    store.answer('m1', { status: 'streaming', answer: 'Partial answer that is still being typed', updatedAtMs: T0 });
    // Act
    const reply = await respondPassive(deps, third);
    // Assert
    expect(reply).toEqual({ kind: 'text', content: `Partial answer that is still being typed${writingNote('1')}` });
    expect(store.stored('m1')).toMatchObject({ pending: true, deliveredChars: 40, servedText: `Partial answer that is still being typed${writingNote('1')}` });
  });

  it('says "still thinking" on the last delivery when nothing was written', async () => {
    const { store, clock, deps } = setup();
    deliver(store, clock, 'm1');
    deliver(store, clock, 'm1');
    const third = deliver(store, clock, 'm1');
    const reply = await respondPassive(deps, third);
    expect(reply).toEqual({ kind: 'text', content: thinkingText('1') });
    expect(store.stored('m1')).toMatchObject({ pending: true, deliveredChars: 0, servedText: thinkingText('1') });
  });

  it('resends the very same reply to a redelivery, without moving the cursor', async () => {
    const { store, clock, deps } = setup();
    const long = 'word '.repeat(100).trim();
    store.claim(job('m1', 'q', T0), T0);
    store.answer('m1', { status: 'done', answer: long });
    const first = await respondPassive(deps, deliver(store, clock, 'm1'));
    const cursor = store.stored('m1').deliveredChars;
    // Act: WeChat redelivers (our reply came too late).
    const again = await respondPassive(deps, deliver(store, clock, 'm1'));
    // Assert
    expect(first.kind).toBe('text');
    expect(again).toEqual(first);
    expect(store.stored('m1').deliveredChars).toBe(cursor);
  });

  it('shows the older pending answer first and records that page on the older record', async () => {
    // Arrange: m0 (earlier question) is done but unseen; m1 is asked now.
    const { store, clock, deps } = setup();
    store.claim(job('m0', 'old', T0 - 20_000), T0 - 20_000);
    store.answer('m0', { status: 'done', answer: 'Old answer.' });
    const req = deliver(store, clock, 'm1');
    // Act
    const reply = await respondPassive(deps, req);
    const redelivered = await respondPassive(deps, deliver(store, clock, 'm1'));
    // Assert
    expect(reply).toEqual({ kind: 'text', content: 'Old answer.' });
    expect(redelivered).toEqual(reply);
    expect(store.stored('m0')).toMatchObject({ pending: false, servedFor: { m1: 'Old answer.' } });
    expect(store.stored('m1')).toMatchObject({ pending: true, servedFrom: 'm0', deliveredChars: 0 });
  });

  it('does not let a failed head with nothing to say block the next answer', async () => {
    const { store, clock, deps } = setup();
    store.claim(job('m0', 'voice', T0 - 1000), T0 - 1000);
    store.answer('m0', { status: 'failed', answer: '' });
    const req = deliver(store, clock, 'm1');
    store.answer('m1', { status: 'done', answer: 'Second answer.' });
    const reply = await respondPassive(deps, req);
    expect(reply).toEqual({ kind: 'text', content: 'Second answer.' });
    expect(store.stored('m0').pending).toBe(false);
  });

  it('shows a failed head\'s note to the user, then the next answer in order', async () => {
    const { store, clock, deps } = setup();
    store.claim(job('m0', 'voice', T0 - 1000), T0 - 1000);
    store.answer('m0', { status: 'failed', answer: 'Sorry, that voice message could not be handled.' });
    const req = deliver(store, clock, 'm1');
    store.answer('m1', { status: 'done', answer: 'Second answer.' });
    const first = await respondPassive(deps, req);
    const next = await respondFetch(deps, fetchRequest(store, clock, 'f1'));
    expect(first).toEqual({ kind: 'text', content: 'Sorry, that voice message could not be handled.' });
    expect(next).toEqual({ kind: 'text', content: 'Second answer.' });
  });

  it('passes over a head that has not progressed for FAILED_JOB_HOLD_SEC', async () => {
    // Arrange: m0 stuck in `queued` (its job keeps failing) for 61 s.
    const { store, clock, deps } = setup();
    store.claim(job('m0', 'voice', T0 - 61_000), T0 - 61_000);
    const req = deliver(store, clock, 'm1');
    store.answer('m1', { status: 'done', answer: 'Second answer.' });
    // Act
    const reply = await respondPassive(deps, req);
    // Assert: answered; the stuck record stays pending (for a replay) but out of the way.
    expect(reply).toEqual({ kind: 'text', content: 'Second answer.' });
    expect(store.stored('m0').pending).toBe(true);
  });

  it('still waits for a head that is making progress (answers stay in order)', async () => {
    const { store, clock, deps } = setup();
    store.claim(job('m0', 'slow', T0 - 10_000), T0 - 10_000);
    store.answer('m0', { status: 'streaming', answer: 'partial', updatedAtMs: T0 - 1000 });
    const req = deliver(store, clock, 'm1');
    store.answer('m1', { status: 'done', answer: 'Second answer.' });
    const reply = await respondPassive(deps, req);
    expect(reply).toEqual({ kind: 'none' });
    expect(store.stored('m1')).toMatchObject({ pending: true, deliveredChars: 0 });
  });

  it('moves on to the next answer once the waited-on head goes stale during the wait', async () => {
    const { store, clock, deps } = setup();
    store.claim(job('m0', 'slow', T0 - 58_000), T0 - 58_000);
    store.answer('m0', { status: 'streaming', answer: '', updatedAtMs: T0 - 58_000 });
    const req = deliver(store, clock, 'm1');
    store.answer('m1', { status: 'done', answer: 'Second answer.' });
    const reply = await respondPassive(deps, req);
    expect(reply).toEqual({ kind: 'text', content: 'Second answer.' });
    expect(clock.nowMs() - T0).toBeGreaterThan(2000);
  });
});

describe('respondFetch ("reply 1")', () => {
  it('gives the next page of a long answer, then the rest', async () => {
    const { store, clock, deps } = setup();
    const long = Array.from({ length: 150 }, (_, i) => `w${i}`).join(' ') + '.';
    store.claim(job('m0', 'q', T0 - 30_000), T0 - 30_000);
    store.answer('m0', { status: 'done', answer: long });
    const pages: string[] = [];
    for (let i = 0; i < 5 && store.stored('m0').pending; i++) {
      const r = await respondFetch(deps, fetchRequest(store, clock, `f${i}`));
      if (r.kind === 'text') pages.push(r.content);
    }
    expect(pages.length).toBeGreaterThan(1);
    expect(pages[0]?.endsWith(moreNote('1'))).toBe(true);
    expect(pages.map((p) => p.replace(moreNote('1'), '')).join('')).toBe(long);
  });

  it('says "still thinking" when the pending answer has nothing yet, and repeats it on a redelivery', async () => {
    const { store, clock, deps } = setup();
    store.claim(job('m0', 'q', T0 - 1000), T0 - 1000);
    const first = await respondFetch(deps, fetchRequest(store, clock, 'f1'));
    const again = await respondFetch(deps, fetchRequest(store, clock, 'f1'));
    expect(first).toEqual({ kind: 'text', content: thinkingText('1') });
    expect(again).toEqual(first);
  });
});

describe('respondCustomerService', () => {
  const CS = { WECHAT_REPLY_MODE: 'customer_service', WECHAT_APP_ID: 'wx1', WECHAT_APP_SECRET: 's', WECHAT_CS_PASSIVE_WAIT_MS: '4000' };

  it('answers passively when the whole answer is ready within the customer-service wait', async () => {
    const { store, clock, deps } = setup(CS);
    const req = deliver(store, clock, 'm1');
    clock.at(T0 + 3900, () => store.answer('m1', { status: 'done', answer: 'Quick.' }));
    const reply = await respondCustomerService(deps, req);
    expect(reply).toEqual({ kind: 'text', content: 'Quick.' });
    expect(store.stored('m1')).toMatchObject({ deliveryOwner: 'passive', pending: false, servedText: 'Quick.' });
  });

  it('leaves a slow answer to the push after the wait, claiming nothing', async () => {
    const { store, clock, deps } = setup(CS);
    const req = deliver(store, clock, 'm1');
    clock.at(T0 + 4100, () => store.answer('m1', { status: 'done', answer: 'Slow.' }));
    const reply = await respondCustomerService(deps, req);
    expect(reply).toEqual({ kind: 'none' });
    expect(clock.nowMs()).toBe(T0 + 4000);
    expect(store.stored('m1').deliveryOwner).toBeUndefined();
  });

  it('puts an answer the push could not deliver first, saying why once', async () => {
    const { store, clock, deps } = setup(CS);
    store.claim(job('m0', 'q', T0 - 60_000), T0 - 60_000);
    store.answer('m0', { status: 'done', answer: 'x'.repeat(500), note: { kind: 'push_failed', code: '45047', told: false } });
    await store.claimDelivery({ channel: 'wechat', userId: USER, msgKey: 'm0' }, 'push', T0);
    const reply = await respondCustomerService(deps, deliver(store, clock, 'm1'));
    expect(reply.kind === 'text' && reply.content.startsWith(PUSH_FAILED_LEAD)).toBe(true);
    expect(store.stored('m0').note).toEqual({ kind: 'push_failed', code: '45047', told: true });
  });
});
