/**
 * The LLM's time budget through the pipeline: WhatsApp webhooks in, the worker run by the SQS
 * event source with a Lambda context (5 s timeout here), the fake LLM over HTTP, answers pushed
 * to the fake Graph API. Timings are scaled down through configuration: idle timeout 400 ms,
 * 1 s kept back for saving and delivering, no call started with less than 1.5 s left.
 */
import type { SQSRecord } from 'aws-lambda';
import { createWhatsAppHandler } from '../../functions/whatsapp';
import { sampleTextWebhook, sampleWamid } from '../../local/samples/whatsapp';
import { CUT_NOTE, LENGTH_NOTE, TOO_SLOW_TEXT } from '../../lib/core/notes';
import { silentLog, type Job } from '../../lib/types';
import { createWorkerHandler } from '../../lib/core/worker';
import { APOLOGY } from '../../lib/llm/retry';
import { toLambdaRecord } from '../../local/sqs-event-source';
import { messageGroupId } from '../../lib/queue/jobs';
import { startFakeGraph, type FakeGraph } from '../../local/fakes/fake-graph';
import { openAiSteps, startFakeOpenAi, type FakeOpenAi } from '../fakes/fake-openai';
import { FIXTURE_PHONE_NUMBER_ID as PNID, fixtureWith } from '../channels/whatsapp/support';
import { MetaClient } from '../../local/fakes/meta-client';
import { startGateway, type Gateway } from '../../local/gateway';
import { until } from '../support/until';

const APP_SECRET = 'budget_app_secret';
const ACCESS_TOKEN = 'EAAG-budget-token';
const CUT_NOTE_EN = CUT_NOTE.en;

/** A WhatsApp text job as the ingress enqueues it. */
function whatsappJob(from: string, text: string): Job {
  return {
    v: 1,
    channel: 'whatsapp',
    userId: from,
    msgKey: sampleWamid(),
    conversationKey: `whatsapp#${from}`,
    input: { kind: 'text', text },
    reply: { channel: 'whatsapp', phoneNumberId: PNID, to: from, messageId: sampleWamid() },
    arrivedAtMs: Date.now(),
  };
}

/** The SQS record Lambda hands the worker for `job` (receive number `receive`). */
function lambdaRecord(gw: Gateway, job: Job, receive = 1): SQSRecord {
  return toLambdaRecord(
    {
      MessageId: `m-${receive}-${job.msgKey}`,
      ReceiptHandle: `rh-${receive}-${job.msgKey}`,
      Body: JSON.stringify(job),
      Attributes: { MessageGroupId: messageGroupId(job), ApproximateReceiveCount: String(receive) },
    },
    gw.stack.queueArn,
    gw.config.aws.region,
  );
}

describe('LLM time budget in the worker', () => {
  let llm: FakeOpenAi;
  let graph: FakeGraph;
  let gw: Gateway;
  let meta: MetaClient;
  let nextUser = 15550300000;

  /** Texts the fake Graph accepted for `to`. */
  const sentTo = (to: string): string[] => graph.sent.filter((m) => m.to === to).map((m) => m.text ?? '');
  /** LLM calls whose question starts with `prefix`. */
  const callsFor = (prefix: string): number => llm.chatRequests.filter((r) => r.lastUserText.startsWith(prefix)).length;

  /** A new sender asks `text`; resolves when the queue is drained. */
  async function ask(text: string): Promise<{ from: string; wamid: string }> {
    const from = String(nextUser++);
    const wamid = sampleWamid();
    const res = await meta.post(sampleTextWebhook({ phoneNumberId: PNID, from, text, id: wamid }));
    expect(res.status).toBe(200);
    await until(() => sentTo(from).length > 0, 15_000);
    await gw.idle();
    return { from, wamid };
  }

  beforeAll(async () => {
    llm = await startFakeOpenAi();
    graph = await startFakeGraph({ accessToken: ACCESS_TOKEN });
    gw = await startGateway({
      env: {
        OPENAI_API_KEY: 'sk-test',
        OPENAI_BASE_URL: llm.baseUrl,
        LLM_STREAM_IDLE_TIMEOUT_MS: '400',
        LLM_TIME_MARGIN_MS: '1000',
        LLM_MIN_TIME_MS: '1500',
        WHATSAPP_VERIFY_TOKEN: 'vt',
        WHATSAPP_APP_SECRET: APP_SECRET,
        WHATSAPP_ACCESS_TOKEN: ACCESS_TOKEN,
        WHATSAPP_PHONE_NUMBER_ID: PNID,
        WHATSAPP_GRAPH_BASE: graph.baseUrl,
        WHATSAPP_PAIR_INTERVAL_MS: '0',
      },
      routes: (cfg) => ({ '/whatsapp': createWhatsAppHandler(cfg, { log: silentLog }) }),
      // As in serverless.yml, the visibility timeout is well above the function's timeout.
      visibilityTimeoutSec: 30,
      workerTimeoutSec: 5,
    });
    meta = new MetaClient(`${gw.http.url}/whatsapp`, APP_SECRET);
  });

  afterAll(async () => {
    await gw.stop();
    await graph.close();
    await llm.close();
  });

  beforeEach(() => {
    llm.latencyMs = 0;
    llm.answer = (req) => `Echo: ${req.lastUserText}`;
    llm.chunkChars = 8;
    llm.chunkDelayMs = 0;
  });

  it('cuts a stream that stalls, delivers the partial answer with a note once, and remembers it', async () => {
    // Arrange: 16 characters, then silence on an open connection.
    llm.enqueue({ kind: 'text', text: 'The first part. The rest never comes.', stallAfterChunks: 2 });

    // Act
    const { from } = await ask('stall please');

    // Assert
    expect(sentTo(from)).toEqual([`The first part. ${CUT_NOTE_EN}`]);
    expect(callsFor('stall please')).toBe(1);
    const memory = await gw.conversations.load(`whatsapp#${from}`, Date.now());
    expect(memory.turns).toEqual([
      { role: 'user', content: 'stall please' },
      { role: 'assistant', content: 'The first part. ' },
    ]);
  });

  it('cuts a steady stream at the budget, before the Lambda timeout, once', async () => {
    // Arrange: 2 characters every 100 ms for far longer than the 4 s of LLM time.
    llm.answer = () => 'word '.repeat(1000);
    llm.chunkChars = 2;
    llm.chunkDelayMs = 100;

    // Act
    const { from, wamid } = await ask('never ending');

    // Assert: delivered once, with the note; one call; its record ran in one invocation only.
    const sent = sentTo(from);
    expect(sent).toHaveLength(1);
    expect(sent[0]?.startsWith('word word')).toBe(true);
    expect(sent[0]?.endsWith(CUT_NOTE_EN)).toBe(true);
    expect(callsFor('never ending')).toBe(1);
    expect(gw.batches.filter((b) => b.Records.some((r) => r.body.includes(wamid)))).toHaveLength(1);
  });

  it('retries a 5xx before any text and delivers the whole answer once', async () => {
    llm.enqueue(openAiSteps.serverError(503));

    const { from } = await ask('flaky server');

    expect(sentTo(from)).toEqual(['Echo: flaky server']);
    expect(callsFor('flaky server')).toBe(2);
  });

  it('retries a connection reset before any text, cleanly', async () => {
    llm.enqueue({ kind: 'disconnect' });

    const { from } = await ask('reset early');

    expect(sentTo(from)).toEqual(['Echo: reset early']);
    expect(callsFor('reset early')).toBe(2);
  });

  it('closes a connection reset mid-stream with the partial answer and an apology, once, without a second call', async () => {
    llm.enqueue({ kind: 'text', text: 'Half an answer and then the line drops.', dropAfterChunks: 2 });

    const { from } = await ask('reset late');

    expect(sentTo(from)).toEqual([`Half an answer a\n\n${APOLOGY.interrupted}`]);
    expect(callsFor('reset late')).toBe(1);
  });

  it('marks an answer that hit LLM_MAX_TOKENS (finish reason length) and sends max_tokens', async () => {
    llm.enqueue(openAiSteps.text('An answer that ran into the cap', 'length'));

    const { from } = await ask('capped please');

    expect(sentTo(from)).toEqual([`An answer that ran into the cap${LENGTH_NOTE.en}`]);
    expect(llm.lastChatRequest.body['max_tokens']).toBe(1024);
  });

  it('cuts a transcription that hangs and tells the user, without a chat call', async () => {
    // Arrange: the voice note downloads fine; the transcription server never answers.
    const from = String(nextUser++);
    graph.addMedia('2754859441498128', Buffer.concat([Buffer.from('OggS'), Buffer.alloc(60, 7)]), 'audio/ogg; codecs=opus');
    const { body } = fixtureWith('audio-voice.json', { from: { '16505551234': from } });
    llm.latencyMs = 60_000;
    const calls = { chat: llm.chatCalls, transcription: llm.transcriptionCalls };

    // Act
    await meta.post(body);
    await until(() => sentTo(from).length > 0, 15_000);
    await gw.idle();

    // Assert
    expect(sentTo(from)).toEqual([TOO_SLOW_TEXT.en]);
    expect(llm.transcriptionCalls - calls.transcription).toBe(1);
    expect(llm.chatCalls - calls.chat).toBe(0);
  });

  it('always runs the first record of a group, even with less than LLM_MIN_TIME_MS in the whole invocation', async () => {
    // Arrange: 1.5 s left = 0.5 s of LLM time, below the 1.5 s minimum, for a user's only record.
    const from = String(nextUser++);
    const record = lambdaRecord(gw, whatsappJob(from, 'short invocation'));

    // Act
    const response = await createWorkerHandler(gw.turnDeps)({ Records: [record] }, { getRemainingTimeInMillis: () => 1500 });

    // Assert
    expect(response.batchItemFailures).toEqual([]);
    expect(sentTo(from)).toEqual(['Echo: short invocation']);
  });

  it('does not start a later record of the batch without the time to finish it; the next invocation answers it', async () => {
    // Arrange: one user's two jobs in one batch; the first streams past the whole budget.
    const from = String(nextUser++);
    const [first, second] = [whatsappJob(from, 'batch question 1'), whatsappJob(from, 'batch question 2')];
    const worker = createWorkerHandler(gw.turnDeps);
    llm.answer = (req) => (req.lastUserText === 'batch question 1' ? 'slow '.repeat(1000) : `Echo: ${req.lastUserText}`);
    llm.chunkChars = 2;
    llm.chunkDelayMs = 100;
    const records = [lambdaRecord(gw, first), lambdaRecord(gw, second)];

    // Act: 3 s left in the invocation = 2 s of LLM time after the 1 s margin.
    const response = await worker({ Records: records }, { getRemainingTimeInMillis: () => 3000 });
    const secondAfterFirstRun = await gw.messages.get(second, Date.now());
    llm.chunkDelayMs = 0;
    const retry = await worker({ Records: [lambdaRecord(gw, second, 2)] }, { getRemainingTimeInMillis: () => 10_000 });

    // Assert: the second job was handed back untouched, then answered in full by the next run.
    expect(response.batchItemFailures).toEqual([{ itemIdentifier: records[1]?.messageId }]);
    expect(secondAfterFirstRun?.status).toBe('queued');
    expect(retry.batchItemFailures).toEqual([]);
    const sent = sentTo(from);
    expect(sent).toHaveLength(2);
    expect(sent[0]?.endsWith(CUT_NOTE_EN)).toBe(true);
    expect(sent[1]).toBe('Echo: batch question 2');
    expect(callsFor('batch question 1')).toBe(1);
    expect(callsFor('batch question 2')).toBe(1);
  });
});
