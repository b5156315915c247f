/**
 * The WhatsApp adapter against the fake Graph API over HTTP, with an in-memory record
 * store and user state and a virtual clock (pacing and backoff are asserted exactly
 * without waiting for them).
 */
import { createWhatsAppAdapter, WhatsAppNote, type WhatsAppAdapterDeps } from '../../../lib/channels/whatsapp/adapter';
import { WINDOW_CLOSED_AT_FACT } from '../../../lib/channels/whatsapp/state';
import { TOO_LARGE_CODE } from '../../../lib/channels/whatsapp/graph';
import type { WhatsAppConfig } from '../../../lib/config';
import { DeliveryError, type ChannelAdapter } from '../../../lib/core/channel';
import type { Clock, Job, Log } from '../../../lib/types';
import type { MessageKey, MessageRecord } from '../../../lib/store/messages';
import { NO_NOTE, type RecordNote } from '../../../lib/store/notes';
import type { UserFacts } from '../../../lib/store/user-state';
import { startFakeGraph, type FakeGraph } from '../../../local/fakes/fake-graph';
import { MAX_AUDIO_BYTES, MAX_IMAGE_BYTES } from '../../../lib/channels/media-limits';

const PNID = '106540352242922';
const PAIR_MS = 6_000;

/** Virtual time: `sleep` advances it at once and is recorded. */
class VirtualClock implements Clock {
  now = 1_750_000_000_000;
  readonly sleeps: number[] = [];
  nowMs(): number {
    return this.now;
  }
  async sleep(ms: number): Promise<void> {
    this.sleeps.push(ms);
    this.now += Math.max(0, ms);
  }
}

class RecordingLog implements Log {
  readonly lines: { level: string; message: string; extra: Record<string, unknown> | undefined }[] = [];
  debug(message: string, extra?: Record<string, unknown>): void {
    this.lines.push({ level: 'debug', message, extra });
  }
  info(message: string, extra?: Record<string, unknown>): void {
    this.lines.push({ level: 'info', message, extra });
  }
  warn(message: string, extra?: Record<string, unknown>): void {
    this.lines.push({ level: 'warn', message, extra });
  }
  error(message: string, extra?: Record<string, unknown>): void {
    this.lines.push({ level: 'error', message, extra });
  }
  get errors(): string[] {
    return this.lines.filter((l) => l.level === 'error').map((l) => l.message);
  }
}

/** In-memory stand-ins for the two stores (same method shapes). */
class Stores {
  readonly progress: { msgKey: string; parts: number; complete: boolean; note: RecordNote }[] = [];
  readonly facts = new Map<string, Record<string, string>>();
  readonly messages = {
    recordParts: async (k: MessageKey, parts: number, complete: boolean, _nowMs: number, note: RecordNote = NO_NOTE): Promise<void> => {
      this.progress.push({ msgKey: k.msgKey, parts, complete, note });
    },
  };
  readonly users = {
    get: async (_channel: string, userId: string): Promise<UserFacts> => ({ ...(this.facts.get(userId) ?? {}) }),
    set: async (_channel: string, userId: string, changes: Readonly<Record<string, string | undefined>>): Promise<void> => {
      const current = { ...(this.facts.get(userId) ?? {}) };
      for (const [name, value] of Object.entries(changes)) {
        if (value === undefined) Reflect.deleteProperty(current, name);
        else current[name] = value;
      }
      this.facts.set(userId, current);
    },
  };
  get last(): { parts: number; complete: boolean; note: RecordNote } | undefined {
    return this.progress.at(-1);
  }
}

let seq = 0;
function jobFor(to: string, arrivedAtMs: number): Job {
  seq++;
  const msgKey = `wamid.test-${seq}`;
  return {
    v: 1,
    channel: 'whatsapp',
    userId: to,
    msgKey,
    conversationKey: `whatsapp#${to}`,
    input: { kind: 'text', text: 'q' },
    reply: { channel: 'whatsapp', phoneNumberId: PNID, to, messageId: msgKey },
    arrivedAtMs,
  };
}

function recordFor(job: Job, answer: string, deliveredParts = 0): MessageRecord {
  return {
    channel: 'whatsapp',
    userId: job.userId,
    msgKey: job.msgKey,
    conversationKey: job.conversationKey,
    arrivedAtMs: job.arrivedAtMs,
    status: 'done',
    answer,
    deliveredChars: 0,
    deliveredParts,
    deliveryOwner: undefined,
    deliveries: 1,
    enqueued: true,
    pending: true,
    job,
    note: NO_NOTE,
    servedFrom: '',
    servedFor: {},
    servedText: '',
    failure: '',
    parked: false,
    updatedAtMs: job.arrivedAtMs,
  };
}

/** An answer that splits into exactly three parts on paragraph boundaries. */
function threePartAnswer(): { answer: string; parts: string[] } {
  const parts = ['A', 'B', 'C'].map((c) => `Part ${c}. ${'lorem ipsum dolor '.repeat(200).trim()}`);
  return { answer: parts.join('\n\n'), parts };
}

describe('WhatsApp adapter', () => {
  let graph: FakeGraph;
  let clock: VirtualClock;
  let log: RecordingLog;
  let stores: Stores;
  let cfg: WhatsAppConfig;

  beforeAll(async () => {
    graph = await startFakeGraph({ accessToken: 'tok' });
  });
  afterAll(async () => {
    await graph.close();
  });
  beforeEach(() => {
    graph.reset();
    graph.accessToken = 'tok';
    clock = new VirtualClock();
    log = new RecordingLog();
    stores = new Stores();
    cfg = {
      verifyToken: 'v',
      appSecret: 's',
      accessToken: 'tok',
      phoneNumberId: PNID,
      graphBase: graph.baseUrl,
      graphVersion: 'v23.0',
      reengageTemplate: '',
      reengageTemplateLanguage: 'en_US',
      pairIntervalMs: PAIR_MS,
    };
  });

  function adapter(overrides: Partial<WhatsAppConfig> = {}): ChannelAdapter {
    const deps: WhatsAppAdapterDeps = { messages: stores.messages, users: stores.users, clock, log, fetch };
    return createWhatsAppAdapter({ ...cfg, ...overrides }, deps);
  }

  it('sends a short answer as one text without pacing', async () => {
    // Arrange
    const job = jobFor('15550001', clock.now);
    // Act
    await adapter().deliver(recordFor(job, 'Hello there'));
    // Assert
    expect(graph.textsTo('15550001')).toEqual(['Hello there']);
    expect(graph.sent[0]?.body).toMatchObject({ messaging_product: 'whatsapp', recipient_type: 'individual', type: 'text', text: { preview_url: false } });
    expect(graph.requests[0]?.headers.authorization).toBe('Bearer tok');
    expect(clock.sleeps).toEqual([]);
    expect(stores.progress).toEqual([{ msgKey: job.msgKey, parts: 1, complete: true, note: NO_NOTE }]);
  });

  it('splits a long answer into parts of at most 4,096 characters, paced by the pair interval', async () => {
    // Arrange
    const job = jobFor('15550002', clock.now);
    const { answer, parts } = threePartAnswer();
    // Act
    await adapter().deliver(recordFor(job, answer));
    // Assert
    const texts = graph.textsTo('15550002');
    expect(texts).toEqual(parts);
    for (const t of texts) expect(t.length).toBeLessThanOrEqual(4096);
    expect(clock.sleeps).toEqual([PAIR_MS, PAIR_MS]);
    expect(stores.progress.map((p) => [p.parts, p.complete])).toEqual([
      [1, false],
      [2, false],
      [3, true],
    ]);
  });

  it('spaces the first part of an answer from the previous answer to the same user', async () => {
    const a = adapter();
    await a.deliver(recordFor(jobFor('15550003', clock.now), 'first'));
    clock.now += 1_000;
    await a.deliver(recordFor(jobFor('15550003', clock.now), 'second'));
    expect(clock.sleeps).toEqual([PAIR_MS - 1_000]);
  });

  it('resumes after the parts already delivered', async () => {
    const job = jobFor('15550004', clock.now);
    const { answer, parts } = threePartAnswer();
    await adapter().deliver(recordFor(job, answer, 1));
    expect(graph.textsTo('15550004')).toEqual(parts.slice(1));
  });

  it('backs off on 131056 and retries the same part in place', async () => {
    // Arrange: part 2 hits the pair rate limit once.
    const user = '15550005';
    const { answer, parts } = threePartAnswer();
    graph.failWhen((m, ctx) => m.to === user && ctx.acceptedBefore === 1, { code: 131056 }, 1);
    // Act
    await adapter().deliver(recordFor(jobFor(user, clock.now), answer));
    // Assert: every part once, in order; pacing, one backoff (base = pair interval, which
    // also covers the pacing of the retry), pacing.
    expect(graph.textsTo(user)).toEqual(parts);
    expect(graph.attempts.filter((m) => m.to === user)).toHaveLength(4);
    expect(clock.sleeps).toEqual([PAIR_MS, PAIR_MS, PAIR_MS]);
    expect(log.lines.filter((l) => l.message.includes('retried'))).toHaveLength(1);
  });

  it('hands a persistent rate limit back to SQS and the redelivery resumes at the failed part', async () => {
    // Arrange: part 2 of 3 fails with 131056 on every try of the first invocation.
    const user = '15550006';
    const job = jobFor(user, clock.now);
    const { answer, parts } = threePartAnswer();
    graph.failWhen((m, ctx) => m.to === user && ctx.acceptedBefore === 1, { code: 131056 }, 3);
    const a = adapter();
    // Act 1
    const failure = await a.deliver(recordFor(job, answer)).then(
      () => undefined,
      (err: unknown) => err,
    );
    // Assert 1: retryable, resume point stored after part 1, exponential backoff.
    expect(failure).toBeInstanceOf(DeliveryError);
    expect(failure).toMatchObject({ code: '131056', retryable: true });
    expect(stores.last).toEqual({ msgKey: job.msgKey, parts: 1, complete: false, note: WhatsAppNote.stopped('rate_limited', 131056) });
    expect(clock.sleeps.filter((ms) => ms > PAIR_MS)).toEqual([2 * PAIR_MS]);
    // Act 2: SQS redelivers; the record says one part is out.
    clock.now += 30_000;
    await a.deliver(recordFor(job, answer, stores.last?.parts ?? 0));
    // Assert 2: nothing resent.
    expect(graph.textsTo(user)).toEqual(parts);
    expect(stores.last).toMatchObject({ parts: 3, complete: true });
  });

  it('on 131047 sends the re-engagement template, records the closed window and does not retry', async () => {
    // Arrange
    const user = '15550007';
    const job = jobFor(user, clock.now);
    graph.failWhen((m) => m.to === user && m.type === 'text', { code: 131047 });
    // Act
    await adapter({ reengageTemplate: 'we_are_back', reengageTemplateLanguage: 'de' }).deliver(recordFor(job, 'An answer'));
    // Assert
    const attempts = graph.attempts.filter((m) => m.to === user);
    expect(attempts.map((m) => [m.type, m.accepted])).toEqual([
      ['text', false],
      ['template', true],
    ]);
    expect(attempts[1]?.template).toEqual({ name: 'we_are_back', language: 'de' });
    expect(stores.last).toEqual({ msgKey: job.msgKey, parts: 0, complete: true, note: WhatsAppNote.TEMPLATE_SENT });
    expect(stores.facts.get(user)?.[WINDOW_CLOSED_AT_FACT]).toBe(String(clock.now));
  });

  it('on 131047 without a template closes the record with a note', async () => {
    const user = '15550008';
    graph.failWhen((m) => m.to === user, { code: 131047 });
    await adapter().deliver(recordFor(jobFor(user, clock.now), 'An answer'));
    expect(graph.attempts.filter((m) => m.to === user)).toHaveLength(1);
    expect(stores.last).toMatchObject({ parts: 0, complete: true, note: WhatsAppNote.NO_TEMPLATE });
  });

  it('goes straight to the template when the window is known to be closed', async () => {
    // Arrange: a failed-status webhook recorded the closure after this message arrived.
    const user = '15550009';
    const job = jobFor(user, clock.now - 60_000);
    stores.facts.set(user, { [WINDOW_CLOSED_AT_FACT]: String(clock.now - 1_000) });
    // Act
    await adapter({ reengageTemplate: 'we_are_back' }).deliver(recordFor(job, 'An answer'));
    // Assert: no free-form attempt at all.
    expect(graph.attempts.filter((m) => m.to === user).map((m) => m.type)).toEqual(['template']);
    expect(stores.last).toMatchObject({ complete: true, note: WhatsAppNote.TEMPLATE_SENT });
  });

  it('treats a message older than 24 h as outside the window', async () => {
    const user = '15550010';
    await adapter().deliver(recordFor(jobFor(user, clock.now - 25 * 3600_000), 'late answer'));
    expect(graph.attempts.filter((m) => m.to === user)).toEqual([]);
    expect(stores.last).toMatchObject({ complete: true, note: WhatsAppNote.NO_TEMPLATE });
  });

  it('ignores a closure reported before the user wrote again, and forgets it once text goes through', async () => {
    const user = '15550011';
    stores.facts.set(user, { [WINDOW_CLOSED_AT_FACT]: String(clock.now - 60_000) });
    await adapter().deliver(recordFor(jobFor(user, clock.now), 'fresh answer'));
    expect(graph.textsTo(user)).toEqual(['fresh answer']);
    expect(stores.facts.get(user)).toEqual({});
  });

  it('logs a token error (190) loudly and fails without retrying', async () => {
    // Arrange
    const user = '15550012';
    const job = jobFor(user, clock.now);
    graph.accessToken = 'rotated';
    // Act
    const failure = await adapter().deliver(recordFor(job, 'An answer')).then(
      () => undefined,
      (err: unknown) => err,
    );
    // Assert
    expect(failure).toMatchObject({ name: 'DeliveryError', code: '190', retryable: false });
    expect(graph.attempts.filter((m) => m.to === user)).toHaveLength(0); // rejected before parsing
    expect(graph.requests).toHaveLength(1);
    expect(log.errors.join('\n')).toMatch(/ACCESS TOKEN/);
    expect(stores.last).toMatchObject({ parts: 0, complete: false, note: WhatsAppNote.stopped('token_error', 190) });
  });

  it('closes the record of an undeliverable answer (131026) without retrying', async () => {
    const user = '15550013';
    graph.failWhen((m) => m.to === user, { code: 131026 });
    await adapter().deliver(recordFor(jobFor(user, clock.now), 'An answer'));
    expect(graph.attempts.filter((m) => m.to === user)).toHaveLength(1);
    expect(stores.last).toMatchObject({ complete: true, note: WhatsAppNote.stopped('undeliverable', 131026) });
  });

  it('fails an unknown 4xx error non-retryably with a note, for the DLQ', async () => {
    const user = '15550014';
    graph.failWhen((m) => m.to === user, { code: 131009, httpStatus: 400 });
    const failure = await adapter()
      .deliver(recordFor(jobFor(user, clock.now), 'An answer'))
      .then(
        () => undefined,
        (err: unknown) => err,
      );
    expect(failure).toMatchObject({ code: '131009', retryable: false });
    expect(stores.last).toMatchObject({ complete: false, note: WhatsAppNote.stopped('failed', 131009) });
  });

  it('completes an already fully delivered record without sending', async () => {
    const job = jobFor('15550015', clock.now);
    await adapter().deliver(recordFor(job, 'done', 1));
    expect(graph.attempts).toEqual([]);
    expect(stores.last).toMatchObject({ parts: 1, complete: true });
  });

  it('marks the message read with the typing indicator when the job starts, and never throws', async () => {
    const job = jobFor('15550016', clock.now);
    const a = adapter();
    await a.onJobStart?.(job);
    expect(graph.reads.map((r) => [r.phoneNumberId, r.messageId, r.typing])).toEqual([[PNID, job.msgKey, 'text']]);
    graph.accessToken = 'rotated';
    await expect(a.onJobStart?.(job)).resolves.toBeUndefined();
    expect(log.errors).toHaveLength(1);
  });

  it('downloads media in two steps with the bearer token', async () => {
    // Arrange
    const bytes = Buffer.from('OggS\u0000fake-opus-bytes');
    graph.addMedia('media-1', bytes, 'audio/ogg; codecs=opus');
    // Act
    const media = await adapter().fetchMedia?.(jobFor('15550017', clock.now), 'media-1', 'audio/ogg; codecs=opus');
    // Assert
    expect(graph.mediaInfoCalls).toEqual(['media-1']);
    expect(graph.downloads).toEqual(['media-1']);
    expect(graph.requests.map((r) => r.headers.authorization)).toEqual(['Bearer tok', 'Bearer tok']);
    expect(media?.filename).toBe('voice.ogg');
    expect(media?.mimeType).toBe('audio/ogg');
    expect(Buffer.from(media?.bytes ?? new Uint8Array()).equals(bytes)).toBe(true);
  });

  it('reads media served without Content-Length into the same bytes', async () => {
    // Arrange
    const bytes = Buffer.alloc(300_000, 9);
    graph.addMedia('media-chunked', bytes, 'image/jpeg', { chunked: true });
    // Act
    const media = await adapter().fetchMedia?.(jobFor('15550019', clock.now), 'media-chunked', 'image/jpeg');
    // Assert
    expect(Buffer.from(media?.bytes ?? new Uint8Array()).equals(bytes)).toBe(true);
  });

  it('refuses media that runs past the size limit while it streams (no Content-Length) as a permanent failure', async () => {
    // Arrange: 1 MB served in chunks, 200 KB allowed
    graph.addMedia('media-big', Buffer.alloc(1_000_000), 'audio/ogg', { chunked: true });
    const limited = createWhatsAppAdapter(cfg, { messages: stores.messages, users: stores.users, clock, log, fetch }, { maxMediaBytes: 200_000 });
    // Act
    const failure = await limited.fetchMedia?.(jobFor('15550020', clock.now), 'media-big', 'audio/ogg').then(
      () => undefined,
      (err: unknown) => err,
    );
    // Assert: a clear reason, and no retry (the turn answers the user instead)
    expect(failure).toMatchObject({ name: 'DeliveryError', retryable: false, code: String(TOO_LARGE_CODE) });
    expect(failure instanceof Error && failure.message).toMatch(/over the 200000-byte limit/);
  });

  it('caps media at what Meta sends: images at 5 MiB, voice notes at 16 MiB', async () => {
    // Arrange: 6 MiB of each kind.
    const sixMiB = Buffer.alloc(6 * 1024 * 1024, 7);
    graph.addMedia('media-image-6m', sixMiB, 'image/jpeg');
    graph.addMedia('media-audio-6m', sixMiB, 'audio/ogg');
    const image: Job = { ...jobFor('15550021', clock.now), input: { kind: 'image', mediaRef: 'media-image-6m', mimeType: 'image/jpeg', caption: '' } };
    const audio: Job = { ...jobFor('15550022', clock.now), input: { kind: 'audio', mediaRef: 'media-audio-6m', mimeType: 'audio/ogg' } };
    // Act
    const imageFailure = await adapter().fetchMedia?.(image, 'media-image-6m', 'image/jpeg').then(
      () => undefined,
      (err: unknown) => err,
    );
    const voice = await adapter().fetchMedia?.(audio, 'media-audio-6m', 'audio/ogg');
    // Assert
    expect(imageFailure).toMatchObject({ name: 'DeliveryError', retryable: false, code: String(TOO_LARGE_CODE) });
    expect(imageFailure instanceof Error && imageFailure.message).toMatch(new RegExp(`over the ${MAX_IMAGE_BYTES}-byte limit`));
    expect(voice?.bytes.byteLength).toBe(sixMiB.length);
    expect(MAX_AUDIO_BYTES).toBe(16 * 1024 * 1024);
  });

  it('reports missing media as a non-retryable failure', async () => {
    const failure = await adapter()
      .fetchMedia?.(jobFor('15550018', clock.now), 'nope', 'image/jpeg')
      .then(
        () => undefined,
        (err: unknown) => err,
      );
    expect(failure).toMatchObject({ name: 'DeliveryError', retryable: false });
  });
});
