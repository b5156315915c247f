/**
 * Twilio voice end to end: the fake Twilio places a call and follows the TwiML the real
 * Lambda handler returns (greeting → speech → filler/redirect → answer → next gather →
 * goodbye), with a slow fake LLM behind the SQS worker. Timing is scaled down: a poll
 * waits 300 ms instead of 8 s, and one second of `<Pause>` lasts 20 ms.
 */
import { createTwilioMessagingHandler } from '../../../functions/twilio-messaging';
import { createTwilioVoiceHandler } from '../../../functions/twilio-voice';
import { SAY_MAX_CHARS, VOICE_INSTRUCTION } from '../../../lib/channels/twilio/speech';
import {
  FILLER_TEXT,
  GOODBYE_TEXT,
  SILENCE_GOODBYE_TEXT,
  STILL_THERE_TEXT,
  TIMEOUT_APOLOGY_TEXT,
  STIR_VERIFIED_A,
} from '../../../lib/channels/twilio/voice';
import { UNVERIFIED_CALLER_ERROR } from '../../../lib/core/tools';
import { NOT_ENROLLED_TEXT } from '../../../lib/core/turn';
import { silentLog } from '../../../lib/types';
import { createDocumentClient } from '../../../lib/store/client';
import { ContactStore } from '../../../lib/store/contacts';
import { callToolsOnce, startFakeOpenAi, type FakeChatRequest, type FakeOpenAi } from '../../fakes/fake-openai';
import { SILENCE, startFakeTwilio, type CallEvent, type FakeTwilio } from '../../../local/fakes/fake-twilio';
import { startGateway, type Gateway } from '../../../local/gateway';
import { toEvent } from '../../../local/lambda-http';
import { parseTwiml } from '../../../local/fakes/fake-twilio';

const ACCOUNT_SID = `AC${'fedcba9876543210'.repeat(2)}`;
const AUTH_TOKEN = 'voice-auth-token-for-tests';
const PUBLIC_BASE_URL = 'https://voice.example.com';
const OUR_NUMBER = '+15005550006';
const GREETING = 'Hi, this is the test assistant. What would you like to know?';
/** Scaled Twilio limit: a poll waits 300 ms, so every response must come well inside 1.5 s (15 s in production). */
const RESPONSE_LIMIT_MS = 1500;
const POLL_WAIT_MS = 300;
const MAX_POLLS = 8;

const CALLERS = {
  slow: '+15552220001',
  memory: '+15552220002',
  silent: '+15552220003',
  never: '+15552220004',
  long: '+15552220005',
  bad: '+15552220006',
  attested: '+15552220007',
  newcomer: '+15552220008',
  unattested: '+15552220009',
  attestedB: '+15552220010',
  stranger: '+15558888888',
} as const;

describe('Twilio voice', () => {
  let llm: FakeOpenAi;
  let twilio: FakeTwilio;
  let gw: Gateway;
  let contacts: ContactStore;

  beforeAll(async () => {
    llm = await startFakeOpenAi();
    twilio = await startFakeTwilio({
      accountSid: ACCOUNT_SID,
      authToken: AUTH_TOKEN,
      publicBaseUrl: PUBLIC_BASE_URL,
      responseLimitMs: RESPONSE_LIMIT_MS,
      pauseMsPerSec: 20,
    });
    gw = await startGateway({
      env: {
        OPENAI_API_KEY: 'sk-test',
        OPENAI_BASE_URL: llm.baseUrl,
        OPENAI_MAX_RETRIES: '0',
        TWILIO_ACCOUNT_SID: ACCOUNT_SID,
        TWILIO_AUTH_TOKEN: AUTH_TOKEN,
        TWILIO_FROM: OUR_NUMBER,
        TWILIO_API_BASE: twilio.apiBase,
        TWILIO_VOICE_GREETING: GREETING,
        TWILIO_VOICE_LANGUAGE: 'en-GB',
        PUBLIC_BASE_URL,
        ALLOWED_USERS: Object.entries(CALLERS)
          .filter(([name]) => name !== 'stranger')
          .map(([, n]) => n)
          .join(','),
      },
      routes: (cfg) => {
        const voice = createTwilioVoiceHandler(cfg, { log: silentLog, pollWaitMs: POLL_WAIT_MS, pollIntervalMs: 20, maxPolls: MAX_POLLS });
        const messaging = createTwilioMessagingHandler(cfg, { log: silentLog });
        return {
          '/twilio/voice': voice,
          '/twilio/voice/gather': voice,
          '/twilio/voice/poll': voice,
          '/twilio/messaging': messaging,
        };
      },
    });
    twilio.gatewayUrl = gw.http.url;
    contacts = new ContactStore(createDocumentClient(gw.config.aws), gw.config.aws.tableName);
  });

  afterAll(async () => {
    await gw.stop();
    await twilio.close();
    await llm.close();
  });

  beforeEach(() => {
    llm.script = [];
    llm.latencyMs = 0;
    llm.answer = (req) => `Echo: ${req.lastUserText}`;
    llm.toolCalls = () => undefined;
  });

  /** The model's request for the turn whose question was `text`. */
  const requestFor = (text: string): FakeChatRequest | undefined => llm.chatRequests.find((r) => r.lastUserText === text);
  /** Answers with the tool's result when the model called one, else echoes. */
  const echoOrToolResult = (req: FakeChatRequest): string => {
    const tool = req.messages.find((m) => m.role === 'tool');
    return tool ? `Tool said: ${tool.text}` : `Echo: ${req.lastUserText}`;
  };

  const redirects = (events: readonly CallEvent[]): string[] =>
    events.flatMap((e) => (e.kind === 'redirect' ? [new URL(e.url).pathname] : []));

  it('answers a call that came through the function URL with TwiML pointing back at that URL', async () => {
    // Arrange: Twilio calls the voice function's own URL; the next requests of the call must go
    // there too, signed for it, not to PUBLIC_BASE_URL.
    const host = 'q7pz2mzbbtyhfqc3k2r6apthne0ibzre.lambda-url.us-east-1.on.aws';
    const params = { AccountSid: ACCOUNT_SID, ApiVersion: '2010-04-01', CallSid: `CA${'7f'.repeat(16)}`, CallStatus: 'ringing', Direction: 'inbound', From: CALLERS.newcomer, To: OUR_NUMBER };
    const signed = (url: string): ReturnType<typeof toEvent> =>
      toEvent('POST', '/twilio/voice', { 'content-type': 'application/x-www-form-urlencoded', host, 'x-twilio-signature': twilio.sign(url, params) }, Buffer.from(new URLSearchParams(params).toString()), host);
    const handler = createTwilioVoiceHandler(gw.config, { log: silentLog });

    // Act
    const res = await handler(signed(`https://${host}/twilio/voice`));
    const refused = await handler(signed(`${PUBLIC_BASE_URL}/twilio/voice`));

    // Assert
    expect([res.statusCode, refused.statusCode]).toEqual([200, 403]);
    const gather = parseTwiml(String(res.body)).find((verb) => verb.name === 'Gather');
    expect(gather?.attrs.action).toBe(`https://${host}/twilio/voice/gather?t=1&s=0`);
  });

  it('holds a whole conversation with a slow model: greeting, filler and polls, answer, next question, goodbye', async () => {
    // Arrange: the model takes about three polls to answer.
    llm.latencyMs = 3 * POLL_WAIT_MS;
    const before = llm.chatCalls;
    // Act
    const call = await twilio.call({ from: CALLERS.slow, to: OUR_NUMBER, script: ['What is the capital of France?', 'goodbye'] });
    // Assert: what the caller heard, in order.
    expect(call.heard).toEqual([GREETING, FILLER_TEXT, 'Echo: What is the capital of France?', GOODBYE_TEXT]);
    expect(call.ended).toBe('hangup');
    // The answer was bridged by polls (redirects bounded, each a valid TwiML answer in time).
    const polls = redirects(call.events).filter((p) => p === '/twilio/voice/poll');
    expect(polls.length).toBeGreaterThanOrEqual(2);
    expect(polls.length).toBeLessThanOrEqual(MAX_POLLS);
    expect(call.slowestMs).toBeLessThan(RESPONSE_LIMIT_MS);
    // Listening in the configured language, speech only.
    const gathers = call.events.filter((e): e is Extract<CallEvent, { kind: 'gather' }> => e.kind === 'gather');
    expect(gathers.length).toBe(2);
    for (const g of gathers) expect(g.language).toBe('en-GB');
    // One model call, told to keep it short for the phone; "goodbye" never reached the model.
    expect(llm.chatCalls - before).toBe(1);
    expect(JSON.stringify(llm.lastChatRequest.messages[0]?.content)).toContain(VOICE_INSTRUCTION);
  });

  it('shares memory between an A-attested call and text messages of the same number', async () => {
    // Act: tell the assistant something by phone (caller ID verified), then ask by SMS.
    const call = await twilio.call({ from: CALLERS.memory, to: OUR_NUMBER, script: ['my favourite colour is green', 'bye'], stirVerstat: STIR_VERIFIED_A });
    await gw.idle();
    await twilio.sendMessage({ from: CALLERS.memory, to: OUR_NUMBER, body: 'what is my favourite colour?' });
    await twilio.waitForDelivered(CALLERS.memory, 1);
    // Assert
    expect(call.heard).toContain('Echo: my favourite colour is green');
    expect(llm.lastChatRequest.messages.map((m) => m.text)).toEqual(
      expect.arrayContaining(['my favourite colour is green', 'Echo: my favourite colour is green', 'what is my favourite colour?']),
    );
  });

  describe('caller ID verification (SHAKEN/STIR)', () => {
    it('lets an A-attested call hear the number’s SMS history and rename its contact', async () => {
      // Arrange: the owner texted earlier and registered by SMS.
      const user = CALLERS.attested;
      await twilio.sendMessage({ from: user, to: OUR_NUMBER, body: 'my locker code is 4711' });
      await twilio.waitForDelivered(user, 1);
      await gw.idle();
      await contacts.save({ phone: user, name: 'Alice Owner', channel: 'twilio', registeredBy: user }, Date.now());
      llm.toolCalls = callToolsOnce({ name: 'save_contact', arguments: JSON.stringify({ name: 'Alice Renamed' }) });
      llm.answer = echoOrToolResult;
      // Act: a verified call from the same number asks.
      const call = await twilio.call({ from: user, to: OUR_NUMBER, script: ['please register me as Alice Renamed', 'bye'], stirVerstat: STIR_VERIFIED_A });
      await gw.idle();
      // Assert: the call's turn saw the SMS conversation, and the rename went through.
      const texts = requestFor('please register me as Alice Renamed')?.messages.map((m) => m.text) ?? [];
      expect(texts).toEqual(expect.arrayContaining(['my locker code is 4711', 'Echo: my locker code is 4711']));
      expect(call.heard.some((h) => h.includes('Saved: Alice Renamed'))).toBe(true);
      expect(await contacts.get(user)).toMatchObject({ name: 'Alice Renamed' });
      // Every later URL of the call carried the verdict of its first webhook (signed).
      const urls = call.events.flatMap((e) => (e.kind === 'gather' ? [e.action] : e.kind === 'redirect' ? [e.url] : []));
      expect(urls.length).toBeGreaterThan(0);
      for (const url of urls) expect(new URL(url).searchParams.get('v')).toBe('1');
    });

    it.each([
      ['without StirVerstat', CALLERS.unattested, undefined],
      ['with B attestation', CALLERS.attestedB, 'TN-Validation-Passed-B'],
    ])('keeps a call %s apart from the number’s texts and out of its contact entry', async (_label, user, stirVerstat) => {
      // Arrange: the owner texted a secret and registered by SMS.
      await twilio.sendMessage({ from: user, to: OUR_NUMBER, body: `my secret for ${user} is hunter2` });
      await twilio.waitForDelivered(user, 1);
      await gw.idle();
      await contacts.save({ phone: user, name: 'Owner Name', channel: 'twilio', registeredBy: user }, Date.now());
      llm.toolCalls = callToolsOnce({ name: 'save_contact', arguments: JSON.stringify({ name: 'Mallory' }) });
      llm.answer = echoOrToolResult;
      const question = `what is my secret? and register me as Mallory (${user})`;
      // Act: a call claiming the number, its caller ID not verified.
      const call = await twilio.call({ from: user, to: OUR_NUMBER, script: [question, 'bye'], ...(stirVerstat === undefined ? {} : { stirVerstat }) });
      await gw.idle();
      // Assert: the model saw none of the SMS conversation...
      const request = requestFor(question);
      expect(request).toBeDefined();
      expect(JSON.stringify(request?.messages)).not.toContain('hunter2');
      // ...the contact is unchanged and the model was told why...
      expect(await contacts.get(user)).toMatchObject({ name: 'Owner Name', registeredBy: user });
      const toolResults = llm.chatRequests.flatMap((r) => (r.lastUserText === question ? r.messages.filter((m) => m.role === 'tool').map((m) => m.text) : []));
      expect(toolResults).toContain(UNVERIFIED_CALLER_ERROR);
      expect(call.heard.some((h) => h.includes('cannot be changed from a call whose caller ID is not verified'))).toBe(true);
      // ...and the call's turns stayed out of the number's memory.
      const memory = await gw.conversations.load(`twilio#${user}`, Date.now());
      expect(JSON.stringify(memory)).toContain('hunter2');
      expect(JSON.stringify(memory)).not.toContain('Mallory');
    });

    it('lets an unverified call register a number nobody registered yet', async () => {
      // Arrange
      const user = CALLERS.newcomer;
      llm.toolCalls = callToolsOnce({ name: 'save_contact', arguments: JSON.stringify({ name: 'New Caller' }) });
      llm.answer = echoOrToolResult;
      // Act
      const call = await twilio.call({ from: user, to: OUR_NUMBER, script: ['register me as New Caller', 'bye'] });
      await gw.idle();
      // Assert
      expect(call.heard.some((h) => h.includes('Saved: New Caller'))).toBe(true);
      expect(await contacts.get(user)).toMatchObject({ name: 'New Caller', registeredBy: user });
    });
  });

  it('asks once after silence and ends the call politely after a second silence', async () => {
    const before = llm.chatCalls;
    const call = await twilio.call({ from: CALLERS.silent, to: OUR_NUMBER, script: [SILENCE, SILENCE] });
    expect(call.heard).toEqual([GREETING, STILL_THERE_TEXT, SILENCE_GOODBYE_TEXT]);
    expect(call.ended).toBe('hangup');
    expect(llm.chatCalls).toBe(before);
  });

  it('apologises instead of staying silent when the answer never comes, and keeps listening', async () => {
    // Arrange: far slower than all the polls together.
    llm.latencyMs = MAX_POLLS * (POLL_WAIT_MS + 20) + 2000;
    // Act
    const call = await twilio.call({ from: CALLERS.never, to: OUR_NUMBER, script: ['a question that takes forever', 'goodbye'] });
    await gw.idle();
    // Assert
    expect(call.heard).toEqual([GREETING, FILLER_TEXT, TIMEOUT_APOLOGY_TEXT, GOODBYE_TEXT]);
    expect(redirects(call.events).filter((p) => p === '/twilio/voice/poll')).toHaveLength(MAX_POLLS);
    expect(call.slowestMs).toBeLessThan(RESPONSE_LIMIT_MS);
  });

  it('speaks a long answer cut below the <Say> limit, markdown removed', async () => {
    llm.answer = () => `**Sure.** ${'Here is one more sentence about the topic. '.repeat(120)}`;
    const call = await twilio.call({ from: CALLERS.long, to: OUR_NUMBER, script: ['explain everything', 'goodbye'] });
    const spoken = call.heard[2] ?? '';
    expect(spoken.startsWith('Sure. Here is one more sentence')).toBe(true);
    expect(spoken.length).toBeLessThanOrEqual(SAY_MAX_CHARS);
    expect(spoken.endsWith('.')).toBe(true);
  });

  it('turns away a caller who is not enrolled', async () => {
    const call = await twilio.call({ from: CALLERS.stranger, to: OUR_NUMBER, script: ['hello?'] });
    expect(call.heard).toEqual([NOT_ENROLLED_TEXT]);
    expect(call.ended).toBe('hangup');
  });

  it('rejects unsigned or badly signed voice webhooks, polls included', async () => {
    const params = { CallSid: `CA${'1'.repeat(32)}`, From: CALLERS.bad, To: OUR_NUMBER, SpeechResult: 'hi' };
    const gatherRes = await twilio.post(`${PUBLIC_BASE_URL}/twilio/voice/gather?t=1&s=0`, params, { signature: 'bad' });
    const pollRes = await twilio.post(`${PUBLIC_BASE_URL}/twilio/voice/poll?t=1&r=0`, params, { signature: null });
    // The counters in the query are signed too: changing them breaks the signature.
    const moved = await twilio.post(`${PUBLIC_BASE_URL}/twilio/voice/poll?t=1&r=0`, params, { signedUrl: `${PUBLIC_BASE_URL}/twilio/voice/poll?t=1&r=5` });
    // So is the caller-ID verdict: `v=1` added to a URL Twilio signed without it is refused.
    const claimed = await twilio.post(`${PUBLIC_BASE_URL}/twilio/voice/gather?t=1&s=0&v=1`, params, { signedUrl: `${PUBLIC_BASE_URL}/twilio/voice/gather?t=1&s=0` });
    expect([gatherRes.status, pollRes.status, moved.status, claimed.status]).toEqual([403, 403, 403, 403]);
  });
});
