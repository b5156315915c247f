/**
 * A failing job never holds a user: end to end on the embedded stand-ins (WhatsApp webhook
 * → SQS FIFO → worker → fake Graph), with the failure hold scaled down to 2 s.
 */
import { createWhatsAppHandler } from '../../functions/whatsapp';
import { sampleTextWebhook } from '../../local/samples/whatsapp';
import { FAILED_NOTE_EN, FAILED_NOTE_ZH, listDeadLetters, maskUserId, replayParked } from '../../lib/core/dead-letters';
import { silentLog } from '../../lib/types';
import { startFakeGraph, type FakeGraph } from '../../local/fakes/fake-graph';
import { startFakeOpenAi, type FakeOpenAi } from '../fakes/fake-openai';
import { fixtureWith, FIXTURE_PHONE_NUMBER_ID as PNID } from '../channels/whatsapp/support';
import { MetaClient } from '../../local/fakes/meta-client';
import { startGateway, type Gateway } from '../../local/gateway';
import { until } from '../support/until';

const APP_SECRET = 'dl_app_secret';
const ACCESS_TOKEN = 'EAAG-dl-token';
const VOICE_MEDIA_ID = '2754859441498128';

describe('failed jobs: parked, told, out of the way, replayable', () => {
  let llm: FakeOpenAi;
  let graph: FakeGraph;
  let gw: Gateway;
  let meta: MetaClient;
  /** While true, Graph's media endpoint answers 503 (a download that keeps failing). */
  let mediaDown = false;

  beforeAll(async () => {
    llm = await startFakeOpenAi();
    graph = await startFakeGraph({ accessToken: ACCESS_TOKEN });
    // The worker's outbound HTTP, with Graph's media lookups failing on demand.
    const faultyFetch: typeof fetch = async (input, init) => {
      const url = input instanceof Request ? input.url : String(input);
      if (mediaDown && url.includes(`/${VOICE_MEDIA_ID}`)) {
        return new Response(JSON.stringify({ error: { message: 'Service temporarily unavailable', code: 2, type: 'OAuthException' } }), {
          status: 503,
          headers: { 'content-type': 'application/json' },
        });
      }
      return fetch(input, init);
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
        FAILED_JOB_HOLD_SEC: '2',
      },
      worker: { fetch: faultyFetch },
      routes: (cfg) => ({ '/whatsapp': createWhatsAppHandler(cfg, { log: silentLog }) }),
      visibilityTimeoutSec: 10,
      faultProxies: true,
    });
    meta = new MetaClient(`${gw.http.url}/whatsapp`, APP_SECRET);
  });

  afterAll(async () => {
    await gw.stop();
    await graph.close();
    await llm.close();
  });

  beforeEach(() => {
    mediaDown = false;
    graph.reset();
    llm.answer = (req) => `Echo: ${req.lastUserText}`;
  });

  it('tells the user a voice note could not be handled, answers their next message, and replays the voice note later', async () => {
    // Arrange: a voice note whose download keeps failing, then a text from the same user.
    const user = '15550177001';
    graph.addMedia(VOICE_MEDIA_ID, Buffer.concat([Buffer.from('OggS'), Buffer.alloc(40, 1)]), 'audio/ogg; codecs=opus');
    llm.transcriptionText = 'what time is it';
    mediaDown = true;
    const voice = fixtureWith('audio-voice.json', { from: { '16505551234': user } });
    const voiceKey = { channel: 'whatsapp' as const, userId: user, msgKey: voice.ids[0] ?? '' };

    // Act
    expect((await meta.post(voice.body)).status).toBe(200);
    expect((await meta.post(sampleTextWebhook({ phoneNumberId: PNID, from: user, text: 'and the date?' }))).status).toBe(200);
    await until(() => graph.textsTo(user).length >= 2, 30_000);
    await gw.idle();

    // Assert: the note first, then the later message's answer, each once.
    expect(graph.textsTo(user)).toEqual([FAILED_NOTE_EN, 'Echo: and the date?']);
    const parked = await gw.messages.get(voiceKey, Date.now());
    expect(parked).toMatchObject({ status: 'failed', parked: true, pending: false, answer: FAILED_NOTE_EN });
    expect(parked?.failure).toMatch(/DeliveryError/);
    const listed = await listDeadLetters(gw.messages, Date.now());
    expect(listed).toContainEqual(expect.objectContaining({ channel: 'whatsapp', msgKey: voiceKey.msgKey, user: maskUserId(user) }));
    expect(JSON.stringify(listed)).not.toContain(user);

    // Act: the media is back; the operator replays.
    mediaDown = false;
    if (!parked) throw new Error('no parked record');
    await replayParked({ messages: gw.messages, sqs: gw.stack.sqs, queueUrl: gw.stack.queueUrl, clock: gw.turnDeps.clock }, parked);
    await until(() => graph.textsTo(user).length >= 3, 20_000);
    await gw.idle();

    // Assert: answered once, out of the dead letters.
    expect(graph.textsTo(user)).toEqual([FAILED_NOTE_EN, 'Echo: and the date?', 'Echo: what time is it']);
    expect(await gw.messages.get(voiceKey, Date.now())).toMatchObject({ status: 'done', parked: false, pending: false });
    expect((await listDeadLetters(gw.messages, Date.now())).map((d) => d.msgKey)).not.toContain(voiceKey.msgKey);
  });

  it('tells a Chinese writer in Chinese', async () => {
    // Arrange: the answer's delivery works, but storing the conversation keeps failing.
    const user = '8613800138000';
    const faults = gw.faults;
    if (!faults) throw new Error('no fault proxies');
    faults.dynamo.inject(({ op, body }) => op === 'PutItem' && body.includes(`conv#whatsapp#${user}`), { kind: 'fail' });
    // Act
    await meta.post(sampleTextWebhook({ phoneNumberId: PNID, from: user, text: '你好，今天天气怎么样？' }));
    await until(() => graph.textsTo(user).length >= 1, 30_000);
    faults.dynamo.clear();
    await gw.idle();
    // Assert
    expect(graph.textsTo(user)).toEqual([FAILED_NOTE_ZH]);
  });

  it('releases the generation lease on a failure, so the next receive answers at once', async () => {
    // Arrange: the first conversation write fails (after the answer streamed); the hold is
    // 2 s, the lease 120 s: without the release the job would be parked, not answered.
    const user = '15550177003';
    const faults = gw.faults;
    if (!faults) throw new Error('no fault proxies');
    // Every write of the conversation fails during the first receive (SDK retries included).
    const firstBatch = gw.batches.length + 1;
    faults.dynamo.inject(({ op, body }) => op === 'PutItem' && body.includes(`conv#whatsapp#${user}`) && gw.batches.length === firstBatch, { kind: 'fail' });
    // Act
    await meta.post(sampleTextWebhook({ phoneNumberId: PNID, from: user, text: 'lease please' }));
    await until(() => graph.textsTo(user).length >= 1, 30_000);
    await gw.idle();
    // Assert
    expect(faults.dynamo.calls.some((c) => c.fault === 'fail' && c.body.includes(`conv#whatsapp#${user}`))).toBe(true);
    expect(graph.textsTo(user)).toEqual(['Echo: lease please']);
  });
});
