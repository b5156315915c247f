/**
 * Fault injection in the worker: DynamoDB failing or frozen while an answer streams, SQS
 * refusing the retry schedule, vendor sends failing then recovering or failing for good,
 * an LLM answering 5xx, and a worker that crashes on every receive (the job reaches the
 * DLQ). Each test counts what the fake vendors received: 0 answers lost (a parked job is
 * replayed and answered), 0 answers sent twice.
 */
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { createTwilioMessagingHandler } from '../../functions/twilio-messaging';
import { createWhatsAppHandler } from '../../functions/whatsapp';
import { sampleTextWebhook, sampleWamid } from '../../local/samples/whatsapp';
import { FAILED_NOTE_EN, replayParked } from '../../lib/core/dead-letters';
import { silentLog } from '../../lib/types';
import { startFakeGraph, type FakeGraph } from '../../local/fakes/fake-graph';
import { openAiSteps, startFakeOpenAi, type FakeOpenAi } from '../fakes/fake-openai';
import { startFakeTwilio, type FakeTwilio } from '../../local/fakes/fake-twilio';
import { FIXTURE_PHONE_NUMBER_ID as PNID } from '../channels/whatsapp/support';
import { MetaClient } from '../../local/fakes/meta-client';
import type { FaultProxy } from '../../local/fault-proxy';
import { startGateway, type Gateway } from '../../local/gateway';
import { until } from '../support/until';

const APP_SECRET = 'wfaults_app_secret';
const ACCESS_TOKEN = 'EAAG-wfaults';
const ACCOUNT_SID = `AC${'fb'.repeat(16)}`;
const AUTH_TOKEN = 'twilio-wfaults-token';
const PUBLIC_BASE_URL = 'https://wfaults.example.com';
const OUR_NUMBER = '+15005550006';

describe('worker faults: nothing lost, nothing twice', () => {
  let llm: FakeOpenAi;
  let graph: FakeGraph;
  let twilio: FakeTwilio;
  let gw: Gateway;
  let meta: MetaClient;
  let dynamo: FaultProxy;
  let sqs: FaultProxy;
  /** Users whose batches crash the worker before it does anything (a runtime that dies). */
  const crashFor = new Set<string>();

  beforeAll(async () => {
    llm = await startFakeOpenAi();
    graph = await startFakeGraph({ accessToken: ACCESS_TOKEN });
    twilio = await startFakeTwilio({ accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN, publicBaseUrl: PUBLIC_BASE_URL });
    const crashing =
      (inner: (event: SQSEvent) => Promise<SQSBatchResponse>) =>
      async (event: SQSEvent): Promise<SQSBatchResponse> => {
        if (event.Records.some((r) => [...crashFor].some((user) => r.body.includes(user)))) throw new Error('Runtime exited with error: signal: killed');
        return inner(event);
      };
    gw = await startGateway({
      env: {
        OPENAI_API_KEY: 'sk-test',
        OPENAI_BASE_URL: llm.baseUrl,
        OPENAI_MAX_RETRIES: '0',
        WHATSAPP_VERIFY_TOKEN: 'verify',
        WHATSAPP_APP_SECRET: APP_SECRET,
        WHATSAPP_ACCESS_TOKEN: ACCESS_TOKEN,
        WHATSAPP_PHONE_NUMBER_ID: PNID,
        WHATSAPP_GRAPH_BASE: graph.baseUrl,
        WHATSAPP_PAIR_INTERVAL_MS: '20',
        TWILIO_ACCOUNT_SID: ACCOUNT_SID,
        TWILIO_AUTH_TOKEN: AUTH_TOKEN,
        TWILIO_FROM: OUR_NUMBER,
        TWILIO_API_BASE: twilio.apiBase,
        PUBLIC_BASE_URL,
        FAILED_JOB_HOLD_SEC: '4',
      },
      routes: (cfg) => ({ '/whatsapp': createWhatsAppHandler(cfg, { log: silentLog }), '/twilio/messaging': createTwilioMessagingHandler(cfg, { log: silentLog }) }),
      wrapWorker: crashing,
      visibilityTimeoutSec: 2,
      faultProxies: true,
    });
    twilio.gatewayUrl = gw.http.url;
    meta = new MetaClient(`${gw.http.url}/whatsapp`, APP_SECRET);
    if (!gw.faults) throw new Error('no fault proxies');
    ({ dynamo, sqs } = gw.faults);
  });

  afterAll(async () => {
    await gw.stop();
    await twilio.close();
    await graph.close();
    await llm.close();
  });

  beforeEach(() => {
    dynamo.clear();
    sqs.clear();
    graph.reset();
    crashFor.clear();
    llm.script = [];
    llm.chunkDelayMs = 0;
    llm.chunkChars = 64;
    llm.answer = (req) => `Echo: ${req.lastUserText}`;
  });

  async function send(user: string, text: string): Promise<string> {
    const id = sampleWamid();
    expect((await meta.post(sampleTextWebhook({ phoneNumberId: PNID, from: user, text, id }))).status).toBe(200);
    return id;
  }

  /** What the user's phone received once things went quiet. */
  async function received(user: string, atLeast: number): Promise<string[]> {
    await until(() => graph.textsTo(user).length + twilio.delivered(user).length >= atLeast, 30_000).catch(() => undefined);
    await gw.idle();
    return [...graph.textsTo(user), ...twilio.delivered(user).map((m) => m.body ?? '')];
  }

  it('DynamoDB failing while the answer streams: the job is retried and answered once', async () => {
    // Arrange: a slow stream (several progress writes); every write of it fails in the first receive.
    const user = '15550500001';
    llm.chunkChars = 4;
    llm.chunkDelayMs = 20;
    const firstBatch = gw.batches.length + 1;
    dynamo.inject(({ op, body }) => op === 'UpdateItem' && body.includes(`user#whatsapp#${user}`) && body.includes(':a') && gw.batches.length === firstBatch, { kind: 'fail' });
    // Act
    await send(user, 'a streamed answer please');
    // Assert
    expect(await received(user, 1)).toEqual(['Echo: a streamed answer please']);
    expect(dynamo.calls.some((c) => c.fault === 'fail')).toBe(true);
  });

  it('DynamoDB failing the conversation read while the answer lease is taken: the lease is let go, and the next receive answers once', async () => {
    // Arrange: the history read (made together with the lease write) fails in the first receive.
    const user = '15550500009';
    const firstBatch = gw.batches.length + 1;
    dynamo.inject(({ op, body }) => op === 'GetItem' && body.includes(`conv#whatsapp#${user}`) && gw.batches.length === firstBatch, { kind: 'fail' });

    // Act
    await send(user, 'remember me');

    // Assert: answered once, by the second receive of the job, not after the lease ran out.
    expect(await received(user, 1)).toEqual(['Echo: remember me']);
    expect(dynamo.calls.some((c) => c.fault === 'fail' && c.body.includes(`conv#whatsapp#${user}`))).toBe(true);
    const receives = gw.batches.filter((batch) => batch.Records.some((r) => r.body.includes(user)));
    expect(receives).toHaveLength(2);
  });

  it('DynamoDB frozen while the answer streams: the write lands late and the answer goes out once', async () => {
    const user = '15550500002';
    llm.chunkChars = 4;
    llm.chunkDelayMs = 20;
    dynamo.inject(({ op, body }) => op === 'UpdateItem' && body.includes(`user#whatsapp#${user}`) && body.includes(':a'), { kind: 'freeze', maxMs: 1_500 }, 1);
    await send(user, 'frozen mid-stream');
    expect(await received(user, 1)).toEqual(['Echo: frozen mid-stream']);
  });

  it('Graph answering 5xx, then recovering, with SQS refusing the short retry delay: delivered once', async () => {
    // Arrange: five failed sends (three in-place attempts, then one more receive), and the
    // retry schedule cannot be shortened (the queue's own 2 s visibility applies).
    const user = '15550500003';
    graph.failWhen((m) => m.to === user, { code: 131000, httpStatus: 500 }, 5);
    sqs.inject('ChangeMessageVisibilityBatch', { kind: 'fail' });
    // Act
    await send(user, 'flaky graph');
    // Assert
    expect(await received(user, 1)).toEqual(['Echo: flaky graph']);
    expect(graph.attempts.filter((a) => a.to === user && !a.accepted)).toHaveLength(5);
    expect(sqs.calls.some((c) => c.op === 'ChangeMessageVisibilityBatch' && c.fault === 'fail')).toBe(true);
  });

  it('Twilio answering 5xx, then recovering: delivered once', async () => {
    const user = '+15550500004';
    twilio.failNext((m) => m.to === user, { status: 500, code: 20500, message: 'Internal Server Error' }, 2);
    await twilio.sendMessage({ from: user, to: OUR_NUMBER, body: 'flaky twilio' });
    expect(await received(user, 1)).toEqual(['Echo: flaky twilio']);
  });

  it('Graph failing for good: the job is parked after the hold, the user’s next message is answered, the replay answers the first once', async () => {
    // Arrange
    const user = '15550500005';
    graph.failWhen((m) => m.to === user, { code: 131000, httpStatus: 500 });
    // Act: the first message fails past the 4 s hold.
    const first = await send(user, 'first, while Graph is down');
    const key = { channel: 'whatsapp' as const, userId: user, msgKey: first };
    await until(async () => (await gw.messages.get(key, Date.now()))?.parked === true, 30_000);
    await gw.idle();
    graph.reset(); // Graph recovers
    await send(user, 'second, after recovery');
    const afterSecond = await received(user, 1);
    const parked = await gw.messages.get(key, Date.now());
    if (!parked) throw new Error('record gone');
    await replayParked({ messages: gw.messages, sqs: gw.stack.sqs, queueUrl: gw.stack.queueUrl, clock: gw.turnDeps.clock }, parked);
    // Assert
    expect(parked).toMatchObject({ status: 'failed', pending: false, answer: FAILED_NOTE_EN });
    expect(afterSecond).toEqual(['Echo: second, after recovery']);
    expect(await received(user, 2)).toEqual(['Echo: second, after recovery', 'Echo: first, while Graph is down']);
  });

  it('an LLM answering 5xx: one apology, nothing sent twice', async () => {
    const user = '15550500006';
    llm.script = [openAiSteps.serverError(503)];
    await send(user, 'llm down');
    const texts = await received(user, 1);
    expect(texts).toHaveLength(1);
    expect(texts[0]).not.toContain('Echo');
  });

  it('an LLM stream reset mid-answer: one message (what was written and an apology), nothing sent twice', async () => {
    const user = '15550500008';
    llm.chunkChars = 5;
    llm.script = [{ kind: 'text', text: 'This answer is cut off halfway through', dropAfterChunks: 3 }];
    await send(user, 'llm reset');
    const texts = await received(user, 1);
    expect(texts).toHaveLength(1);
    expect(texts[0]).toMatch(/^This answer/);
  });

  it('a worker that crashes on every receive: SQS moves the job to the DLQ, the dead-letter function parks it and tells the user once', async () => {
    // Arrange
    const user = '15550500007';
    crashFor.add(user);
    // Act
    const id = await send(user, 'crash me');
    const key = { channel: 'whatsapp' as const, userId: user, msgKey: id };
    await until(async () => (await gw.messages.get(key, Date.now()))?.parked === true, 40_000);
    // Assert
    expect(await received(user, 1)).toEqual([FAILED_NOTE_EN]);
    const rec = await gw.messages.get(key, Date.now());
    expect(rec).toMatchObject({ status: 'failed', pending: false });
    expect(rec?.failure).toContain('dead-letter queue');
    // And the replay answers it once the worker is healthy again.
    crashFor.clear();
    const parked = await gw.messages.get(key, Date.now());
    if (!parked) throw new Error('record gone');
    await replayParked({ messages: gw.messages, sqs: gw.stack.sqs, queueUrl: gw.stack.queueUrl, clock: gw.turnDeps.clock }, parked);
    expect(await received(user, 2)).toEqual([FAILED_NOTE_EN, 'Echo: crash me']);
  });
});
