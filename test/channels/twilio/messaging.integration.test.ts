/**
 * Twilio messaging end to end: the fake Twilio signs and posts webhooks to the real
 * Lambda handler over HTTP and receives the worker's REST sends; the worker runs from
 * the SQS emulator; the LLM is a fake over HTTP. Also: sign-up by SMS (the save_contact
 * tool) read back through GET /admin/contacts.
 */
import { createAdminHandler } from '../../../functions/admin';
import { createTwilioMessagingHandler } from '../../../functions/twilio-messaging';
import { UNSUPPORTED_MEDIA_TEXT } from '../../../lib/channels/twilio/inbound';
import { TWILIO_MAX_CHARS } from '../../../lib/core/chunking';
import { NOT_ENROLLED_TEXT } from '../../../lib/core/turn';
import { silentLog } from '../../../lib/types';
import { callToolsOnce, startFakeOpenAi, type FakeChatRequest, type FakeOpenAi } from '../../fakes/fake-openai';
import { startFakeTwilio, type FakeTwilio } from '../../../local/fakes/fake-twilio';
import { startGateway, type Gateway } from '../../../local/gateway';
import { toEvent } from '../../../local/lambda-http';

const ACCOUNT_SID = `AC${'0123456789abcdef'.repeat(2)}`;
const AUTH_TOKEN = 'twilio-auth-token-for-tests';
const PUBLIC_BASE_URL = 'https://gateway.example.com';
const OUR_NUMBER = '+15005550006';
const WA_SENDER = 'whatsapp:+14155238886';
const TEMPLATE_SID = `HX${'ab'.repeat(16)}`;
const ADMIN_TOKEN = 'admin-secret-token';

/** Test users: every number is enrolled except `stranger`. */
const USERS = {
  basic: '+15551230001',
  port: '+15551230002',
  bad: '+15551230003',
  dup: '+15551230004',
  long: '+15551230005',
  resume: '+15551230006',
  waSync: '+15551230007',
  waAsync: '+15551230008',
  wa: '+15551230009',
  image: '+15551230010',
  audio: '+15551230011',
  video: '+15551230012',
  signup: '+15551230013',
  functionUrl: '+15551230014',
  stranger: '+15559999999',
} as const;
const ENROLLED = Object.entries(USERS)
  .filter(([name]) => name !== 'stranger')
  .map(([, number]) => number);

describe('Twilio messaging', () => {
  let llm: FakeOpenAi;
  let twilio: FakeTwilio;
  let gw: Gateway;

  beforeAll(async () => {
    llm = await startFakeOpenAi();
    twilio = await startFakeTwilio({ accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN, publicBaseUrl: PUBLIC_BASE_URL });
    gw = await startGateway({
      env: {
        OPENAI_API_KEY: 'sk-test',
        OPENAI_BASE_URL: llm.baseUrl,
        OPENAI_MAX_RETRIES: '0',
        OPENAI_VISION: '1',
        TWILIO_ACCOUNT_SID: ACCOUNT_SID,
        TWILIO_AUTH_TOKEN: AUTH_TOKEN,
        TWILIO_FROM: OUR_NUMBER,
        TWILIO_WHATSAPP_FROM: WA_SENDER,
        TWILIO_API_BASE: twilio.apiBase,
        TWILIO_REENGAGE_CONTENT_SID: TEMPLATE_SID,
        PUBLIC_BASE_URL,
        ADMIN_TOKEN,
        ALLOWED_USERS: ENROLLED.join(','),
      },
      routes: (cfg) => {
        const messaging = createTwilioMessagingHandler(cfg, { log: silentLog });
        return {
          '/twilio/messaging': messaging,
          '/twilio/messaging/status': messaging,
          '/admin/contacts': createAdminHandler(cfg, { log: silentLog }),
        };
      },
    });
    twilio.gatewayUrl = gw.http.url;
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

  const callsFor = (text: string): FakeChatRequest[] => llm.chatRequests.filter((r) => r.lastUserText === text);

  it('accepts a signed request, answers with empty TwiML at once and replies through the REST API', async () => {
    // Arrange
    const user = USERS.basic;
    // Act
    const res = await twilio.sendMessage({ from: user, to: OUR_NUMBER, body: 'hello there' });
    const [reply] = await twilio.waitForDelivered(user, 1);
    // Assert
    expect(res.status).toBe(200);
    expect(res.contentType).toMatch(/^text\/xml/);
    expect(res.body).toMatch(/<Response\/>$/);
    expect(reply).toMatchObject({ to: user, from: OUR_NUMBER, body: 'Echo: hello there' });
    // SMS turns are told to avoid markdown.
    expect(JSON.stringify(callsFor('hello there')[0]?.messages[0]?.content)).toMatch(/SMS/);
  });

  it('accepts a request signed for the URL with the default port', async () => {
    // Arrange: Twilio signs whichever form the webhook was configured with.
    const user = USERS.port;
    const params = twilio.messageParams({ from: user, to: OUR_NUMBER, body: 'port 443' });
    // Act
    const res = await twilio.post(`${PUBLIC_BASE_URL}/twilio/messaging`, params, { signedUrl: 'https://gateway.example.com:443/twilio/messaging' });
    const [reply] = await twilio.waitForDelivered(user, 1);
    // Assert
    expect(res.status).toBe(200);
    expect(reply?.body).toBe('Echo: port 443');
  });

  it('checks a message that came through the function URL against that URL, which Twilio signed', async () => {
    // Arrange: the messaging function's own URL (not PUBLIC_BASE_URL); Lambda puts its host in
    // the event's domainName (https://docs.aws.amazon.com/lambda/latest/dg/urls-invocation.html).
    const user = USERS.functionUrl;
    const host = 'z4abc7ogynmz2tq0ttlhe1kpsi0jgkxv.lambda-url.us-east-1.on.aws';
    const handler = createTwilioMessagingHandler(gw.config, { log: silentLog });
    const event = (params: Record<string, string>, signedUrl: string): ReturnType<typeof toEvent> =>
      toEvent('POST', '/twilio/messaging', { 'content-type': 'application/x-www-form-urlencoded', host, 'x-twilio-signature': twilio.sign(signedUrl, params) }, Buffer.from(new URLSearchParams(params).toString()), host);
    const viaUrl = twilio.messageParams({ from: user, to: OUR_NUMBER, body: 'through the function URL' });
    const wrongUrl = twilio.messageParams({ from: user, to: OUR_NUMBER, body: 'signed for the API URL' });

    // Act
    const accepted = await handler(event(viaUrl, `https://${host}/twilio/messaging`));
    const refused = await handler(event(wrongUrl, `${PUBLIC_BASE_URL}/twilio/messaging`));
    const [reply] = await twilio.waitForDelivered(user, 1);
    await gw.idle();

    // Assert: the second was signed for a URL Twilio did not call.
    expect([accepted.statusCode, refused.statusCode]).toEqual([200, 403]);
    expect(reply?.body).toBe('Echo: through the function URL');
    expect(twilio.delivered(user)).toHaveLength(1);
  });

  it('rejects a bad, missing or misplaced signature with 403 and enqueues nothing', async () => {
    // Arrange
    const user = USERS.bad;
    const url = `${PUBLIC_BASE_URL}/twilio/messaging`;
    const params = twilio.messageParams({ from: user, to: OUR_NUMBER, body: 'let me in' });
    const before = llm.chatCalls;
    // Act
    const bad = await twilio.post(url, params, { signature: 'AAAAAAAAAAAAAAAAAAAAAAAAAAA=' });
    const missing = await twilio.post(url, params, { signature: null });
    const otherUrl = await twilio.post(url, params, { signedUrl: 'http://gateway.example.com/twilio/messaging' });
    const tampered = await twilio.post(url, { ...params, Body: 'something else' }, { signature: twilio.sign(url, params) });
    await gw.idle();
    // Assert
    for (const res of [bad, missing, otherUrl, tampered]) {
      expect(res.status).toBe(403);
      expect(res.body).not.toContain('let me in');
    }
    expect(llm.chatCalls).toBe(before);
    expect(await gw.messages.get({ channel: 'twilio', userId: user, msgKey: params.MessageSid ?? '' }, Date.now())).toBeUndefined();
    expect(twilio.attempts.filter((m) => m.to === user)).toHaveLength(0);
  });

  it('sends one reply for a duplicated MessageSid', async () => {
    // Arrange
    const user = USERS.dup;
    const params = twilio.messageParams({ from: user, to: OUR_NUMBER, body: 'only once please' });
    const url = `${PUBLIC_BASE_URL}/twilio/messaging`;
    // Act: the same MessageSid three times, two at once.
    const results = await Promise.all([twilio.post(url, params), twilio.post(url, params)]);
    results.push(await twilio.post(url, params));
    await twilio.waitForDelivered(user, 1);
    await gw.idle();
    // Assert
    expect(results.map((r) => r.status)).toEqual([200, 200, 200]);
    expect(callsFor('only once please')).toHaveLength(1);
    expect(twilio.attempts.filter((m) => m.to === user)).toHaveLength(1);
  });

  it('sends a long answer in parts of at most 1,600 characters, in order', async () => {
    // Arrange
    const user = USERS.long;
    const paragraph = 'This sentence is part of a rather long answer about many things. '.repeat(10).trim();
    const answer = Array.from({ length: 9 }, (_, i) => `Paragraph ${i + 1}. ${paragraph}`).join('\n\n');
    llm.answer = () => answer;
    // Act
    await twilio.sendMessage({ from: user, to: OUR_NUMBER, body: 'tell me a lot' });
    await gw.idle();
    const parts = twilio.delivered(user);
    // Assert
    expect(answer.length).toBeGreaterThan(3 * TWILIO_MAX_CHARS);
    expect(parts.length).toBeGreaterThanOrEqual(4);
    for (const part of parts) expect((part.body ?? '').length).toBeLessThanOrEqual(TWILIO_MAX_CHARS);
    expect(parts.map((p) => p.body).join('\n\n')).toBe(answer);
  });

  it('resumes after a failed part without resending the delivered ones', async () => {
    // Arrange: the second part fails once with a 500; SQS redelivers the job.
    const user = USERS.resume;
    const answer = Array.from({ length: 3 }, (_, i) => `Part ${i + 1}: ${'words to fill the part '.repeat(60).trim()}`).join('\n\n');
    llm.answer = () => answer;
    let seen = 0;
    twilio.failNext((m) => m.to === user && ++seen === 2, { status: 500, code: 20500, message: 'Internal Server Error' });
    // Act
    await twilio.sendMessage({ from: user, to: OUR_NUMBER, body: 'three parts please' });
    const delivered = await twilio.waitForDelivered(user, 3, 30_000);
    await gw.idle();
    // Assert
    expect(delivered.map((m) => m.body?.slice(0, 7))).toEqual(['Part 1:', 'Part 2:', 'Part 3:']);
    expect(twilio.attempts.filter((m) => m.to === user)).toHaveLength(4);
    expect(callsFor('three parts please')).toHaveLength(1);
  });

  it('replies to WhatsApp from the WhatsApp sender', async () => {
    const user = `whatsapp:${USERS.wa}`;
    await twilio.sendMessage({ from: user, to: WA_SENDER, body: 'hi on whatsapp' });
    const [reply] = await twilio.waitForDelivered(user, 1);
    expect(reply).toMatchObject({ to: user, from: WA_SENDER, body: 'Echo: hi on whatsapp' });
    // WhatsApp sends carry a status callback, where a late 63016 would arrive.
    expect(reply?.statusCallback).toMatch(/^https:\/\/gateway\.example\.com\/twilio\/messaging\/status\?k=SM/);
  });

  it.each([['sync' as const], ['async' as const]])(
    'handles 63016 (%s): template once, answer kept and delivered first when the user writes again',
    async (mode) => {
      // Arrange: the user's 24-hour window is closed.
      const user = `whatsapp:${mode === 'sync' ? USERS.waSync : USERS.waAsync}`;
      twilio.sessionClosed.set(user, mode);
      // Act 1: an answer meets the closed window.
      await twilio.sendMessage({ from: user, to: WA_SENDER, body: `old question ${mode}` });
      await gw.idle();
      const settled = (): boolean =>
        twilio.attempts.some((m) => m.to === user && m.contentSid !== undefined) && (mode === 'sync' || twilio.statusCallbacks.length > 0);
      for (let i = 0; i < 200 && !settled(); i++) await new Promise((r) => setTimeout(r, 20));
      const templates = twilio.attempts.filter((m) => m.to === user && m.contentSid !== undefined);
      // Assert 1
      expect(twilio.delivered(user).filter((m) => m.body !== undefined)).toHaveLength(0);
      expect(templates).toHaveLength(1);
      expect(templates[0]).toMatchObject({ contentSid: TEMPLATE_SID, from: WA_SENDER });
      if (mode === 'async') expect(twilio.statusCallbacks.filter((c) => c.url.includes('/status'))).toEqual(expect.arrayContaining([expect.objectContaining({ status: 200 })]));
      // Act 2: the user answers the template, which reopens the window.
      twilio.sessionClosed.delete(user);
      await twilio.sendMessage({ from: user, to: WA_SENDER, body: `new question ${mode}` });
      await gw.idle();
      // Assert 2: the kept answer first, then the new one; the template was not sent again.
      expect(twilio.delivered(user).filter((m) => m.body !== undefined).map((m) => m.body)).toEqual([`Echo: old question ${mode}`, `Echo: new question ${mode}`]);
      expect(twilio.attempts.filter((m) => m.to === user && m.contentSid !== undefined)).toHaveLength(1);
    },
  );

  it('tells a number not on ALLOWED_USERS that it is not enrolled, without calling the model', async () => {
    const before = llm.chatCalls;
    await twilio.sendMessage({ from: USERS.stranger, to: OUR_NUMBER, body: 'who are you?' });
    const [reply] = await twilio.waitForDelivered(USERS.stranger, 1);
    expect(reply?.body).toBe(NOT_ENROLLED_TEXT);
    expect(llm.chatCalls).toBe(before);
  });

  it('shows an image to the vision model', async () => {
    // Arrange
    const user = USERS.image;
    const png = Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex');
    const url = twilio.addMedia(png, 'image/png');
    llm.answer = (req) => (JSON.stringify(req.messages.at(-1)?.content).includes('data:image/png;base64,') ? 'I see a picture' : 'no picture');
    // Act
    await twilio.sendMessage({ from: user, to: OUR_NUMBER, body: 'what is this?', media: [{ url, contentType: 'image/png' }] });
    const [reply] = await twilio.waitForDelivered(user, 1);
    // Assert
    expect(reply?.body).toBe('I see a picture');
  });

  it('transcribes a voice note and answers the transcription', async () => {
    const user = USERS.audio;
    const url = twilio.addMedia(Buffer.from('OggS fake opus'), 'audio/ogg');
    llm.transcriptionText = 'what time is it';
    await twilio.sendMessage({ from: user, to: OUR_NUMBER, body: '', media: [{ url, contentType: 'audio/ogg' }] });
    const [reply] = await twilio.waitForDelivered(user, 1);
    expect(reply?.body).toBe('Echo: what time is it');
    expect(llm.transcriptionRequests.at(-1)?.filename).toBe('media.ogg');
  });

  it('answers unsupported media politely without calling the model', async () => {
    const user = USERS.video;
    const url = twilio.addMedia(Buffer.from('not really a video'), 'video/mp4');
    const before = llm.chatCalls;
    await twilio.sendMessage({ from: user, to: OUR_NUMBER, body: '', media: [{ url, contentType: 'video/mp4' }] });
    const [reply] = await twilio.waitForDelivered(user, 1);
    expect(reply?.body).toBe(UNSUPPORTED_MEDIA_TEXT);
    expect(llm.chatCalls).toBe(before);
  });

  describe('sign-up by SMS', () => {
    it('registers the texter through save_contact and lists them at GET /admin/contacts', async () => {
      // Arrange: the model calls the tool once, then confirms.
      const user = USERS.signup;
      llm.toolCalls = callToolsOnce({ name: 'save_contact', arguments: JSON.stringify({ name: 'Ada Lovelace' }) });
      llm.answer = (req) => {
        const tool = req.messages.find((m) => m.role === 'tool');
        return tool ? `Done! ${tool.text}` : 'no tool result';
      };
      // Act
      await twilio.sendMessage({ from: user, to: OUR_NUMBER, body: 'Please register me, my name is Ada Lovelace' });
      const [reply] = await twilio.waitForDelivered(user, 1);
      const listed = await fetch(`${gw.http.url}/admin/contacts`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
      const anonymous = await fetch(`${gw.http.url}/admin/contacts`);
      const wrong = await fetch(`${gw.http.url}/admin/contacts`, { headers: { authorization: 'Bearer nope' } });
      // Assert
      expect(llm.chatRequests.at(-1)?.toolNames).toContain('save_contact');
      expect(reply?.body).toMatch(/Saved: Ada Lovelace, \+15551230013/);
      expect(listed.status).toBe(200);
      const body: unknown = await listed.json();
      expect(body).toEqual({
        contacts: [expect.objectContaining({ phone: user, name: 'Ada Lovelace', channel: 'twilio', registeredBy: user })],
        nextCursor: null,
      });
      expect(anonymous.status).toBe(401);
      expect(anonymous.headers.get('www-authenticate')).toMatch(/^Bearer/);
      expect(wrong.status).toBe(401);
    });
  });
});
