import { readFileSync } from 'node:fs';
import path from 'node:path';
import { jobFor, turnInputFor, UNSUPPORTED_TEXT } from '../../../lib/channels/whatsapp/ingress';
import { parseWebhook, parseWebhookBody, WhatsAppPayloadError, type InboundMessage } from '../../../lib/channels/whatsapp/payload';
import { metaJson, sampleStatusWebhook, sampleTextWebhook } from '../../../local/samples/whatsapp';

const FIXTURES = path.resolve(__dirname, '../../fixtures/whatsapp');
const fixture = (name: string): Buffer => readFileSync(path.join(FIXTURES, name));
const PNID = '106540352242922';

/** The single message of a fixture. */
function only(name: string): InboundMessage {
  const batch = parseWebhookBody(fixture(name));
  expect(batch.messages).toHaveLength(1);
  const m = batch.messages[0];
  if (!m) throw new Error('no message');
  return m;
}

describe('parseWebhookBody', () => {
  it('parses a text message with its metadata and contact name', () => {
    // Act
    const m = only('text.json');
    // Assert
    expect(m).toEqual({
      type: 'text',
      body: 'Does it come in another color?',
      id: 'wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=',
      from: '16505551234',
      timestampSec: 1749416383,
      phoneNumberId: PNID,
      profileName: 'Sheena Nelson',
    });
  });

  it('decodes \\u escapes (Meta escapes all non-ASCII) including surrogate pairs', () => {
    const raw = fixture('text-escaped-unicode.json');
    expect(raw.toString('utf8')).toContain('\\u00e4');
    const m = only('text-escaped-unicode.json');
    expect(m.type === 'text' && m.body).toBe('Grüße! Hätten Sie Zeit? 😀');
    expect(m.profileName).toBe('Jürgen');
  });

  it('parses a voice note', () => {
    const m = only('audio-voice.json');
    expect(m).toMatchObject({ type: 'audio', mediaId: '2754859441498128', mimeType: 'audio/ogg; codecs=opus', voice: true });
  });

  it('parses an image with its caption', () => {
    expect(only('image.json')).toMatchObject({ type: 'image', mediaId: '1003383421387256', mimeType: 'image/jpeg', caption: 'What plant is this?' });
  });

  it('turns interactive button and list replies and template buttons into choices', () => {
    expect(only('interactive-button-reply.json')).toMatchObject({ type: 'choice', source: 'button_reply', choiceId: 'opt-yes', title: 'Yes, please' });
    expect(only('interactive-list-reply.json')).toMatchObject({ type: 'choice', source: 'list_reply', choiceId: 'row-2', title: 'Opening hours' });
    expect(only('button.json')).toMatchObject({ type: 'choice', source: 'button', choiceId: 'TALK_AGAIN', title: 'Continue the chat' });
  });

  it('parses reactions, system notices and other types', () => {
    expect(only('reaction.json')).toMatchObject({ type: 'reaction', emoji: '👍' });
    expect(only('system.json')).toMatchObject({ type: 'system' });
    expect(only('video.json')).toMatchObject({ type: 'other', rawType: 'video' });
    expect(only('location.json')).toMatchObject({ type: 'other', rawType: 'location' });
    expect(only('unsupported.json')).toMatchObject({ type: 'other', rawType: 'unsupported' });
  });

  it('parses sent / delivered / read statuses without messages', () => {
    const kinds: readonly ('sent' | 'delivered' | 'read')[] = ['sent', 'delivered', 'read'];
    for (const status of kinds) {
      const batch = parseWebhookBody(fixture(`status-${status}.json`));
      expect(batch.messages).toEqual([]);
      expect(batch.statuses).toEqual([
        { id: 'wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI1RjQ0RjlDRTJDRjBDMTJGNTUA', status, recipientId: '16505551234', timestampSec: 1750263773, errorCodes: [] },
      ]);
    }
  });

  it('parses a failed status with its error codes', () => {
    const batch = parseWebhookBody(fixture('status-failed-131047.json'));
    expect(batch.statuses).toMatchObject([{ status: 'failed', recipientId: '16505551234', errorCodes: [131047] }]);
    expect(parseWebhookBody(fixture('status-failed-131026.json')).statuses[0]?.errorCodes).toEqual([131026]);
  });

  it('returns every message of a batched delivery, in order, with statuses alongside', () => {
    const batch = parseWebhookBody(fixture('multiple-messages.json'));
    expect(batch.messages.map((m) => [m.id, m.from, m.profileName])).toEqual([
      ['wamid.multi-1', '16505551234', 'Sheena Nelson'],
      ['wamid.multi-2', '16505551234', 'Sheena Nelson'],
      ['wamid.multi-3', '447700900123', 'Ada'],
    ]);
    expect(batch.statuses).toHaveLength(1);
  });

  it('ignores other objects and fields', () => {
    expect(parseWebhookBody(fixture('account-update.json'))).toEqual({ messages: [], statuses: [], skipped: 0 });
    expect(parseWebhook({ object: 'page', entry: [] })).toEqual({ messages: [], statuses: [], skipped: 0 });
  });

  it('skips (and counts) items without the fields it needs instead of failing the batch', () => {
    // Arrange: a message without id, one without text body, and a good one.
    const body = {
      object: 'whatsapp_business_account',
      entry: [
        {
          changes: [
            {
              field: 'messages',
              value: {
                metadata: { phone_number_id: PNID },
                messages: [
                  { from: '1', type: 'text', text: { body: 'no id' } },
                  { from: '1', id: 'wamid.a', type: 'text', text: {} },
                  { from: '1', id: 'wamid.b', type: 'text', text: { body: 'fine' }, timestamp: 'x' },
                ],
                statuses: [{ status: 'sent' }],
              },
            },
          ],
        },
      ],
    };
    // Act
    const batch = parseWebhook(body);
    // Assert
    expect(batch.skipped).toBe(3);
    expect(batch.messages).toMatchObject([{ id: 'wamid.b', body: 'fine', timestampSec: 0, profileName: '' }]);
  });

  it('rejects bodies that are not JSON objects', () => {
    expect(() => parseWebhookBody('not json')).toThrow(WhatsAppPayloadError);
    let thrown: unknown;
    try {
      parseWebhookBody('[1,2]');
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(WhatsAppPayloadError);
    expect(thrown).toMatchObject({ code: 'not_object' });
  });
});

describe('turnInputFor', () => {
  it('maps each type to what the worker does with it', () => {
    expect(turnInputFor(only('text.json'))).toEqual({ kind: 'text', text: 'Does it come in another color?' });
    expect(turnInputFor(only('interactive-button-reply.json'))).toEqual({ kind: 'text', text: 'Yes, please' });
    expect(turnInputFor(only('interactive-list-reply.json'))).toEqual({ kind: 'text', text: 'Opening hours' });
    expect(turnInputFor(only('button.json'))).toEqual({ kind: 'text', text: 'Continue the chat' });
    expect(turnInputFor(only('audio-voice.json'))).toEqual({ kind: 'audio', mediaRef: '2754859441498128', mimeType: 'audio/ogg; codecs=opus' });
    expect(turnInputFor(only('image.json'))).toEqual({ kind: 'image', mediaRef: '1003383421387256', caption: 'What plant is this?', mimeType: 'image/jpeg' });
    expect(turnInputFor(only('reaction.json'))).toBeUndefined();
    expect(turnInputFor(only('system.json'))).toBeUndefined();
    expect(turnInputFor(only('video.json'))).toEqual({ kind: 'notice', text: UNSUPPORTED_TEXT });
    expect(turnInputFor(only('unsupported.json'))).toEqual({ kind: 'notice', text: UNSUPPORTED_TEXT });
  });

  it('builds the job keyed by wamid, per sender', () => {
    const m = only('text.json');
    const job = jobFor(m, { kind: 'text', text: 'x' }, 1_000);
    expect(job).toMatchObject({
      channel: 'whatsapp',
      userId: '16505551234',
      msgKey: m.id,
      conversationKey: 'whatsapp#16505551234',
      reply: { channel: 'whatsapp', phoneNumberId: PNID, to: '16505551234', messageId: m.id },
      arrivedAtMs: 1_000,
    });
  });
});

describe('samples', () => {
  it('serialises like Meta (non-ASCII escaped) and round-trips through the parser', () => {
    const body = sampleTextWebhook({ phoneNumberId: PNID, from: '491', text: 'Hä 😀', id: 'wamid.s' });
    expect(Buffer.byteLength(body, 'utf8')).toBe(body.length); // pure ASCII
    expect(body).toContain('H\\u00e4 \\ud83d\\ude00');
    expect(parseWebhookBody(body).messages[0]).toMatchObject({ type: 'text', body: 'Hä 😀', id: 'wamid.s' });
    expect(metaJson({ a: 'ä' })).toBe('{"a":"\\u00e4"}');
    expect(parseWebhookBody(sampleStatusWebhook({ phoneNumberId: PNID, recipientId: '491', status: 'failed' })).statuses[0]?.errorCodes).toEqual([131047]);
  });
});
