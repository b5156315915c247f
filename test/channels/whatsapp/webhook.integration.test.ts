/**
 * WhatsApp end to end: a Meta-like client posts signed webhooks to the real Lambda
 * handler over HTTP; the worker runs from the SQS emulator with DynamoDB in the emulator;
 * answers go to a fake Graph API over HTTP, which posts the sent / delivered / read status
 * webhooks back like Meta; the LLM is a fake OpenAI server. Timing is scaled down (the
 * 6 s pair interval is 80 ms here).
 */
import { createWhatsAppHandler } from '../../../functions/whatsapp';
import { WhatsAppNote } from '../../../lib/channels/whatsapp/adapter';
import { UNSUPPORTED_TEXT } from '../../../lib/channels/whatsapp/ingress';
import { sampleStatusWebhook, sampleTextWebhook, sampleWamid } from '../../../local/samples/whatsapp';
import { signMetaBody } from '../../../lib/channels/whatsapp/signature';
import { WINDOW_CLOSED_AT_FACT } from '../../../lib/channels/whatsapp/state';
import { CLEARED_TEXT, HELP_TEXT } from '../../../lib/core/commands';
import { MEDIA_FAILED_TEXT, TEXT_ONLY_TEXT } from '../../../lib/core/turn';
import { silentLog } from '../../../lib/types';
import { createDocumentClient } from '../../../lib/store/client';
import type { MessageRecord } from '../../../lib/store/messages';
import { formatNote, NO_NOTE } from '../../../lib/store/notes';
import { UserStateStore } from '../../../lib/store/user-state';
import { startFakeGraph, type FakeGraph } from '../../../local/fakes/fake-graph';
import { startFakeOpenAi, type FakeOpenAi } from '../../fakes/fake-openai';
import { startGateway, type Gateway } from '../../../local/gateway';
import { eventually, FIXTURE_PHONE_NUMBER_ID as PNID, fixtureBytes, fixtureWith } from './support';
import { MetaClient } from '../../../local/fakes/meta-client';

const APP_SECRET = 'test_app_secret';
const VERIFY_TOKEN = 'verify-me-please';
const ACCESS_TOKEN = 'EAAG-test-token';
const PAIR_MS = 80;
const TEMPLATE = 'hello_again';

describe('WhatsApp webhook → worker → Graph API', () => {
  let llm: FakeOpenAi;
  let graph: FakeGraph;
  let gw: Gateway;
  let meta: MetaClient;
  let users: UserStateStore;

  beforeAll(async () => {
    llm = await startFakeOpenAi();
    graph = await startFakeGraph({ accessToken: ACCESS_TOKEN });
    gw = await startGateway({
      env: {
        OPENAI_API_KEY: 'sk-test',
        OPENAI_BASE_URL: llm.baseUrl,
        OPENAI_MAX_RETRIES: '0',
        WHATSAPP_VERIFY_TOKEN: VERIFY_TOKEN,
        WHATSAPP_APP_SECRET: APP_SECRET,
        WHATSAPP_ACCESS_TOKEN: ACCESS_TOKEN,
        WHATSAPP_PHONE_NUMBER_ID: PNID,
        WHATSAPP_GRAPH_BASE: graph.baseUrl,
        WHATSAPP_GRAPH_VERSION: 'v23.0',
        WHATSAPP_PAIR_INTERVAL_MS: String(PAIR_MS),
        WHATSAPP_REENGAGE_TEMPLATE: TEMPLATE,
        WHATSAPP_REENGAGE_TEMPLATE_LANGUAGE: 'en_US',
      },
      routes: (cfg) => ({ '/whatsapp': createWhatsAppHandler(cfg, { log: silentLog }) }),
      // Retries after a failure come back on the worker's own short backoff; the visibility
      // timeout only covers a crashed invocation. Like Lambda's rule (visibility at least the
      // function's timeout), it must outlast a slow turn, or SQS hands a job still being
      // answered to a second invocation.
      visibilityTimeoutSec: 8,
    });
    meta = new MetaClient(`${gw.http.url}/whatsapp`, APP_SECRET);
    // Like Meta: every accepted send is followed by signed status webhooks to us.
    graph.webhook = { url: `${gw.http.url}/whatsapp`, appSecret: APP_SECRET };
    users = new UserStateStore(createDocumentClient(gw.config.aws), gw.config.aws.tableName);
  });

  afterAll(async () => {
    await graph.close();
    await gw.stop();
    await llm.close();
  });

  beforeEach(() => {
    graph.reset();
    llm.script = [];
    llm.latencyMs = 0;
    llm.chunkDelayMs = 0;
    llm.chunkChars = 64;
    llm.answer = (req) => `Echo: ${req.lastUserText}`;
  });

  /** Waits until the worker is idle and Meta's status webhooks have been posted. */
  async function settled(): Promise<void> {
    await gw.idle();
    await graph.settle();
    await gw.idle();
  }

  async function recordOf(userId: string, msgKey: string): Promise<MessageRecord | undefined> {
    return gw.messages.get({ channel: 'whatsapp', userId, msgKey }, Date.now());
  }

  describe('subscription check (GET)', () => {
    it('answers the challenge for the right mode and token', async () => {
      const res = await meta.verify({ 'hub.mode': 'subscribe', 'hub.verify_token': VERIFY_TOKEN, 'hub.challenge': '1158201444' });
      expect(res).toEqual({ status: 200, text: '1158201444' });
    });

    it('refuses a wrong token or mode with 403 and never echoes the challenge', async () => {
      const wrongToken = await meta.verify({ 'hub.mode': 'subscribe', 'hub.verify_token': 'guess', 'hub.challenge': 'c-1' });
      const wrongMode = await meta.verify({ 'hub.mode': 'unsubscribe', 'hub.verify_token': VERIFY_TOKEN, 'hub.challenge': 'c-2' });
      const noToken = await meta.verify({ 'hub.mode': 'subscribe', 'hub.challenge': 'c-3' });
      for (const res of [wrongToken, wrongMode, noToken]) {
        expect(res.status).toBe(403);
        expect(res.text).not.toMatch(/c-\d/);
      }
    });
  });

  describe('signature (POST)', () => {
    it('accepts a good signature and answers the text', async () => {
      // Arrange
      const user = '15550100001';
      const id = sampleWamid();
      // Act
      const res = await meta.post(sampleTextWebhook({ phoneNumberId: PNID, from: user, text: 'hello there', id }));
      await settled();
      // Assert
      expect(res.status).toBe(200);
      expect(graph.textsTo(user)).toEqual(['Echo: hello there']);
      expect(await recordOf(user, id)).toMatchObject({ status: 'done', deliveredParts: 1, pending: false });
    });

    it('stores the answer only when it is finished: nobody reads a partial WhatsApp answer', async () => {
      // Arrange: a stream of ~40 chunks, 30 ms apart (the gateway's progress interval is 20 ms).
      const user = '15550100031';
      const id = sampleWamid();
      llm.chunkChars = 4;
      llm.chunkDelayMs = 30;
      llm.answer = () => 'A slowly streamed answer, word by word by word by word.'.repeat(3);
      // Act: watch the record while the worker streams.
      await meta.post(sampleTextWebhook({ phoneNumberId: PNID, from: user, text: 'slowly', id }));
      const seen: { status: string; answer: string }[] = [];
      await eventually(async () => {
        const rec = await recordOf(user, id);
        if (rec) seen.push({ status: rec.status, answer: rec.answer });
        return rec?.status === 'done';
      }, 10_000);
      await settled();
      // Assert: it was seen streaming, never with part of the answer; the whole answer arrived.
      const streaming = seen.filter((s) => s.status === 'streaming');
      expect(streaming.length).toBeGreaterThan(3);
      expect(new Set(streaming.map((s) => s.answer))).toEqual(new Set(['']));
      expect(graph.textsTo(user)).toEqual(['A slowly streamed answer, word by word by word by word.'.repeat(3)]);
    });

    it('rejects a bad or missing signature with 401 and enqueues nothing', async () => {
      // Arrange
      const user = '15550100002';
      const id = sampleWamid();
      const body = sampleTextWebhook({ phoneNumberId: PNID, from: user, text: 'let me in', id });
      const calls = llm.chatCalls;
      const batches = gw.batches.length;
      // Act
      const bad = await meta.post(body, { signature: `sha256=${'0'.repeat(64)}` });
      const missing = await meta.post(body, { signature: null });
      const otherSecret = await new MetaClient(`${gw.http.url}/whatsapp`, 'wrong_secret').post(body);
      await settled();
      // Assert
      for (const res of [bad, missing, otherSecret]) {
        expect(res.status).toBe(401);
        expect(res.text).not.toContain('let me in');
      }
      expect(await recordOf(user, id)).toBeUndefined();
      expect(gw.batches.length).toBe(batches);
      expect(llm.chatCalls).toBe(calls);
      expect(graph.attempts).toEqual([]);
    });

    it('verifies the escaped-unicode body over its exact bytes, also when API Gateway base64-encodes it', async () => {
      // Arrange: Meta escapes non-ASCII (\u00e4); the signature covers those escapes.
      const user = '4915112340001';
      const raw = sampleTextWebhook({ phoneNumberId: PNID, from: user, text: 'Grüße! Hätten Sie Zeit?', id: sampleWamid() });
      expect(raw).toContain('Gr\\u00fc\\u00dfe! H\\u00e4tten');
      const reserialised = JSON.stringify(JSON.parse(raw));
      // Act: as JSON (text body), as octet-stream (API Gateway base64s it), and the same
      // JSON re-serialised as UTF-8 under the original signature.
      const asText = await meta.post(raw);
      const asBase64 = await meta.post(raw, { contentType: 'application/octet-stream' });
      const tampered = await meta.post(reserialised, { signature: signMetaBody(APP_SECRET, raw) });
      await settled();
      // Assert: both verified (one message, deduplicated); the re-serialised one did not.
      expect(asText.status).toBe(200);
      expect(asBase64.status).toBe(200);
      expect(tampered.status).toBe(401);
      expect(graph.textsTo(user)).toEqual(['Echo: Grüße! Hätten Sie Zeit?']);
    });

    // Emoji must survive the queue: the job body is ASCII-escaped (lib/queue/jobs.ts).
    it('answers a message with an emoji (fixture bytes as Meta sends them)', async () => {
      const raw = fixtureBytes('text-escaped-unicode.json');
      expect(raw.toString('utf8')).toContain('\\ud83d\\ude00');
      const res = await meta.post(raw);
      await settled();
      expect(res.status).toBe(200);
      expect(graph.textsTo('4915112345678')).toEqual(['Echo: Grüße! Hätten Sie Zeit? 😀']);
    });
  });

  describe('deduplication', () => {
    it('makes one LLM call and one send for duplicate and concurrent duplicate deliveries', async () => {
      // Arrange
      const user = '15550100003';
      const body = sampleTextWebhook({ phoneNumberId: PNID, from: user, text: 'only once', id: sampleWamid() });
      const calls = llm.chatCalls;
      llm.latencyMs = 150;
      // Act: three concurrent deliveries, one sequential while answering, one after.
      const concurrent = await Promise.all([meta.post(body), meta.post(body), meta.post(body)]);
      const during = await meta.post(body);
      await settled();
      const after = await meta.post(body);
      await settled();
      // Assert
      for (const res of [...concurrent, during, after]) expect(res.status).toBe(200);
      expect(llm.chatCalls - calls).toBe(1);
      expect(graph.textsTo(user)).toEqual(['Echo: only once']);
    });
  });

  describe('status webhooks', () => {
    it('makes no LLM call, no send and no job for sent / delivered / read statuses', async () => {
      // Arrange
      const calls = llm.chatCalls;
      const batches = gw.batches.length;
      // Act
      const results = await Promise.all(
        ['status-sent.json', 'status-delivered.json', 'status-read.json', 'status-failed-131026.json'].map((name) => meta.post(fixtureBytes(name))),
      );
      await settled();
      // Assert
      for (const res of results) expect(res.status).toBe(200);
      expect(llm.chatCalls).toBe(calls);
      expect(gw.batches.length).toBe(batches);
      expect(graph.attempts).toEqual([]);
      expect(graph.reads).toEqual([]);
    });

    it('records a failed status with 131047 on the user', async () => {
      const user = '15550100004';
      const res = await meta.post(sampleStatusWebhook({ phoneNumberId: PNID, recipientId: user, status: 'failed', errorCode: 131047 }));
      expect(res.status).toBe(200);
      const facts = await users.get('whatsapp', user, Date.now());
      expect(Number(facts[WINDOW_CLOSED_AT_FACT])).toBeGreaterThan(Date.now() - 10_000);
    });
  });

  describe('long answers', () => {
    it('splits a long answer into parts of at most 4,096 characters, paced per user', async () => {
      // Arrange: about 10,000 characters in paragraphs.
      const user = '15550100005';
      const paragraph = (i: number): string => `Paragraph ${i}. ${'The quick brown fox jumps over the lazy dog. '.repeat(9).trim()}`;
      const answer = Array.from({ length: 24 }, (_, i) => paragraph(i)).join('\n\n');
      llm.answer = () => answer;
      llm.chunkChars = 500;
      // Act
      await meta.post(sampleTextWebhook({ phoneNumberId: PNID, from: user, text: 'write a lot', id: sampleWamid() }));
      await settled();
      // Assert
      const sent = graph.sentTo(user);
      expect(sent.length).toBe(3);
      for (const m of sent) expect(m.text?.length ?? 0).toBeLessThanOrEqual(4096);
      expect(sent.map((m) => m.text).join('\n\n')).toBe(answer);
      for (let i = 1; i < sent.length; i++) {
        const gap = (sent[i]?.atMs ?? 0) - (sent[i - 1]?.atMs ?? 0);
        expect(gap).toBeGreaterThanOrEqual(PAIR_MS - 5);
      }
    });

    it('resumes after a 131056 on part 2 of 3 without resending part 1, across an SQS redelivery', async () => {
      // Arrange: part 2 fails on every in-place retry of the first invocation (3 tries).
      const user = '15550100006';
      const id = sampleWamid();
      const paragraph = (c: string): string => `${c}: ${'Pack my box with five dozen liquor jugs. '.repeat(80).trim()}`;
      const parts = ['One', 'Two', 'Three'].map(paragraph);
      llm.answer = () => parts.join('\n\n');
      llm.chunkChars = 1000;
      graph.failWhen((m, ctx) => m.to === user && ctx.acceptedBefore === 1, { code: 131056 }, 3);
      const calls = llm.chatCalls;
      const batches = gw.batches.length;
      // Act
      await meta.post(sampleTextWebhook({ phoneNumberId: PNID, from: user, text: 'three parts please', id }));
      await eventually(async () => formatNote((await recordOf(user, id))?.note ?? NO_NOTE) === 'rate_limited:131056', 10_000, 'the rate-limit note');
      const paused = await recordOf(user, id);
      await settled();
      // Assert
      expect(paused).toMatchObject({ deliveredParts: 1, pending: true });
      expect(graph.textsTo(user)).toEqual(parts);
      expect(graph.attempts.filter((m) => m.to === user && !m.accepted)).toHaveLength(3);
      expect(llm.chatCalls - calls).toBe(1);
      expect(gw.batches.length - batches).toBeGreaterThanOrEqual(2); // the SQS redelivery
      expect(await recordOf(user, id)).toMatchObject({ deliveredParts: 3, pending: false });
    });

    it('rides out a single 131056 in place', async () => {
      const user = '15550100007';
      llm.answer = () => ['A', 'B'].map((c) => `${c} ${'word '.repeat(700).trim()}.`).join('\n\n');
      graph.failWhen((m, ctx) => m.to === user && ctx.acceptedBefore === 1, { code: 131056 }, 1);
      const batches = gw.batches.length;
      await meta.post(sampleTextWebhook({ phoneNumberId: PNID, from: user, text: 'two parts', id: sampleWamid() }));
      await settled();
      expect(graph.textsTo(user)).toHaveLength(2);
      expect(gw.batches.length - batches).toBe(1);
    });
  });

  describe('24 h window (131047)', () => {
    it('sends the re-engagement template instead, records the outcome and does not retry', async () => {
      // Arrange
      const user = '15550100008';
      const id = sampleWamid();
      graph.failWhen((m) => m.to === user && m.type === 'text', { code: 131047 });
      const batches = gw.batches.length;
      // Act
      await meta.post(sampleTextWebhook({ phoneNumberId: PNID, from: user, text: 'are you there?', id }));
      await settled();
      // Assert
      expect(graph.attempts.filter((m) => m.to === user).map((m) => [m.type, m.accepted])).toEqual([
        ['text', false],
        ['template', true],
      ]);
      expect(graph.sentTo(user)[0]?.template).toEqual({ name: TEMPLATE, language: 'en_US' });
      expect(await recordOf(user, id)).toMatchObject({ note: WhatsAppNote.TEMPLATE_SENT, pending: false, deliveredParts: 0 });
      expect((await users.get('whatsapp', user, Date.now()))[WINDOW_CLOSED_AT_FACT]).toBeDefined();
      expect(gw.batches.length - batches).toBe(1);
    });

    it('uses a later failed status: the next answer goes straight to the template', async () => {
      // Arrange: two questions; Meta accepts the first answer, then reports it failed
      // (131047) by status webhook while the second is being answered.
      const user = '15550100009';
      graph.failLater((m) => m.to === user && m.type === 'text', 131047);
      // The status webhook needs a few DynamoDB writes; the second answer takes longer.
      llm.latencyMs = 500;
      const { body, ids } = fixtureWith('multiple-messages.json', { from: { '16505551234': user, '447700900123': '15550100010' } });
      // Act
      await meta.post(body);
      await settled();
      // Assert: the first answer's text was accepted; the second never tried free-form text.
      expect(graph.attempts.filter((m) => m.to === user).map((m) => m.type)).toEqual(['text', 'template']);
      expect(await recordOf(user, ids[1] ?? '')).toMatchObject({ note: WhatsAppNote.TEMPLATE_SENT, pending: false });
    });
  });

  describe('message types', () => {
    it('answers a voice note: marks it read, downloads it in two steps, transcribes it and answers', async () => {
      // Arrange
      const user = '15550100011';
      const ogg = Buffer.concat([Buffer.from('OggS'), Buffer.alloc(60, 7)]);
      graph.addMedia('2754859441498128', ogg, 'audio/ogg; codecs=opus');
      llm.transcriptionText = 'what is the weather like';
      const { body, ids } = fixtureWith('audio-voice.json', { from: { '16505551234': user } });
      // Act
      await meta.post(body);
      await settled();
      // Assert
      expect(graph.reads[0]).toMatchObject({ messageId: ids[0], typing: 'text' });
      expect(graph.mediaInfoCalls).toEqual(['2754859441498128']);
      expect(graph.downloads).toEqual(['2754859441498128']);
      const transcription = llm.transcriptionRequests.at(-1);
      expect(transcription?.filename).toBe('voice.ogg');
      expect(Buffer.from(transcription?.bytes ?? new Uint8Array()).equals(ogg)).toBe(true);
      expect(llm.lastChatRequest.lastUserText).toBe('what is the weather like');
      expect(graph.textsTo(user)).toEqual(['Echo: what is the weather like']);
      expect(graph.reads[0]?.atMs ?? Infinity).toBeLessThanOrEqual(graph.sentTo(user)[0]?.atMs ?? 0);
    });

    it('answers politely when the voice note can no longer be downloaded', async () => {
      // Arrange: Meta no longer has the media (ids expire).
      const user = '15550100018';
      const { body } = fixtureWith('audio-voice.json', { from: { '16505551234': user } });
      const transcriptions = llm.transcriptionCalls;
      graph.removeMedia('2754859441498128');
      // Act
      await meta.post(body);
      await settled();
      // Assert
      expect(graph.textsTo(user)).toEqual([MEDIA_FAILED_TEXT]);
      expect(llm.transcriptionCalls).toBe(transcriptions);
    });

    it('answers politely when the voice note runs past 25 MiB while it downloads (no Content-Length)', async () => {
      // Arrange: 26 MiB served in chunks, so only reading shows it is too large.
      const user = '15550100019';
      const { body } = fixtureWith('audio-voice.json', { from: { '16505551234': user } });
      const transcriptions = llm.transcriptionCalls;
      graph.addMedia('2754859441498128', Buffer.alloc(26 * 1024 * 1024, 1), 'audio/ogg', { chunked: true });
      try {
        // Act
        await meta.post(body);
        await settled();
        // Assert: a clear reply, nothing sent to transcription, no retry left hanging
        expect(graph.textsTo(user)).toEqual([MEDIA_FAILED_TEXT]);
        expect(llm.transcriptionCalls).toBe(transcriptions);
      } finally {
        graph.removeMedia('2754859441498128');
      }
    });

    it('answers every message of a batched delivery, in order per user', async () => {
      // Arrange
      const a = '15550100012';
      const b = '15550100013';
      const calls = llm.chatCalls;
      const { body } = fixtureWith('multiple-messages.json', { from: { '16505551234': a, '447700900123': b } });
      // Act
      const res = await meta.post(body);
      await settled();
      // Assert
      expect(res.status).toBe(200);
      expect(llm.chatCalls - calls).toBe(3);
      expect(graph.textsTo(a)).toEqual(['Echo: First question', 'Echo: Second question']);
      expect(graph.textsTo(b)).toEqual(['Echo: Hello from London']);
    });

    it('turns interactive and template button replies into the chosen text', async () => {
      const user = '15550100014';
      for (const name of ['interactive-button-reply.json', 'interactive-list-reply.json', 'button.json']) {
        await meta.post(fixtureWith(name, { from: { '16505551234': user } }).body);
        await settled();
      }
      expect(graph.textsTo(user)).toEqual(['Echo: Yes, please', 'Echo: Opening hours', 'Echo: Continue the chat']);
    });

    it('ignores reactions and politely declines unsupported types without the model', async () => {
      const user = '15550100015';
      const calls = llm.chatCalls;
      for (const name of ['reaction.json', 'video.json', 'system.json']) {
        await meta.post(fixtureWith(name, { from: { '16505551234': user } }).body);
        await settled();
      }
      expect(llm.chatCalls).toBe(calls);
      expect(graph.textsTo(user)).toEqual([UNSUPPORTED_TEXT]);
    });

    it('replies politely to an image when the model is text-only, without downloading it', async () => {
      const user = '15550100016';
      await meta.post(fixtureWith('image.json', { from: { '16505551234': user } }).body);
      await settled();
      expect(graph.textsTo(user)).toEqual([TEXT_ONLY_TEXT]);
      expect(graph.downloads).toEqual([]);
    });
  });

  describe('commands and memory', () => {
    it('answers /help without the model, remembers the conversation and /clear forgets it', async () => {
      const user = '15550100017';
      const say = async (text: string): Promise<void> => {
        await meta.post(sampleTextWebhook({ phoneNumberId: PNID, from: user, text, id: sampleWamid() }));
        await settled();
      };
      const calls = llm.chatCalls;
      await say('/help');
      expect(llm.chatCalls).toBe(calls);
      await say('my name is Ada');
      await say('what is my name?');
      const remembered = llm.lastChatRequest.messages.map((m) => m.text);
      await say('/clear');
      await say('who am I?');
      expect(remembered).toEqual(expect.arrayContaining(['my name is Ada', 'Echo: my name is Ada', 'what is my name?']));
      expect(llm.lastChatRequest.messages.map((m) => m.text)).not.toContain('my name is Ada');
      expect(graph.textsTo(user)[0]).toBe(HELP_TEXT);
      expect(graph.textsTo(user)).toContain(CLEARED_TEXT);
    });
  });
});
