import { languageOf, localise, rateLimitedText } from '../../lib/core/notes';
import type { ChannelName, Job, TurnInput } from '../../lib/types';

function job(channel: ChannelName, input: TurnInput): Job {
  const reply: Job['reply'] =
    channel === 'wechat'
      ? { channel, accountId: 'gh' }
      : channel === 'whatsapp'
        ? { channel, phoneNumberId: '1', to: '1', messageId: 'w' }
        : { channel, to: '+1', from: '+2', medium: 'sms', callSid: '' };
  return { v: 1, channel, userId: 'u', msgKey: 'k', conversationKey: 'c', input, reply, arrivedAtMs: 0 };
}

describe('languageOf', () => {
  it.each([
    ['wechat', { kind: 'text', text: '今天天气怎么样？' }, 'zh'],
    ['whatsapp', { kind: 'text', text: 'hello 你好' }, 'zh'],
    ['wechat', { kind: 'text', text: 'What is the weather?' }, 'en'],
    ['wechat', { kind: 'text', text: '42 👍' }, 'zh'],
    ['twilio', { kind: 'text', text: '42 👍' }, 'en'],
    ['wechat', { kind: 'audio', mediaRef: 'm', mimeType: 'audio/amr' }, 'zh'],
    ['whatsapp', { kind: 'image', mediaRef: 'm', caption: '这是什么', mimeType: 'image/jpeg' }, 'zh'],
  ] as const)('on %s, %j is answered in %s', (channel, input, language) => {
    expect(languageOf(job(channel, input))).toBe(language);
  });
});

describe('rateLimitedText', () => {
  it('rounds the wait up to whole minutes, at least one', () => {
    const j = job('whatsapp', { kind: 'text', text: 'hi' });
    expect(localise(j, rateLimitedText(0.2))).toBe('You have sent a lot of messages in a short time. Please try again in 1 minute.');
    expect(localise(j, rateLimitedText(9.01))).toBe('You have sent a lot of messages in a short time. Please try again in 10 minutes.');
  });
});
