/**
 * Fault injection at the ingress (WhatsApp and Twilio): DynamoDB and SQS failing or frozen
 * between the webhook handler and the emulators (a proxy in front of dynalite and fauxqs).
 * Each vendor retries as it does in production (Meta: any non-200, for days; Twilio: a 5xx
 * with the `#rc=…&rp=…5xx` overrides the README asks for), so every test redelivers the same
 * webhook after the fault and asserts: 0 answers lost, 0 answers sent twice, one LLM call.
 */
import { createTwilioMessagingHandler } from '../../functions/twilio-messaging';
import { createWhatsAppHandler } from '../../functions/whatsapp';
import { sampleTextWebhook, sampleWamid, signedHeaders } from '../../local/samples/whatsapp';
import { silentLog } from '../../lib/types';
import { startFakeGraph, type FakeGraph } from '../../local/fakes/fake-graph';
import { startFakeOpenAi, type FakeOpenAi } from '../fakes/fake-openai';
import { startFakeTwilio, type FakeTwilio } from '../../local/fakes/fake-twilio';
import { FIXTURE_PHONE_NUMBER_ID as PNID } from '../channels/whatsapp/support';
import { MetaClient } from '../../local/fakes/meta-client';
import type { FaultProxy } from '../../local/fault-proxy';
import { startGateway, type Gateway } from '../../local/gateway';
import { until } from '../support/until';

const APP_SECRET = 'faults_app_secret';
const ACCESS_TOKEN = 'EAAG-faults';
const ACCOUNT_SID = `AC${'fa'.repeat(16)}`;
const AUTH_TOKEN = 'twilio-faults-token';
const PUBLIC_BASE_URL = 'https://faults.example.com';
const OUR_NUMBER = '+15005550006';

describe('ingress faults: nothing lost, nothing twice', () => {
  let llm: FakeOpenAi;
  let graph: FakeGraph;
  let twilio: FakeTwilio;
  let gw: Gateway;
  let meta: MetaClient;
  let dynamo: FaultProxy;
  let sqs: FaultProxy;

  beforeAll(async () => {
    llm = await startFakeOpenAi();
    graph = await startFakeGraph({ accessToken: ACCESS_TOKEN });
    twilio = await startFakeTwilio({ accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN, publicBaseUrl: PUBLIC_BASE_URL });
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
      },
      routes: (cfg) => {
        const messaging = createTwilioMessagingHandler(cfg, { log: silentLog });
        return { '/whatsapp': createWhatsAppHandler(cfg, { log: silentLog }), '/twilio/messaging': messaging };
      },
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
    llm.answer = (req) => `Echo: ${req.lastUserText}`;
  });

  /** Every answer the fake vendors received for `user`, after the worker went quiet. */
  async function answersTo(user: string, expected: number): Promise<string[]> {
    await until(() => graph.textsTo(user).length + twilio.delivered(user).length >= expected, 20_000).catch(() => undefined);
    await gw.idle();
    return [...graph.textsTo(user), ...twilio.delivered(user).map((m) => m.body ?? '')];
  }

  /** The same signed webhook, posted the way Meta does, with Meta's patience (a short timeout here). */
  async function metaPost(body: string, timeoutMs = 10_000): Promise<number> {
    try {
      const res = await fetch(`${gw.http.url}/whatsapp`, {
        method: 'POST',
        headers: signedHeaders(APP_SECRET, body),
        body,
        signal: AbortSignal.timeout(timeoutMs),
      });
      await res.text();
      return res.status;
    } catch {
      return 0; // timed out: Meta counts it as failed and retries
    }
  }

  describe('WhatsApp', () => {
    it('answers 5xx while DynamoDB fails the claim; the redelivery is answered once', async () => {
      // Arrange
      const user = '15550400001';
      const body = sampleTextWebhook({ phoneNumberId: PNID, from: user, text: 'store me', id: sampleWamid() });
      const calls = llm.chatCalls;
      dynamo.inject(({ op, body: call }) => op === 'PutItem' && call.includes(`user#whatsapp#${user}`), { kind: 'fail' });
      // Act
      const during = await meta.post(body);
      dynamo.clear();
      const after = await meta.post(body);
      // Assert
      expect(during.status).toBe(500);
      expect(after.status).toBe(200);
      expect(await answersTo(user, 1)).toEqual(['Echo: store me']);
      expect(llm.chatCalls - calls).toBe(1);
    });

    it('answers 5xx when SQS refuses the job after the claim; the redelivery enqueues the claimed message', async () => {
      // Arrange
      const user = '15550400002';
      const id = sampleWamid();
      const body = sampleTextWebhook({ phoneNumberId: PNID, from: user, text: 'queue me', id });
      sqs.inject('SendMessage', { kind: 'fail' });
      // Act
      const during = await meta.post(body);
      const claimed = await gw.messages.get({ channel: 'whatsapp', userId: user, msgKey: id }, Date.now());
      sqs.clear();
      const after = await meta.post(body);
      // Assert
      expect(during.status).toBe(500);
      expect(claimed).toMatchObject({ enqueued: false, status: 'queued' });
      expect(after.status).toBe(200);
      expect(await answersTo(user, 1)).toEqual(['Echo: queue me']);
    });

    it('takes two round trips for a new message: one conditional PutItem, one SendMessage', async () => {
      // Arrange
      const user = '15550400003';
      const body = sampleTextWebhook({ phoneNumberId: PNID, from: user, text: 'two trips', id: sampleWamid() });
      const forUser = (calls: { body: string }[]): number => calls.filter((c) => c.body.includes(user)).length;
      const dynamoBefore = dynamo.calls.length;
      const sqsBefore = sqs.calls.length;
      // Act
      const res = await meta.post(body);
      const dynamoCalls = dynamo.calls.slice(dynamoBefore);
      const sqsCalls = sqs.calls.slice(sqsBefore);
      // Assert: the claim (the worker may already be running, so its calls are told apart by operation).
      expect(res.status).toBe(200);
      expect(forUser(dynamoCalls.filter((c) => c.op === 'PutItem' && c.body.includes('attribute_not_exists(pk)')))).toBe(1);
      expect(forUser(dynamoCalls.filter((c) => c.op === 'UpdateItem' && c.body.includes('enqueued')))).toBe(0);
      expect(forUser(sqsCalls.filter((c) => c.op === 'SendMessage'))).toBe(1);
      expect(await answersTo(user, 1)).toEqual(['Echo: two trips']);
    });

    it('enqueues a redelivered message again while it is queued; the double is absorbed and answered once', async () => {
      // Arrange
      const user = '15550400006';
      const body = sampleTextWebhook({ phoneNumberId: PNID, from: user, text: 'once only', id: sampleWamid() });
      const calls = llm.chatCalls;
      const sqsBefore = sqs.calls.length;
      // Act: Meta delivers the same notification twice at once (its retry overlapping the first).
      const [first, second] = await Promise.all([meta.post(body), meta.post(body)]);
      // Assert
      expect([first.status, second.status]).toEqual([200, 200]);
      expect(await answersTo(user, 1)).toEqual(['Echo: once only']);
      expect(llm.chatCalls - calls).toBe(1);
      expect(sqs.calls.slice(sqsBefore).filter((c) => c.op === 'SendMessage' && c.body.includes(user)).length).toBeGreaterThanOrEqual(1);
    });

    it('survives a frozen DynamoDB: Meta gives up, the frozen claim lands late, the redelivery is answered once', async () => {
      // Arrange
      const user = '15550400004';
      const body = sampleTextWebhook({ phoneNumberId: PNID, from: user, text: 'frozen store', id: sampleWamid() });
      const calls = llm.chatCalls;
      dynamo.inject(({ op, body: call }) => op === 'PutItem' && call.includes(`user#whatsapp#${user}`), { kind: 'freeze' }, 1);
      // Act: Meta's request times out while the claim hangs; then DynamoDB recovers.
      const during = await metaPost(body, 800);
      dynamo.thaw();
      const after = await metaPost(body);
      // Assert
      expect(during).toBe(0);
      expect(after).toBe(200);
      expect(await answersTo(user, 1)).toEqual(['Echo: frozen store']);
      expect(llm.chatCalls - calls).toBe(1);
    });

    it('survives a frozen SQS send: the redelivery enqueues again and the late send is deduplicated', async () => {
      // Arrange
      const user = '15550400005';
      const body = sampleTextWebhook({ phoneNumberId: PNID, from: user, text: 'frozen queue', id: sampleWamid() });
      const calls = llm.chatCalls;
      sqs.inject(({ op, body: call }) => op === 'SendMessage' && call.includes(user), { kind: 'freeze' }, 1);
      // Act
      const during = await metaPost(body, 800);
      const after = await metaPost(body);
      sqs.thaw();
      // Assert
      expect(during).toBe(0);
      expect(after).toBe(200);
      expect(await answersTo(user, 1)).toEqual(['Echo: frozen queue']);
      expect(llm.chatCalls - calls).toBe(1);
    });
  });

  describe('Twilio', () => {
    it('answers 5xx while DynamoDB fails (Twilio retries a 5xx with rp=5xx); the retry is answered once', async () => {
      // Arrange
      const user = '+15550400101';
      const messageSid = `SM${'1'.repeat(32)}`;
      const calls = llm.chatCalls;
      dynamo.inject(({ op, body: call }) => op === 'PutItem' && call.includes(`user#twilio#${user}`), { kind: 'fail' });
      // Act
      const during = await twilio.sendMessage({ from: user, to: OUR_NUMBER, body: 'sms store', messageSid });
      dynamo.clear();
      const after = await twilio.sendMessage({ from: user, to: OUR_NUMBER, body: 'sms store', messageSid });
      // Assert
      expect(during.status).toBe(500);
      expect(after.status).toBe(200);
      expect(await answersTo(user, 1)).toEqual(['Echo: sms store']);
      expect(llm.chatCalls - calls).toBe(1);
    });

    it('answers 5xx when SQS refuses the job; the retry enqueues the claimed message once', async () => {
      // Arrange
      const user = '+15550400102';
      const messageSid = `SM${'2'.repeat(32)}`;
      sqs.inject('SendMessage', { kind: 'fail' });
      // Act
      const during = await twilio.sendMessage({ from: user, to: OUR_NUMBER, body: 'sms queue', messageSid });
      sqs.clear();
      const after = await twilio.sendMessage({ from: user, to: OUR_NUMBER, body: 'sms queue', messageSid });
      // Assert
      expect(during.status).toBe(500);
      expect(after.status).toBe(200);
      expect(await answersTo(user, 1)).toEqual(['Echo: sms queue']);
    });
  });
});
