/**
 * openRequest / toJob: verification, freshness, safe-mode enforcement, the openid check
 * and the message → job mapping, as pure functions of configuration and request.
 */
import { loadConfig, type WeChatConfig } from '../../../lib/config';
import type { HttpRequest } from '../../../lib/channels/http';
import { aesKeyFromEncodingAesKey, buildEncryptedReply } from '../../../lib/channels/wechat/crypto';
import { openRequest, toJob } from '../../../lib/channels/wechat/request';
import { wechatSignature } from '../../../lib/channels/wechat/signature';
import { cdata } from '../../../lib/channels/wechat/xml-reply';
import { readVectors, vectorField, vectorSection } from '../../support/vectors';

const TOKEN = 'spamtest';
const APP_ID = 'wx2c2769f8efd9abc2';
const KEY = 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG';
const ACCOUNT = 'gh_10f6c3c3ac5a';
const NOW_MS = Date.UTC(2026, 11, 3, 8, 0, 0);

function wechatConfig(env: Record<string, string> = {}): WeChatConfig {
  const cfg = loadConfig({ WECHAT_TOKEN: TOKEN, ...env }).wechat;
  if (!cfg) throw new Error('WeChat is not configured');
  return cfg;
}

function textXml(from: string, content: string, msgId = '6054768590064713728'): string {
  return `<xml><ToUserName>${cdata(ACCOUNT)}</ToUserName><FromUserName>${cdata(from)}</FromUserName><CreateTime>${Math.floor(NOW_MS / 1000)}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content>${cdata(content)}</Content><MsgId>${msgId}</MsgId></xml>`;
}

function request(query: Record<string, string>, body: string, receivedAtMs = NOW_MS, method = 'POST'): HttpRequest {
  const params = new URLSearchParams(query);
  return { method, path: '/wechat', rawQuery: params.toString(), query, headers: {}, body: Buffer.from(body, 'utf8'), receivedAtMs };
}

/** A plaintext request signed at `timestampSec` (WeChat adds the sender's openid to the query). */
function plainRequest(body: string, opts: { timestampSec?: number; openid?: string; nonce?: string } = {}): HttpRequest {
  const timestamp = String(opts.timestampSec ?? Math.floor(NOW_MS / 1000));
  const nonce = opts.nonce ?? '1320562132';
  const query: Record<string, string> = { signature: wechatSignature([TOKEN, timestamp, nonce]), timestamp, nonce };
  if (opts.openid !== undefined) query.openid = opts.openid;
  return request(query, body);
}

function encryptedRequest(inner: string, openid?: string): HttpRequest {
  const timestamp = String(Math.floor(NOW_MS / 1000));
  const nonce = '42';
  const envelope = buildEncryptedReply({ replyXml: inner, appId: APP_ID, key: aesKeyFromEncodingAesKey(KEY), token: TOKEN, timestampSec: Number(timestamp), nonce, random16: Buffer.alloc(16, 7) });
  const encrypt = /<Encrypt><!\[CDATA\[(.*?)\]\]><\/Encrypt>/.exec(envelope)?.[1] ?? '';
  const query: Record<string, string> = { signature: wechatSignature([TOKEN, timestamp, nonce]), timestamp, nonce, encrypt_type: 'aes', msg_signature: wechatSignature([TOKEN, timestamp, nonce, encrypt]) };
  if (openid !== undefined) query.openid = openid;
  return request(query, `<xml><ToUserName>${cdata(ACCOUNT)}</ToUserName><Encrypt>${cdata(encrypt)}</Encrypt></xml>`);
}

describe('openRequest', () => {
  it('opens a signed plaintext message with its reply context and binding', () => {
    // Act
    const opened = openRequest(wechatConfig(), plainRequest(textXml('o-alice', 'hi'), { openid: 'o-alice' }));
    // Assert
    expect(opened).toMatchObject({
      kind: 'message',
      msg: { kind: 'text', fromUserName: 'o-alice', content: 'hi' },
      ctx: { user: 'o-alice', account: ACCOUNT, encrypted: false, keyIndex: 0 },
      binding: { nonce: '1320562132', timestampSec: Math.floor(NOW_MS / 1000) },
    });
  });

  it('binds the hash of the message: another body under the same query hashes differently', () => {
    const a = openRequest(wechatConfig(), plainRequest(textXml('o-alice', 'hi')));
    const b = openRequest(wechatConfig(), plainRequest(textXml('o-mallory', '1')));
    const again = openRequest(wechatConfig(), plainRequest(textXml('o-alice', 'hi')));
    if (a.kind !== 'message' || b.kind !== 'message' || again.kind !== 'message') throw new Error('not opened');
    expect(a.binding.messageHash).toMatch(/^[0-9a-f]{64}$/);
    expect(b.binding.messageHash).not.toBe(a.binding.messageHash);
    expect(again.binding).toEqual(a.binding);
  });

  it('refuses a timestamp 10 minutes old', () => {
    const opened = openRequest(wechatConfig(), plainRequest(textXml('o-alice', 'hi'), { timestampSec: Math.floor(NOW_MS / 1000) - 600 }));
    expect(opened).toMatchObject({ kind: 'rejected', status: 403 });
  });

  it('refuses a timestamp 10 minutes ahead, accepts one 4 minutes off either way', () => {
    const cfg = wechatConfig();
    const nowSec = Math.floor(NOW_MS / 1000);
    expect(openRequest(cfg, plainRequest(textXml('o-a', 'x'), { timestampSec: nowSec + 600 }))).toMatchObject({ kind: 'rejected', status: 403 });
    expect(openRequest(cfg, plainRequest(textXml('o-a', 'x'), { timestampSec: nowSec - 240 })).kind).toBe('message');
    expect(openRequest(cfg, plainRequest(textXml('o-a', 'x'), { timestampSec: nowSec + 240 })).kind).toBe('message');
  });

  it('takes the allowed skew from WECHAT_MAX_CLOCK_SKEW_SEC', () => {
    const cfg = wechatConfig({ WECHAT_MAX_CLOCK_SKEW_SEC: '60' });
    expect(openRequest(cfg, plainRequest(textXml('o-a', 'x'), { timestampSec: Math.floor(NOW_MS / 1000) - 120 }))).toMatchObject({ kind: 'rejected', status: 403 });
  });

  it('refuses a timestamp that is not a number, even when correctly signed', () => {
    const timestamp = 'yesterday';
    const query = { signature: wechatSignature([TOKEN, timestamp, 'n']), timestamp, nonce: 'n' };
    expect(openRequest(wechatConfig(), request(query, textXml('o-a', 'x')))).toMatchObject({ kind: 'rejected', status: 403 });
  });

  it('refuses a stale URL verification (GET) too', () => {
    const timestamp = String(Math.floor(NOW_MS / 1000) - 3600);
    const query = { signature: wechatSignature([TOKEN, timestamp, 'n']), timestamp, nonce: 'n', echostr: 'e' };
    expect(openRequest(wechatConfig(), request(query, '', NOW_MS, 'GET'))).toMatchObject({ kind: 'rejected', status: 403 });
    const fresh = String(Math.floor(NOW_MS / 1000));
    const ok = { signature: wechatSignature([TOKEN, fresh, 'n']), timestamp: fresh, nonce: 'n', echostr: 'e' };
    expect(openRequest(wechatConfig(), request(ok, '', NOW_MS, 'GET'))).toEqual({ kind: 'verify', echostr: 'e' });
  });

  it('refuses plaintext when an EncodingAESKey is configured', () => {
    const cfg = wechatConfig({ WECHAT_APP_ID: APP_ID, WECHAT_ENCODING_AES_KEY: KEY });
    expect(openRequest(cfg, plainRequest(textXml('o-alice', 'hi')))).toMatchObject({ kind: 'rejected', status: 403 });
  });

  it('accepts plaintext with an EncodingAESKey only when WECHAT_ALLOW_PLAINTEXT is set', () => {
    const cfg = wechatConfig({ WECHAT_APP_ID: APP_ID, WECHAT_ENCODING_AES_KEY: KEY, WECHAT_ALLOW_PLAINTEXT: '1' });
    expect(openRequest(cfg, plainRequest(textXml('o-alice', 'hi'))).kind).toBe('message');
  });

  it('opens an encrypted message and checks its openid against the decrypted sender', () => {
    const cfg = wechatConfig({ WECHAT_APP_ID: APP_ID, WECHAT_ENCODING_AES_KEY: KEY });
    expect(openRequest(cfg, encryptedRequest(textXml('o-alice', 'hi'), 'o-alice'))).toMatchObject({ kind: 'message', ctx: { encrypted: true } });
    expect(openRequest(cfg, encryptedRequest(textXml('o-alice', 'hi'), 'o-bob'))).toMatchObject({ kind: 'rejected', status: 403 });
  });

  it('refuses a body whose FromUserName differs from the openid in the query', () => {
    const opened = openRequest(wechatConfig(), plainRequest(textXml('o-victim', '1'), { openid: 'o-attacker' }));
    expect(opened).toMatchObject({ kind: 'rejected', status: 403 });
  });

  it('opens the official Tencent sample request at its own time, and refuses it today', () => {
    // Arrange: the exact request of the official safe-mode vector.
    const v = vectorSection(readVectors('wechat.json'), 'safe_mode_decrypt');
    const timestamp = vectorField(v, 'timestamp');
    const nonce = vectorField(v, 'nonce');
    const query = { signature: wechatSignature([TOKEN, timestamp, nonce]), timestamp, nonce, encrypt_type: 'aes', msg_signature: vectorField(v, 'msg_signature') };
    const body = `<xml><ToUserName><![CDATA[${ACCOUNT}]]></ToUserName><Encrypt><![CDATA[${vectorField(v, 'encrypt')}]]></Encrypt></xml>`;
    const cfg = wechatConfig({ WECHAT_APP_ID: vectorField(v, 'app_id'), WECHAT_ENCODING_AES_KEY: vectorField(v, 'encoding_aes_key') });
    // Act
    const then = openRequest(cfg, request(query, body, Number(timestamp) * 1000 + 1500));
    const today = openRequest(cfg, request(query, body, NOW_MS));
    // Assert
    expect(then).toMatchObject({ kind: 'message', msg: { kind: 'text', content: 'abcdteT', fromUserName: 'oyORnuP8q7ou2gfYjqLzSIWZf0rs' }, ctx: { encrypted: true } });
    expect(today).toMatchObject({ kind: 'rejected', status: 403 });
  });

  it('refuses a bad signature, an oversized body and other methods', () => {
    const cfg = wechatConfig();
    const good = plainRequest(textXml('o-a', 'x'));
    expect(openRequest(cfg, { ...good, query: { ...good.query, signature: '0'.repeat(40) } })).toMatchObject({ kind: 'rejected', status: 403 });
    expect(openRequest(cfg, { ...good, body: Buffer.alloc(70 * 1024, 0x20) })).toMatchObject({ kind: 'rejected', status: 413 });
    expect(openRequest(cfg, { ...good, method: 'PUT' })).toMatchObject({ kind: 'rejected', status: 405 });
  });
});

describe('toJob', () => {
  const click = (key: string): string =>
    `<xml><ToUserName>${cdata(ACCOUNT)}</ToUserName><FromUserName>${cdata('o-a')}</FromUserName><CreateTime>1700000000</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[CLICK]]></Event><EventKey>${cdata(key)}</EventKey></xml>`;

  it('maps a menu click to its prompt and a "1" to a fetchable text job', () => {
    const cfg = wechatConfig({ WECHAT_MENU_PROMPTS: JSON.stringify({ 菜单A: 'menu prompt' }) });
    const opened = openRequest(cfg, plainRequest(click('菜单A')));
    const one = openRequest(cfg, plainRequest(textXml('o-a', ' 1 ')));
    if (opened.kind !== 'message' || one.kind !== 'message') throw new Error('not opened');
    expect(toJob(cfg, opened.msg, NOW_MS)).toMatchObject({ kind: 'job', fetchable: false, job: { msgKey: 'evt:1700000000:CLICK:菜单A', input: { kind: 'text', text: 'menu prompt' } } });
    expect(toJob(cfg, one.msg, NOW_MS)).toMatchObject({ kind: 'job', fetchable: true, job: { userId: 'o-a', conversationKey: 'wechat#o-a', arrivedAtMs: NOW_MS } });
  });

  it('acknowledges a click on a key without a prompt', () => {
    const cfg = wechatConfig();
    const opened = openRequest(cfg, plainRequest(click('nothing')));
    if (opened.kind !== 'message') throw new Error('not opened');
    expect(toJob(cfg, opened.msg, NOW_MS).kind).toBe('ack');
  });
});
