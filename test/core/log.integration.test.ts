/**
 * Identifiers stay out of the logs end to end: the real Lambda handlers and the worker,
 * with the deployed functions' log (`createLog`, Powertools JSON on stdout/stderr),
 * handle a Twilio SMS whose first send fails with an error quoting the number, and a
 * Meta status webhook reporting a failed delivery to a wa_id. The captured log output
 * holds the masked identifiers and never the full ones.
 */
import { createTwilioMessagingHandler } from '../../functions/twilio-messaging';
import { createWhatsAppHandler } from '../../functions/whatsapp';
import { CORRELATION_KEY, createLog, maskIdsInText } from '../../lib/core/log';
import { emfMetrics, METRIC, METRICS_NAMESPACE } from '../../lib/core/metrics';
import { sampleTextWebhook, sampleWamid } from '../../local/samples/whatsapp';
import { startFakeGraph, type FakeGraph } from '../../local/fakes/fake-graph';
import { startFakeOpenAi, type FakeOpenAi } from '../fakes/fake-openai';
import { startFakeTwilio, type FakeTwilio } from '../../local/fakes/fake-twilio';
import { eventually, FIXTURE_PHONE_NUMBER_ID as PNID, fixtureWith } from '../channels/whatsapp/support';
import { MetaClient } from '../../local/fakes/meta-client';
import { startGateway, type Gateway } from '../../local/gateway';
import { captureOutput, type OutputCapture } from '../support/output';

const ACCOUNT_SID = `AC${'0123456789abcdef'.repeat(2)}`;
const AUTH_TOKEN = 'twilio-auth-token-for-tests';
const PUBLIC_BASE_URL = 'https://gateway.example.com';
const OUR_NUMBER = '+15005550006';
const APP_SECRET = 'log_app_secret';
const ACCESS_TOKEN = 'EAAG-log-token';
const SMS_USER = '+14155552671';
const WA_USER = '16505550123';

describe('logs carry identifiers only masked', () => {
  let llm: FakeOpenAi;
  let twilio: FakeTwilio;
  let graph: FakeGraph;
  let gw: Gateway;
  let meta: MetaClient;
  let output: OutputCapture;

  beforeAll(async () => {
    llm = await startFakeOpenAi();
    twilio = await startFakeTwilio({ accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN, publicBaseUrl: PUBLIC_BASE_URL });
    graph = await startFakeGraph({ accessToken: ACCESS_TOKEN });
    output = captureOutput();
    gw = await startGateway({
      env: {
        OPENAI_API_KEY: 'sk-test',
        OPENAI_BASE_URL: llm.baseUrl,
        OPENAI_MAX_RETRIES: '0',
        TWILIO_ACCOUNT_SID: ACCOUNT_SID,
        TWILIO_AUTH_TOKEN: AUTH_TOKEN,
        TWILIO_FROM: OUR_NUMBER,
        TWILIO_API_BASE: twilio.apiBase,
        PUBLIC_BASE_URL,
        WHATSAPP_VERIFY_TOKEN: 'vt',
        WHATSAPP_APP_SECRET: APP_SECRET,
        WHATSAPP_ACCESS_TOKEN: ACCESS_TOKEN,
        WHATSAPP_PHONE_NUMBER_ID: PNID,
        WHATSAPP_GRAPH_BASE: graph.baseUrl,
        LOG_LEVEL: 'DEBUG',
      },
      log: createLog('worker', 'DEBUG'),
      worker: { metrics: emfMetrics('worker') },
      routes: (cfg) => ({
        '/twilio/messaging': createTwilioMessagingHandler(cfg, { log: createLog('twilio-messaging', 'DEBUG') }),
        '/whatsapp': createWhatsAppHandler(cfg, { log: createLog('whatsapp', 'DEBUG'), metrics: emfMetrics('whatsapp') }),
      }),
    });
    twilio.gatewayUrl = gw.http.url;
    meta = new MetaClient(`${gw.http.url}/whatsapp`, APP_SECRET);
  });

  afterAll(async () => {
    output.restore();
    await gw.stop();
    await graph.close();
    await twilio.close();
    await llm.close();
  });

  it('masks the number of an SMS user whose reply first failed with an error quoting it', async () => {
    // Arrange: Twilio's error messages quote the number (21211: "The 'To' number +1… is
    // not a valid phone number."); this one is retryable, so the worker logs it and SQS retries.
    twilio.failNext((m) => m.to === SMS_USER, { status: 503, code: 20503, message: `Service unavailable while sending to ${SMS_USER}` });
    // Act
    const res = await twilio.sendMessage({ from: SMS_USER, to: OUR_NUMBER, body: 'hello' });
    await twilio.waitForDelivered(SMS_USER, 1);
    await gw.idle();
    // Assert: the failure was logged (masked), and the full number appears nowhere.
    expect(res.status).toBe(200);
    const text = output.text();
    expect(text).toContain('while sending to +14****2671');
    expect(text).not.toContain(SMS_USER.slice(1));
  });

  it('masks the wa_id of a failed-delivery status webhook', async () => {
    // Arrange: Meta's own fixture of a failed status, addressed to our user.
    const { body } = fixtureWith('status-failed-131026.json', { from: { '16505551234': WA_USER } });
    // Act
    const res = await meta.post(body);
    await eventually(() => output.text().includes('whatsapp message failed'), 5_000, 'the status log line');
    // Assert
    expect(res.status).toBe(200);
    const text = output.text();
    expect(text).toContain('"recipient":"16****0123"');
    expect(text).not.toContain(WA_USER);
  });

  /** The JSON lines written so far (Powertools log lines and EMF metric lines). */
  const lines = (): Record<string, unknown>[] =>
    output
      .text()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l): unknown => JSON.parse(l))
      .filter((v): v is Record<string, unknown> => typeof v === 'object' && v !== null);

  it('tags the webhook\'s and the worker\'s lines of one message with its key, and emits EMF metrics for it', async () => {
    // Arrange
    const wamid = sampleWamid();
    const body = sampleTextWebhook({ phoneNumberId: PNID, from: '16505550777', text: 'trace me', id: wamid });
    // Act
    const res = await meta.post(body);
    await eventually(() => lines().some((l) => l.message === 'job done' && l[CORRELATION_KEY] === maskIdsInText(wamid)), 10_000, 'the worker line');
    // Assert: the same id on a line of each function.
    expect(res.status).toBe(200);
    const traced = lines().filter((l) => l[CORRELATION_KEY] === maskIdsInText(wamid));
    expect(traced.find((l) => l.service === 'whatsapp')).toMatchObject({ message: 'webhook handled', status: 200 });
    expect(traced.find((l) => l.service === 'worker')).toMatchObject({ message: 'job done', channel: 'whatsapp', status: 'done' });
    // The SMS of the first test was traced under its own key, not this one.
    const sms = lines().filter((l) => l.service === 'twilio-messaging' && l.message === 'webhook handled');
    expect(sms.length).toBeGreaterThan(0);
    for (const l of sms) expect(l[CORRELATION_KEY]).toEqual(expect.stringMatching(/^SM/));
    // EMF: one JSON line per point, in our namespace, with its dimensions as keys.
    const emf = lines().filter((l) => typeof l._aws === 'object');
    const point = (name: string): Record<string, unknown> | undefined => emf.find((l) => JSON.stringify(l._aws).includes(`"Name":"${name}"`) && l.channel !== 'twilio');
    expect(JSON.stringify(point(METRIC.webhooks)?._aws)).toContain(`"Namespace":"${METRICS_NAMESPACE}"`);
    expect(point(METRIC.webhooks)).toMatchObject({ channel: 'whatsapp', outcome: '2xx', [METRIC.webhooks]: 1, service: 'whatsapp' });
    expect(point(METRIC.timeToFirstToken)).toMatchObject({ channel: 'whatsapp', service: 'worker' });
    expect(point(METRIC.timeToAnswer)?.[METRIC.timeToAnswer]).toEqual(expect.any(Number));
    // The fake model reports usage when asked (include_usage): 10 prompt and 10 completion tokens.
    expect(emf.filter((l) => l[METRIC.tokens] !== undefined).map((l) => [l.kind, l[METRIC.tokens]])).toEqual(expect.arrayContaining([['prompt', 10], ['completion', 10]]));
  });
});
