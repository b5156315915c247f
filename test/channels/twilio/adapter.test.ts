import type { TwilioConfig } from '../../../lib/config';
import { SMS_INSTRUCTION, senderFor } from '../../../lib/channels/twilio/adapter';
import { FACT_CLOSED_AT, TWILIO_WHATSAPP_WINDOW, undeliveredOf, whatsappSender } from '../../../lib/channels/twilio/session';
import { SERVICE_WINDOW_MS, isWindowClosed } from '../../../lib/core/service-window';
import { statusCallbackUrl, counter, gatherUrl, pollUrl } from '../../../lib/channels/twilio/urls';

const cfg: TwilioConfig = {
  accountSid: `AC${'0'.repeat(32)}`,
  authToken: 't',
  from: '+15005550006',
  messagingServiceSid: '',
  whatsappFrom: '',
  apiBase: 'https://api.twilio.com',
  reengageContentSid: '',
  voiceGreeting: 'hi',
  voiceLanguage: 'en-US',
};

describe('senderFor', () => {
  it('replies to SMS from TWILIO_FROM, or the Messaging Service when one is set', () => {
    const reply = { channel: 'twilio' as const, to: '+1555', from: '+1999', medium: 'sms' as const, callSid: '' };
    expect(senderFor(cfg, reply)).toEqual({ from: '+15005550006' });
    expect(senderFor({ ...cfg, messagingServiceSid: 'MG1' }, reply)).toEqual({ messagingServiceSid: 'MG1' });
  });

  it('replies to WhatsApp from the WhatsApp sender (configured, prefixed if needed, else the number written to)', () => {
    const reply = { channel: 'twilio' as const, to: 'whatsapp:+1555', from: 'whatsapp:+1415', medium: 'whatsapp' as const, callSid: '' };
    expect(senderFor({ ...cfg, messagingServiceSid: 'MG1' }, reply)).toEqual({ from: 'whatsapp:+1415' });
    expect(senderFor({ ...cfg, whatsappFrom: '+1777' }, reply)).toEqual({ from: 'whatsapp:+1777' });
    expect(whatsappSender({ ...cfg, whatsappFrom: 'whatsapp:+1888' }, 'whatsapp:+1415')).toBe('whatsapp:+1888');
  });

  it('exports the SMS instruction', () => {
    expect(SMS_INSTRUCTION).toMatch(/plain text/);
  });
});

describe('undeliveredOf', () => {
  it('reads the undelivered answers from the user facts', () => {
    expect(undeliveredOf({ 'undelivered:SM1': '2', 'undelivered:SM2': 'x', other: '1' })).toEqual([
      { msgKey: 'SM1', fromPart: 2 },
      { msgKey: 'SM2', fromPart: 0 },
    ]);
  });
});

describe('the WhatsApp window through Twilio', () => {
  it('is closed for a message older than 24 h or one that arrived before the window was found closed', () => {
    const now = 10 * SERVICE_WINDOW_MS;
    expect(isWindowClosed(TWILIO_WHATSAPP_WINDOW, {}, now - 1000, now)).toBe(false);
    expect(isWindowClosed(TWILIO_WHATSAPP_WINDOW, {}, now - SERVICE_WINDOW_MS, now)).toBe(true);
    expect(isWindowClosed(TWILIO_WHATSAPP_WINDOW, { [FACT_CLOSED_AT]: String(now - 500) }, now - 1000, now)).toBe(true);
    // A newer message reopened the window.
    expect(isWindowClosed(TWILIO_WHATSAPP_WINDOW, { [FACT_CLOSED_AT]: String(now - 2000) }, now - 1000, now)).toBe(false);
    expect(isWindowClosed(TWILIO_WHATSAPP_WINDOW, { [FACT_CLOSED_AT]: 'garbage' }, now - 1000, now)).toBe(false);
  });
});

describe('urls', () => {
  it('builds signed-friendly URLs from the public base', () => {
    expect(gatherUrl('https://x.example/', 2, 1)).toBe('https://x.example/twilio/voice/gather?t=2&s=1');
    expect(pollUrl('https://x.example', 2, 3)).toBe('https://x.example/twilio/voice/poll?t=2&r=3');
    // A verified caller ID travels along in the (signed) URLs.
    expect(gatherUrl('https://x.example', 2, 1, true)).toBe('https://x.example/twilio/voice/gather?t=2&s=1&v=1');
    expect(pollUrl('https://x.example', 2, 3, true)).toBe('https://x.example/twilio/voice/poll?t=2&r=3&v=1');
    expect(statusCallbackUrl('https://x.example', 'SMabc', 0)).toBe('https://x.example/twilio/messaging/status?k=SMabc&p=0');
  });

  it('reads counters defensively', () => {
    expect(counter('3', 0)).toBe(3);
    expect(counter(undefined, 1)).toBe(1);
    expect(counter('-1', 0)).toBe(0);
    expect(counter('99999', 0, 1000)).toBe(1000);
  });
});
