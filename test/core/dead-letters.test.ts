import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { SQSRecord } from 'aws-lambda';
import { join } from 'node:path';
import { loadConfig } from '../../lib/config';
import type { ChannelAdapter } from '../../lib/core/channel';
import { DeliveryError } from '../../lib/core/channel';
import {
  FAILED_NOTE_EN,
  FAILED_NOTE_ZH,
  MAX_RECEIVE_COUNT,
  failedNote,
  maskUserId,
  parkJob,
  replayDeduplicationId,
  secondsToHoldEnd,
  shouldPark,
  StillStreamingError,
  userLanguage,
  type ParkDeps,
} from '../../lib/core/dead-letters';
import { silentLog, type Job } from '../../lib/types';
import { createDeadLetterHandler } from '../../lib/core/worker';
import { createTurnDeps } from '../../functions/compose';
import { deduplicationId } from '../../lib/queue/jobs';
import { createDocumentClient } from '../../lib/store/client';
import { WeChatDelivery } from '../../lib/channels/wechat/delivery';
import { MessageStore, type MessageRecord } from '../../lib/store/messages';
import { startTestStack, type TestStack } from '../../local/stack';

let seq = 0;
function job(overrides: Partial<Job> = {}): Job {
  seq += 1;
  return {
    v: 1,
    channel: 'whatsapp',
    userId: `1555020${String(seq).padStart(4, '0')}`,
    msgKey: `wamid.dl${seq}`,
    conversationKey: `whatsapp#1555020${seq}`,
    input: { kind: 'text', text: 'hello' },
    reply: { channel: 'whatsapp', phoneNumberId: '106540352242922', to: '15550200000', messageId: `wamid.dl${seq}` },
    arrivedAtMs: 1_000_000,
    ...overrides,
  };
}

describe('the user is told in their language', () => {
  it.each<[string, Partial<Job>, 'zh' | 'en']>([
    ['Chinese text', { input: { kind: 'text', text: '语音识别失败了吗？' } }, 'zh'],
    ['English text', { input: { kind: 'text', text: 'What went wrong?' } }, 'en'],
    ['a caption with Han characters', { input: { kind: 'image', mediaRef: 'm', caption: '这是什么', mimeType: 'image/jpeg' } }, 'zh'],
    ['a WeChat voice message (no text)', { channel: 'wechat', input: { kind: 'audio', mediaRef: 'm', mimeType: 'audio/amr' } }, 'zh'],
    ['a WhatsApp voice note (no text)', { input: { kind: 'audio', mediaRef: 'm', mimeType: 'audio/ogg' } }, 'en'],
  ])('%s', (_name, overrides, language) => {
    const j = job(overrides);
    expect(userLanguage(j)).toBe(language);
    expect(failedNote(j)).toBe(language === 'zh' ? FAILED_NOTE_ZH : FAILED_NOTE_EN);
  });
});

describe('when a failing job is given up', () => {
  const holdMs = 60_000;

  it('retries within the hold, parks after it or on the last receive', () => {
    const j = job({ arrivedAtMs: 1_000_000 });
    expect(shouldPark(j, 1, 1_000_000 + holdMs - 1, holdMs)).toBe(false);
    expect(shouldPark(j, 2, 1_000_000 + holdMs, holdMs)).toBe(true);
    expect(shouldPark(j, MAX_RECEIVE_COUNT, 1_000_001, holdMs)).toBe(true);
  });

  it('starts the hold again for a replayed job', () => {
    const j = job({ arrivedAtMs: 1_000_000, replayedAtMs: 9_000_000 });
    expect(shouldPark(j, 1, 9_000_000 + holdMs - 1, holdMs)).toBe(false);
    expect(secondsToHoldEnd(j, 9_000_000, holdMs)).toBe(60);
  });

  it('never schedules a retry past the end of the hold, nor sooner than 1 s', () => {
    const j = job({ arrivedAtMs: 1_000_000 });
    expect(secondsToHoldEnd(j, 1_000_000 + 45_500, holdMs)).toBe(15);
    expect(secondsToHoldEnd(j, 1_000_000 + 90_000, holdMs)).toBe(1);
  });

  it('gives up on the receive SQS would otherwise move to the DLQ (queue.json maxReceiveCount)', () => {
    const queue: unknown = JSON.parse(readFileSync(join(__dirname, '../../lib/infra/queue.json'), 'utf8'));
    expect(JSON.stringify(queue)).toContain(`"maxReceiveCount":${MAX_RECEIVE_COUNT}`);
  });
});

describe('listing and replay ids', () => {
  it('masks user ids down to their last four characters', () => {
    expect(maskUserId('4915112345678')).toBe('********5678');
    expect(maskUserId('oUser1234567890abcdefghijklmn')).not.toContain('oUser');
    expect(maskUserId('123')).toBe('***');
  });

  it('gives every replay its own deduplication id, unlike the original send', () => {
    const j = job();
    const first = replayDeduplicationId(j, 1);
    expect(first).toMatch(/^[0-9a-f]{64}$/);
    expect(replayDeduplicationId(j, 2)).not.toBe(first);
    expect(first).not.toBe(deduplicationId(j));
  });
});

describe('parkJob on the embedded DynamoDB', () => {
  let stack: TestStack;
  let messages: MessageStore;
  let wechat: WeChatDelivery;
  const delivered: MessageRecord[] = [];
  let failDelivery: DeliveryError | undefined;
  const adapter: ChannelAdapter = {
    deliver: (record) => {
      delivered.push(record);
      return failDelivery ? Promise.reject(failDelivery) : Promise.resolve();
    },
  };
  let nowMs = 5_000_000;
  let deps: ParkDeps;

  beforeAll(async () => {
    stack = await startTestStack();
    const cfg = loadConfig(stack.env);
    const db = createDocumentClient(cfg.aws);
    messages = new MessageStore(db, cfg.aws.tableName);
    wechat = new WeChatDelivery(messages, db, cfg.aws.tableName);
    deps = {
      messages,
      channels: { whatsapp: adapter, wechat: adapter },
      clock: { nowMs: () => nowMs, sleep: () => Promise.resolve() },
      log: silentLog,
      streamLeaseMs: 1_000,
    };
  });

  afterAll(async () => {
    await stack.stop();
  });

  beforeEach(() => {
    delivered.length = 0;
    failDelivery = undefined;
    nowMs += 100_000;
  });

  it('marks the record failed with the reason, puts it in the dead index and delivers the note', async () => {
    // Arrange
    const j = job({ arrivedAtMs: nowMs - 70_000 });
    await messages.claim(j, nowMs - 70_000);
    // Act
    const outcome = await parkJob(deps, j, 'DeliveryError: media/get failed');
    // Assert
    expect(outcome).toBe('parked');
    const rec = await messages.get(j, nowMs);
    expect(rec).toMatchObject({ status: 'failed', answer: FAILED_NOTE_EN, failure: 'DeliveryError: media/get failed', parked: true });
    expect(delivered.map((r) => r.answer)).toEqual([FAILED_NOTE_EN]);
    expect((await messages.listParked(nowMs)).map((r) => r.msgKey)).toContain(j.msgKey);
  });

  it('is idempotent: a second park changes nothing and tells nobody twice', async () => {
    const j = job();
    await messages.claim(j, nowMs);
    await parkJob(deps, j, 'first');
    const again = await parkJob(deps, j, 'second');
    expect(again).toBe('already-parked');
    expect(delivered).toHaveLength(1);
    expect((await messages.get(j, nowMs))?.failure).toBe('first');
  });

  it('leaves an answered and delivered record alone', async () => {
    const j = job();
    await messages.claim(j, nowMs);
    await messages.finish(j, 'the answer', 'done', nowMs);
    await messages.recordParts(j, 1, true, nowMs);
    expect(await parkJob(deps, j, 'late dead letter')).toBe('answered');
    expect(await messages.get(j, nowMs)).toMatchObject({ status: 'done', answer: 'the answer', parked: false });
    expect(delivered).toEqual([]);
  });

  it('continues WeChat pages already shown with the note, so what was seen stays a prefix', async () => {
    // Arrange: two pages' worth streamed, the first page shown, then the worker failed.
    const j = job({ channel: 'wechat', input: { kind: 'text', text: '讲个长故事' }, reply: { channel: 'wechat', accountId: 'gh_x' } });
    await messages.claim(j, nowMs);
    expect(await messages.startAnswer(j, nowMs, 1_000)).toBe(true);
    await messages.saveProgress(j, '第一页。第二页', nowMs);
    const streamed = await messages.get(j, nowMs);
    if (!streamed) throw new Error('record missing');
    expect(await wechat.showPage({ answer: streamed, fromChars: 0, toChars: 4, complete: false, request: j, reply: '第一页。' }, nowMs)).toBe(true);
    nowMs += 5_000; // the lease (1 s) has run out
    // Act
    await parkJob(deps, j, 'Error: boom');
    // Assert
    const rec = await messages.get(j, nowMs);
    expect(rec?.answer).toBe(`第一页。第二页\n\n${FAILED_NOTE_ZH}`);
    expect(rec?.deliveredChars).toBe(4);
    expect(rec?.pending).toBe(true);
    // The last page of a failed record completes it like a done one.
    if (!rec) throw new Error('record missing');
    // The user's next request (a "1") takes the last page.
    const fetch = { ...j, msgKey: 'fetch-1' };
    await messages.claim(fetch, nowMs);
    expect(await wechat.showPage({ answer: rec, fromChars: 4, toChars: rec.answer.length, complete: true, request: fetch, reply: rec.answer.slice(4) }, nowMs)).toBe(true);
    expect((await messages.get(j, nowMs))?.pending).toBe(false);
  });

  it('keeps an answer whose first parts were sent unchanged (the parts are cut from it)', async () => {
    const j = job();
    await messages.claim(j, nowMs);
    await messages.finish(j, 'part one. part two.', 'done', nowMs);
    await messages.recordParts(j, 1, false, nowMs);
    await parkJob(deps, j, 'DeliveryError: 500');
    expect(await messages.get(j, nowMs)).toMatchObject({ status: 'failed', answer: 'part one. part two.', deliveredParts: 1 });
  });

  it('refuses to park an answer a live worker is streaming', async () => {
    const j = job();
    await messages.claim(j, nowMs);
    expect(await messages.startAnswer(j, nowMs, 1_000)).toBe(true);
    await expect(parkJob(deps, j, 'x')).rejects.toThrow(StillStreamingError);
    expect((await messages.get(j, nowMs))?.status).toBe('streaming');
  });

  it('takes an outbound record out of the pending index when even the note cannot be sent', async () => {
    const j = job();
    await messages.claim(j, nowMs);
    failDelivery = new DeliveryError('Graph 500', '1', true);
    expect(await parkJob(deps, j, 'x')).toBe('parked');
    expect(await messages.get(j, nowMs)).toMatchObject({ status: 'failed', pending: false, parked: true });
  });

  it('claims a record that expired before parking a job (a late dead letter)', async () => {
    const j = job();
    expect(await parkJob(deps, j, 'dead-letter queue')).toBe('parked');
    expect(await messages.get(j, nowMs)).toMatchObject({ status: 'failed', parked: true });
  });
});

describe('the dead-letter function', () => {
  let stack: TestStack;
  let messages: MessageStore;
  const logged: { message: string; extra: Record<string, unknown> | undefined }[] = [];
  const log = {
    debug: () => undefined,
    info: () => undefined,
    warn: () => undefined,
    error: (message: string, extra?: Record<string, unknown>) => logged.push({ message, extra }),
  };

  function sqsRecord(body: string, messageId: string): SQSRecord {
    return {
      messageId,
      receiptHandle: `rh-${messageId}`,
      body,
      attributes: { ApproximateReceiveCount: '1', SentTimestamp: '0', SenderId: 'x', ApproximateFirstReceiveTimestamp: '0', MessageGroupId: 'g' },
      messageAttributes: {},
      md5OfBody: '',
      eventSource: 'aws:sqs',
      eventSourceARN: 'arn:aws:sqs:us-east-1:000000000000:dlq.fifo',
      awsRegion: 'us-east-1',
    };
  }

  beforeAll(async () => {
    stack = await startTestStack();
    messages = new MessageStore(createDocumentClient(loadConfig(stack.env).aws), stack.tableName);
  });

  afterAll(async () => {
    await stack.stop();
  });

  it('parks a job SQS gave up on, logs and drops a body that is not a job, and retries what it cannot write', async () => {
    // Arrange
    const good = job({ input: { kind: 'text', text: 'crashed every time' } });
    const handler = createDeadLetterHandler(createTurnDeps(loadConfig(stack.env), log));
    const broken = createDeadLetterHandler(createTurnDeps(loadConfig({ ...stack.env, DYNAMODB_ENDPOINT: 'http://127.0.0.1:9' }), log));
    const other = job();
    // Act
    const res = await handler({ Records: [sqsRecord(JSON.stringify(good), 'm1'), sqsRecord('not a job', 'm2')] });
    const failed = await broken({ Records: [sqsRecord(JSON.stringify(other), 'm3')] });
    // Assert
    expect(res.batchItemFailures).toEqual([]);
    const rec = await messages.get(good, Date.now());
    expect(rec).toMatchObject({ status: 'failed', parked: true, answer: FAILED_NOTE_EN });
    expect(rec?.failure).toMatch(/dead-letter queue/);
    const dropped = logged.find((l) => l.message.includes('not a job'))?.extra;
    expect(dropped).toMatchObject({ messageId: 'm2', bytes: 9, sha256: createHash('sha256').update('not a job').digest('hex') });
    expect(JSON.stringify(dropped)).not.toContain('not a job');
    expect(failed.batchItemFailures).toEqual([{ itemIdentifier: 'm3' }]);
  }, 30_000);
});
