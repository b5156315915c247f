/**
 * WhatsApp end to end with another configuration: a vision-capable model
 * (`OPENAI_VISION=1`), no re-engagement template, and `ALLOWED_USERS` set.
 */
import { createWhatsAppHandler } from '../../../functions/whatsapp';
import { WhatsAppNote } from '../../../lib/channels/whatsapp/adapter';
import { sampleTextWebhook, sampleWamid } from '../../../local/samples/whatsapp';
import { NOT_ENROLLED_TEXT } from '../../../lib/core/turn';
import { silentLog } from '../../../lib/types';
import { startFakeGraph, type FakeGraph } from '../../../local/fakes/fake-graph';
import { startFakeOpenAi, type FakeOpenAi } from '../../fakes/fake-openai';
import { startGateway, type Gateway } from '../../../local/gateway';
import { FIXTURE_PHONE_NUMBER_ID as PNID, fixtureWith } from './support';
import { MetaClient } from '../../../local/fakes/meta-client';

const APP_SECRET = 'vision_app_secret';
const ACCESS_TOKEN = 'EAAG-vision-token';
const ALLOWED = ['+15550200001', '15550200002'];

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The `image_url.url` parts of a chat message's content. */
function imageUrls(content: unknown): string[] {
  if (!Array.isArray(content)) return [];
  const urls: string[] = [];
  for (const part of content) {
    const image = isRecord(part) && part.type === 'image_url' ? part.image_url : undefined;
    if (isRecord(image) && typeof image.url === 'string') urls.push(image.url);
  }
  return urls;
}

describe('WhatsApp with vision, without a template, with ALLOWED_USERS', () => {
  let llm: FakeOpenAi;
  let graph: FakeGraph;
  let gw: Gateway;
  let meta: MetaClient;

  beforeAll(async () => {
    llm = await startFakeOpenAi();
    graph = await startFakeGraph({ accessToken: ACCESS_TOKEN });
    gw = await startGateway({
      env: {
        OPENAI_API_KEY: 'sk-test',
        OPENAI_BASE_URL: llm.baseUrl,
        OPENAI_MAX_RETRIES: '0',
        OPENAI_VISION: '1',
        ALLOWED_USERS: ALLOWED.join(','),
        WHATSAPP_VERIFY_TOKEN: 'vt',
        WHATSAPP_APP_SECRET: APP_SECRET,
        WHATSAPP_ACCESS_TOKEN: ACCESS_TOKEN,
        WHATSAPP_PHONE_NUMBER_ID: PNID,
        WHATSAPP_GRAPH_BASE: graph.baseUrl,
        WHATSAPP_PAIR_INTERVAL_MS: '50',
      },
      routes: (cfg) => ({ '/whatsapp': createWhatsAppHandler(cfg, { log: silentLog }) }),
      visibilityTimeoutSec: 2,
    });
    meta = new MetaClient(`${gw.http.url}/whatsapp`, APP_SECRET);
  });

  afterAll(async () => {
    await graph.close();
    await gw.stop();
    await llm.close();
  });

  beforeEach(() => {
    graph.reset();
  });

  it('passes an image with its caption to the vision model', async () => {
    // Arrange
    const user = '15550200001';
    const jpeg = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0xff, 0xd9]);
    graph.addMedia('1003383421387256', jpeg, 'image/jpeg');
    llm.answer = (req) => `I see: ${req.lastUserText}`;
    const { body } = fixtureWith('image.json', { from: { '16505551234': user } });
    // Act
    await meta.post(body);
    await gw.idle();
    // Assert
    const lastUser = [...llm.lastChatRequest.messages].reverse().find((m) => m.role === 'user');
    expect(lastUser?.text).toBe('What plant is this?');
    expect(imageUrls(lastUser?.content)).toEqual([`data:image/jpeg;base64,${jpeg.toString('base64')}`]);
    expect(graph.textsTo(user)).toEqual(['I see: What plant is this?']);
  });

  it('on 131047 without a template sends nothing else and closes the record', async () => {
    // Arrange
    const user = '15550200002';
    const id = sampleWamid();
    graph.failWhen((m) => m.to === user, { code: 131047 });
    const batches = gw.batches.length;
    // Act
    await meta.post(sampleTextWebhook({ phoneNumberId: PNID, from: user, text: 'hello?', id }));
    await gw.idle();
    // Assert
    expect(graph.attempts.filter((m) => m.to === user).map((m) => m.type)).toEqual(['text']);
    expect(await gw.messages.get({ channel: 'whatsapp', userId: user, msgKey: id }, Date.now())).toMatchObject({
      note: WhatsAppNote.NO_TEMPLATE,
      pending: false,
    });
    expect(gw.batches.length - batches).toBe(1);
  });

  it('tells a phone number not on ALLOWED_USERS that it is not enrolled, without the model', async () => {
    const user = '15550200099';
    const calls = llm.chatCalls;
    await meta.post(sampleTextWebhook({ phoneNumberId: PNID, from: user, text: 'let me in', id: sampleWamid() }));
    await gw.idle();
    expect(graph.textsTo(user)).toEqual([NOT_ENROLLED_TEXT]);
    expect(llm.chatCalls).toBe(calls);
  });

  it('ignores messages addressed to another phone number of the same app', async () => {
    const user = '15550200001';
    const batches = gw.batches.length;
    const res = await meta.post(sampleTextWebhook({ phoneNumberId: '999999999999999', from: user, text: 'wrong line', id: sampleWamid() }));
    await gw.idle();
    expect(res.status).toBe(200);
    expect(gw.batches.length).toBe(batches);
    expect(graph.attempts).toEqual([]);
  });
});
