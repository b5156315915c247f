import { SAY_MAX_CHARS, forSay, isGoodbye, speakable } from '../../../lib/channels/twilio/speech';

describe('isGoodbye', () => {
  it.each(['goodbye', 'Goodbye.', 'bye', 'Bye bye!', 'OK, bye now', "that's all, thanks", 'good bye', 'hang up'])('ends the call for "%s"', (s) => {
    expect(isGoodbye(s)).toBe(true);
  });

  it.each(['', 'say goodbye to my friend in French', 'how do I say bye in German?', 'hello'])('does not end the call for "%s"', (s) => {
    expect(isGoodbye(s)).toBe(false);
  });
});

describe('speakable', () => {
  it('removes markdown, links, code and emoji', () => {
    const text = '# Title\n**Bold** and _it_ 😀\n- item one\n[docs](https://x.example) see https://y.example/a\n```js\ncode()\n```';
    expect(speakable(text)).toBe('Title\nBold and it\nitem one\ndocs see the link');
  });
});

describe('forSay', () => {
  it('cuts a long answer at a sentence below the <Say> limit', () => {
    const long = 'This is a sentence that goes on for a while. '.repeat(100);
    const spoken = forSay(long);
    expect(spoken.length).toBeLessThanOrEqual(SAY_MAX_CHARS);
    expect(spoken.endsWith('.')).toBe(true);
  });

  it('leaves a short answer whole', () => {
    expect(forSay('Paris is the capital of France.')).toBe('Paris is the capital of France.');
  });
});
