/**
 * The simulator's server over real HTTP on 127.0.0.1: its page API, the vendors it plays
 * (checked by a stand-in gateway that verifies every request with the gateway's own signature
 * code) and its outbound API stand-ins (called here as the gateway's worker calls them).
 */
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { loadConfig, type AppConfig } from '../../../lib/config';
import { publicUrl, verifyTwilioSignature } from '../../../lib/channels/twilio/signature';
import { parseForm } from '../../../lib/channels/twilio/form';
import { aesKeyFromEncodingAesKey, buildEncryptedReply, decryptAndCheck } from '../../../lib/channels/wechat/crypto';
import { verifyMsgSignature, verifySignature } from '../../../lib/channels/wechat/signature';
import { verifyMetaSignature } from '../../../lib/channels/whatsapp/signature';
import type { Conversation } from '../../../local/simulator/conversations';
import { simulatorEnv } from '../../../local/simulator/env';
import { startSimulator, type Simulator } from '../../../local/simulator/server';
import { WECHAT_UNAVAILABLE } from '../../../local/simulator/vendors';

type GatewayHandler = (req: IncomingMessage, body: Buffer, res: ServerResponse) => unknown;

function isConversation(value: unknown): value is Conversation {
  return typeof value === 'object' && value !== null && 'lines' in value && Array.isArray(value.lines);
}

function cdata(xml: string, tag: string): string {
  return new RegExp(`<${tag}><!\\[CDATA\\[([\\s\\S]*?)\\]\\]></${tag}>`).exec(xml)?.[1] ?? '';
}

describe('channel simulator server', () => {
  let sim: Simulator;
  let gateway: Server;
  let gatewayUrl: string;
  let cfg: AppConfig;
  /** What the stand-in gateway does with the next requests (set per test). */
  let onRequest: GatewayHandler = (_req, _body, res) => res.end('success');
  const received: { path: string; query: URLSearchParams; body: Buffer; headers: IncomingMessage['headers'] }[] = [];

  beforeAll(async () => {
    gateway = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        const url = new URL(req.url ?? '/', 'http://gateway');
        received.push({ path: url.pathname, query: url.searchParams, body, headers: req.headers });
        void Promise.resolve(onRequest(req, body, res)).catch(() => res.destroy());
      });
    });
    await new Promise<void>((resolve) => gateway.listen(0, '127.0.0.1', resolve));
    const address = gateway.address();
    if (address === null || typeof address === 'string') throw new Error('no port');
    gatewayUrl = `http://127.0.0.1:${address.port}`;
    sim = await startSimulator({ host: '127.0.0.1', port: 0 });
    const { add, simulated } = simulatorEnv({}, sim.url, gatewayUrl);
    cfg = loadConfig(add);
    // WeChat's 5 s is scaled down to 400 ms here.
    sim.configure({ cfg, gatewayUrl, simulated, wechatLimitMs: 400 });
  });

  afterAll(async () => {
    await sim.stop();
    gateway.closeAllConnections();
    await new Promise<void>((resolve) => gateway.close(() => resolve()));
  });

  beforeEach(() => {
    received.length = 0;
  });

  async function api(path: string, body?: unknown): Promise<{ status: number; body: unknown }> {
    const res = await fetch(`${sim.url}${path}`, body === undefined ? {} : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: res.status, body: await res.json() };
  }

  async function conversation(channel: string, user: string): Promise<Conversation> {
    const { body } = await api(`/api/conversation?channel=${channel}&user=${user}`);
    if (!isConversation(body)) throw new Error(`not a conversation: ${JSON.stringify(body)}`);
    return body;
  }

  async function until(channel: string, user: string, done: (c: Conversation) => boolean, timeoutMs = 5000): Promise<Conversation> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const conv = await conversation(channel, user);
      if (done(conv)) return conv;
      if (Date.now() > deadline) throw new Error(`conversation never got there: ${JSON.stringify(conv, null, 1)}`);
      await new Promise((r) => setTimeout(r, 30));
    }
  }

  const bot = (c: Conversation): string[] => c.lines.filter((l) => l.from === 'bot').map((l) => l.text);
  const steps = (c: Conversation): string[] => c.lines.flatMap((l) => l.timeline.map((s) => s.text));

  describe('as WeChat', () => {
    it('signs a plaintext message and shows the passive reply', async () => {
      // Arrange
      const wechat = cfg.wechat;
      if (!wechat) throw new Error('no wechat');
      onRequest = (req, body, res) => {
        const q = new URL(req.url ?? '/', 'http://g').searchParams;
        if (!verifySignature(wechat.token, q.get('timestamp'), q.get('nonce'), q.get('signature'))) return void res.writeHead(403).end();
        const xml = body.toString('utf8');
        res.writeHead(200, { 'content-type': 'text/xml' }).end(`<xml><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[echo: ${cdata(xml, 'Content')} from ${cdata(xml, 'FromUserName')}]]></Content></xml>`);
      };

      // Act
      const sent = await api('/api/send', { channel: 'wechat', user: 'wei', text: 'ni hao' });
      const conv = await until('wechat', 'wei', (c) => bot(c).length > 0);

      // Assert
      expect(sent.status).toBe(202);
      expect(bot(conv)).toEqual(['echo: ni hao from oSim_wei00000000000000000000']);
      expect(conv.vendorId).toMatch(/^o[\w-]{27}$/);
      expect(steps(conv).some((s) => s.startsWith('delivery 1: passive reply after'))).toBe(true);
      expect(received).toHaveLength(1);
    });

    it('encrypts in safe mode and opens the encrypted reply', async () => {
      // Arrange
      const wechat = cfg.wechat;
      if (!wechat) throw new Error('no wechat');
      const key = aesKeyFromEncodingAesKey(wechat.encodingAesKey);
      onRequest = (req, body, res) => {
        const q = new URL(req.url ?? '/', 'http://g').searchParams;
        const encrypt = cdata(body.toString('utf8'), 'Encrypt');
        const signed = q.get('encrypt_type') === 'aes' && verifyMsgSignature(wechat.token, q.get('timestamp'), q.get('nonce'), encrypt, q.get('msg_signature'));
        if (!signed) return void res.writeHead(403).end();
        const inner = decryptAndCheck(encrypt, [key], wechat.appId).xml;
        const replyXml = `<xml><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[secret: ${cdata(inner, 'Content')}]]></Content></xml>`;
        res.writeHead(200).end(buildEncryptedReply({ replyXml, appId: wechat.appId, key, token: wechat.token, timestampSec: 1_700_000_000, nonce: 'n1', random16: Buffer.alloc(16, 7) }));
      };

      // Act
      await api('/api/send', { channel: 'wechat', user: 'safe', text: 'psst', safeMode: true });
      const conv = await until('wechat', 'safe', (c) => bot(c).length > 0);

      // Assert
      expect(bot(conv)).toEqual(['secret: psst']);
      expect(received[0]?.body.toString('utf8')).not.toContain('psst');
    });

    it('delivers the same message three times when no reply comes in time, then shows WeChat\'s failure', async () => {
      // Arrange: the gateway holds every delivery past the (scaled) 5 s.
      onRequest = async (_req, _body, res) => {
        await new Promise((r) => setTimeout(r, 700));
        res.end('success');
      };

      // Act
      await api('/api/send', { channel: 'wechat', user: 'slow', text: 'anyone?' });
      const conv = await until('wechat', 'slow', (c) => c.lines.some((l) => l.from === 'note'));

      // Assert
      expect(conv.lines.find((l) => l.from === 'note')?.text).toBe(WECHAT_UNAVAILABLE);
      expect(received).toHaveLength(3);
      const msgIds = received.map((r) => /<MsgId>(\d+)<\/MsgId>/.exec(r.body.toString('utf8'))?.[1]);
      expect(new Set(msgIds).size).toBe(1);
      expect(steps(conv).filter((s) => s.includes('no answer within 0.4 s'))).toHaveLength(3);
    });

    it('shows custom/send messages and the typing indicator from the WeChat API stand-in', async () => {
      // Arrange: a conversation exists; the gateway acknowledges with "success".
      onRequest = (_req, _body, res) => res.end('success');
      await api('/api/send', { channel: 'wechat', user: 'cs', text: 'push please' });
      const { vendorId } = await until('wechat', 'cs', (c) => steps(c).some((s) => s.includes('"success"')));
      const api1 = `${sim.url}/wechat-api/cgi-bin`;

      // Act
      const bad = await (await fetch(`${api1}/token?grant_type=client_credential&appid=${cfg.wechat?.appId ?? ''}&secret=wrong`)).json();
      const token: unknown = await (await fetch(`${api1}/token?grant_type=client_credential&appid=${cfg.wechat?.appId ?? ''}&secret=${cfg.wechat?.appSecret ?? ''}`)).json();
      const accessToken = typeof token === 'object' && token !== null && 'access_token' in token && typeof token.access_token === 'string' ? token.access_token : '';
      const post = async (path: string, body: unknown, t = accessToken): Promise<unknown> =>
        (await fetch(`${api1}/${path}?access_token=${t}`, { method: 'POST', body: JSON.stringify(body) })).json();
      const typing = await post('message/custom/typing', { touser: vendorId, command: 'Typing' });
      const typingConv = await conversation('wechat', 'cs');
      const sent = await post('message/custom/send', { touser: vendorId, msgtype: 'text', text: { content: 'pushed part' } });
      const stale = await post('message/custom/send', { touser: vendorId, msgtype: 'text', text: { content: 'x' } }, 'not-a-token');
      const conv = await conversation('wechat', 'cs');

      // Assert
      expect(bad).toMatchObject({ errcode: 40001 });
      expect(typing).toEqual({ errcode: 0, errmsg: 'ok' });
      expect(typingConv.typing).toBe(true);
      expect(sent).toEqual({ errcode: 0, errmsg: 'ok' });
      expect(stale).toMatchObject({ errcode: 40001 });
      expect(bot(conv)).toEqual(['pushed part']);
      expect(conv.typing).toBe(false);
      expect(steps(conv)).toContain('custom/send part 1 (11 bytes)');
    });

    it('sends the sample voice message and serves it on media/get', async () => {
      // Arrange
      onRequest = (_req, _body, res) => res.end('success');

      // Act
      await api('/api/send', { channel: 'wechat', user: 'voice', media: 'voice' });
      await until('wechat', 'voice', (c) => steps(c).some((s) => s.includes('"success"')));
      const xml = received[0]?.body.toString('utf8') ?? '';
      const tokenRes: unknown = await (await fetch(`${sim.url}/wechat-api/cgi-bin/token?appid=${cfg.wechat?.appId ?? ''}&secret=${cfg.wechat?.appSecret ?? ''}`)).json();
      const token = typeof tokenRes === 'object' && tokenRes !== null && 'access_token' in tokenRes ? String(tokenRes.access_token) : '';
      const media = await fetch(`${sim.url}/wechat-api/cgi-bin/media/get?access_token=${token}&media_id=${cdata(xml, 'MediaId')}`);

      // Assert
      expect(cdata(xml, 'MsgType')).toBe('voice');
      expect(cdata(xml, 'Format')).toBe('amr');
      expect(Buffer.from(await media.arrayBuffer())).toEqual(readFileSync(join(__dirname, '../../../local/simulator/samples/voice.amr')));
    });
  });

  describe('as Meta (WhatsApp)', () => {
    it('signs the webhook, takes read receipts with typing, messages and templates on the Graph stand-in', async () => {
      // Arrange
      const whatsapp = cfg.whatsapp;
      if (!whatsapp) throw new Error('no whatsapp');
      let verified = false;
      onRequest = (req, body, res) => {
        verified = verifyMetaSignature(whatsapp.appSecret, body, typeof req.headers['x-hub-signature-256'] === 'string' ? req.headers['x-hub-signature-256'] : undefined);
        res.writeHead(verified ? 200 : 401).end();
      };
      const graph = `${sim.url}/graph/${whatsapp.graphVersion}/${whatsapp.phoneNumberId}/messages`;
      const auth = { authorization: `Bearer ${whatsapp.accessToken}`, 'content-type': 'application/json' };

      // Act
      await api('/api/send', { channel: 'whatsapp', user: 'wanda', text: 'hola' });
      const sent = await until('whatsapp', 'wanda', (c) => steps(c).some((s) => s.startsWith('webhook: HTTP 200')));
      const webhook: unknown = JSON.parse(received[0]?.body.toString('utf8') ?? '{}');
      const wamid = /"id":"(wamid\.[^"]+)"/.exec(JSON.stringify(webhook))?.[1] ?? '';
      const read = await fetch(graph, { method: 'POST', headers: auth, body: JSON.stringify({ messaging_product: 'whatsapp', status: 'read', message_id: wamid, typing_indicator: { type: 'text' } }) });
      const typingConv = await conversation('whatsapp', 'wanda');
      const text = await fetch(graph, { method: 'POST', headers: auth, body: JSON.stringify({ messaging_product: 'whatsapp', to: sent.vendorId, type: 'text', text: { body: 'part one' } }) });
      const template = await fetch(graph, {
        method: 'POST',
        headers: auth,
        body: JSON.stringify({ messaging_product: 'whatsapp', to: sent.vendorId, type: 'template', template: { name: 'hello_again', language: { code: 'en_US' } } }),
      });
      const noToken = await fetch(graph, { method: 'POST', body: JSON.stringify({ messaging_product: 'whatsapp', to: sent.vendorId, type: 'text', text: { body: 'x' } }) });
      const stranger = await fetch(graph, { method: 'POST', headers: auth, body: JSON.stringify({ messaging_product: 'whatsapp', to: '19999999999', type: 'text', text: { body: 'x' } }) });
      const conv = await conversation('whatsapp', 'wanda');

      // Assert
      expect(verified).toBe(true);
      expect(await read.json()).toEqual({ success: true });
      expect(typingConv.typing).toBe(true);
      expect(typingConv.lines[0]?.read).toBe(true);
      expect(JSON.stringify(await text.json())).toMatch(/^\{"messaging_product":"whatsapp","contacts":\[.*\],"messages":\[\{"id":"wamid\.[A-Z0-9]+"\}\]\}$/);
      expect(template.status).toBe(200);
      expect(bot(conv)).toEqual(['part one', '[template "hello_again" (en_US)]']);
      expect(conv.typing).toBe(false);
      expect(noToken.status).toBe(401);
      expect(await noToken.json()).toMatchObject({ error: { code: 190 } });
      expect(stranger.status).toBe(400);
    });

    it('with the 24 h window closed, refuses free-form messages with 131047 and shows the template', async () => {
      // Arrange
      const whatsapp = cfg.whatsapp;
      if (!whatsapp) throw new Error('no whatsapp');
      onRequest = (_req, _body, res) => res.writeHead(200).end();
      await api('/api/send', { channel: 'whatsapp', user: 'late', text: 'hello?' });
      const { vendorId } = await until('whatsapp', 'late', (c) => steps(c).some((s) => s.startsWith('webhook: HTTP 200')));
      const graph = `${sim.url}/graph/${whatsapp.graphVersion}/${whatsapp.phoneNumberId}/messages`;
      const auth = { authorization: `Bearer ${whatsapp.accessToken}`, 'content-type': 'application/json' };

      // Act
      const closed = await api('/api/window', { user: 'late', closed: true });
      const text = await fetch(graph, { method: 'POST', headers: auth, body: JSON.stringify({ messaging_product: 'whatsapp', to: vendorId, type: 'text', text: { body: 'too late' } }) });
      const template = await fetch(graph, {
        method: 'POST',
        headers: auth,
        body: JSON.stringify({ messaging_product: 'whatsapp', to: vendorId, type: 'template', template: { name: whatsapp.reengageTemplate, language: { code: 'en_US' } } }),
      });
      const conv = await conversation('whatsapp', 'late');

      // Assert
      expect(closed.body).toEqual({ closed: true });
      expect(conv.windowClosed).toBe(true);
      expect(text.status).toBe(400);
      expect(await text.json()).toMatchObject({ error: { code: 131047 } });
      expect(template.status).toBe(200);
      expect(bot(conv)).toEqual(['[template "local_reengage" (en_US)]']);
      expect(steps(conv)).toContain('Graph /messages text → error 131047 (24 h window closed)');
    });

    it('serves the sample image through the two-step media download', async () => {
      // Arrange
      const whatsapp = cfg.whatsapp;
      if (!whatsapp) throw new Error('no whatsapp');
      onRequest = (_req, _body, res) => res.writeHead(200).end();
      const auth = { authorization: `Bearer ${whatsapp.accessToken}` };

      // Act
      await api('/api/send', { channel: 'whatsapp', user: 'pic', media: 'image' });
      await until('whatsapp', 'pic', (c) => steps(c).some((s) => s.startsWith('webhook: HTTP 200')));
      const mediaId = /"image":\{[^}]*"id":"([^"]+)"/.exec(received[0]?.body.toString('utf8') ?? '')?.[1] ?? '';
      const info: unknown = await (await fetch(`${sim.url}/graph/${whatsapp.graphVersion}/${mediaId}`, { headers: auth })).json();
      const url = typeof info === 'object' && info !== null && 'url' in info && typeof info.url === 'string' ? info.url : '';
      const download = await fetch(url, { headers: auth });
      const refused = await fetch(url);

      // Assert
      expect(info).toMatchObject({ mime_type: 'image/jpeg', id: mediaId });
      expect(Buffer.from(await download.arrayBuffer())).toEqual(readFileSync(join(__dirname, '../../../local/simulator/samples/photo.jpg')));
      expect(refused.status).toBe(401);
    });
  });

  describe('as Twilio', () => {
    function twilioVerified(req: IncomingMessage, body: Buffer): boolean {
      const url = new URL(req.url ?? '/', 'http://g');
      const signature = typeof req.headers['x-twilio-signature'] === 'string' ? req.headers['x-twilio-signature'] : '';
      return verifyTwilioSignature(cfg.twilio?.authToken ?? '', signature, publicUrl(cfg.publicBaseUrl, url.pathname, url.search.slice(1)), parseForm(body));
    }

    it('signs an SMS webhook and shows Messages.json sends; refuses other credentials', async () => {
      // Arrange
      const twilio = cfg.twilio;
      if (!twilio) throw new Error('no twilio');
      let verified = false;
      onRequest = (req, body, res) => {
        verified = twilioVerified(req, body);
        res.writeHead(200, { 'content-type': 'text/xml' }).end('<?xml version="1.0" encoding="UTF-8"?><Response/>');
      };
      const messages = `${sim.url}/twilio/2010-04-01/Accounts/${twilio.accountSid}/Messages.json`;
      const basic = `Basic ${Buffer.from(`${twilio.accountSid}:${twilio.authToken}`).toString('base64')}`;

      // Act
      await api('/api/send', { channel: 'sms', user: 'sam', text: 'hi there' });
      const conv0 = await until('sms', 'sam', (c) => steps(c).some((s) => s.startsWith('webhook: HTTP 200')));
      const ok = await fetch(messages, { method: 'POST', headers: { authorization: basic }, body: new URLSearchParams({ To: conv0.vendorId, From: twilio.from, Body: 'sms answer' }) });
      const wrong = await fetch(messages, { method: 'POST', headers: { authorization: 'Basic eDp5' }, body: new URLSearchParams({ To: conv0.vendorId, Body: 'x' }) });
      const conv = await conversation('sms', 'sam');

      // Assert
      expect(verified).toBe(true);
      expect(parseForm(received[0]?.body ?? Buffer.alloc(0))).toMatchObject({ Body: 'hi there', From: conv0.vendorId, To: twilio.from });
      expect(ok.status).toBe(201);
      expect(bot(conv)).toEqual(['sms answer']);
      expect(wrong.status).toBe(401);
    });

    it('places a call, hears the greeting, says something and hears the answer', async () => {
      // Arrange: a gateway that greets, then answers what was said.
      const publicBase = cfg.publicBaseUrl;
      const signedOk: boolean[] = [];
      onRequest = (req, body, res) => {
        signedOk.push(twilioVerified(req, body));
        const path = new URL(req.url ?? '/', 'http://g').pathname;
        const said = parseForm(body).SpeechResult;
        const twiml =
          path === '/twilio/voice'
            ? `<Response><Gather input="speech" action="${publicBase}/twilio/voice/gather?t=1"><Say>Hello &amp; welcome</Say></Gather></Response>`
            : `<Response><Say>You said ${typeof said === 'string' ? said : '?'}</Say><Gather input="speech" action="${publicBase}/twilio/voice/gather?t=2"/></Response>`;
        res.writeHead(200, { 'content-type': 'text/xml' }).end(twiml);
      };

      // Act
      await api('/api/send', { channel: 'voice', user: 'val', text: 'what time is it' });
      const conv = await until('voice', 'val', (c) => bot(c).length >= 2);
      const hungUp = await api('/api/hangup', { user: 'val' });

      // Assert
      expect(signedOk).toEqual([true, true]);
      expect(bot(conv)).toEqual(['Hello & welcome', 'You said what time is it']);
      expect(conv.lines.map((l) => l.from)).toEqual(['note', 'bot', 'user', 'bot']);
      expect(hungUp.body).toEqual({ ended: true });
    });
  });

  describe('page API', () => {
    it.each([
      [{ channel: 'fax', user: 'u', text: 'x' }, /channel must be/],
      [{ channel: 'sms', user: 'no spaces', text: 'x' }, /user must be/],
      [{ channel: 'sms', user: 'u', text: '   ' }, /text must be/],
      [{ channel: 'sms', user: 'u', media: 'voice' }, /sms has no voice/],
      [{ channel: 'voice', user: 'u', media: 'image' }, /voice has no image/],
      [{ channel: 'sms', user: 'u', media: 'video' }, /media must be image or voice/],
    ])('refuses %j with a clear error and sends nothing', async (body, error) => {
      const res = await api('/api/send', body);

      expect(res.status).toBe(400);
      expect(JSON.stringify(res.body)).toMatch(error);
      expect(received).toHaveLength(0);
    });

    it('refuses a body over 1 MiB with 413', async () => {
      const res = await fetch(`${sim.url}/api/send`, { method: 'POST', body: JSON.stringify({ channel: 'sms', user: 'big', text: 'x'.repeat(1_100_000) }) });

      expect(res.status).toBe(413);
      expect(received).toHaveLength(0);
    });

    it('serves the page and its files, and nothing else from disk', async () => {
      const page = await fetch(`${sim.url}/`);
      const script = await fetch(`${sim.url}/app.js`);
      const traversal = await fetch(`${sim.url}/../server.ts`);
      const config = await api('/api/config');

      expect(await page.text()).toContain('aria-label="Message"');
      expect(script.headers.get('content-type')).toMatch(/javascript/);
      expect(traversal.status).toBe(404);
      expect(config.body).toMatchObject({ channels: { wechat: true, whatsapp: true, sms: true, voice: true }, wechat: { replyMode: 'passive', safeMode: true, limitMs: 400 } });
    });
  });
});
