import { parseTwiml } from '../../../local/fakes/fake-twilio';
import { escapeXml, gather, hangup, pause, redirect, say, twiml, twimlResponse } from '../../../lib/channels/twilio/twiml';

describe('escapeXml', () => {
  it('escapes markup characters and quotes', () => {
    expect(escapeXml(`<b>"Tom" & 'Jerry'</b>`)).toBe('&lt;b&gt;&quot;Tom&quot; &amp; &apos;Jerry&apos;&lt;/b&gt;');
  });

  it('drops characters XML 1.0 forbids (controls, lone surrogates) and keeps emoji and newlines', () => {
    expect(escapeXml('a\u0000b\u0007c\nd\uD800e😀\uFFFF')).toBe('abc\nde😀');
  });
});

describe('TwiML builders', () => {
  it('builds an empty response for messaging', () => {
    expect(twiml()).toBe('<?xml version="1.0" encoding="UTF-8"?><Response/>');
  });

  it('builds a valid listen-and-redirect document whatever the text contains', () => {
    // Arrange: an answer that would break naive XML.
    const nasty = 'Use <Hangup/> & "quotes" ]]> </Say><Redirect>x</Redirect>';
    // Act
    const doc = twiml(
      gather({ action: 'https://x.example/twilio/voice/gather?t=2&s=0', language: 'en-US', prompt: say(nasty, 'en-US') }),
      redirect('https://x.example/twilio/voice/gather?t=2&s=0'),
    );
    // Assert
    const verbs = parseTwiml(doc);
    expect(verbs.map((v) => v.name)).toEqual(['Gather', 'Redirect']);
    expect(verbs[0]?.children[0]?.text).toBe(nasty);
    expect(doc).toContain('<Gather input="speech" speechTimeout="auto" language="en-US" action="https://x.example/twilio/voice/gather?t=2&amp;s=0" method="POST">');
    expect(doc).toContain('<Redirect method="POST">https://x.example/twilio/voice/gather?t=2&amp;s=0</Redirect>');
    expect(doc.match(/<Redirect/g)).toHaveLength(1);
    expect(doc).not.toContain('<Hangup/>');
  });

  it('builds pauses in whole seconds of at least one', () => {
    expect(pause(2)).toBe('<Pause length="2"/>');
    expect(pause(0)).toBe('<Pause length="1"/>');
    expect(hangup()).toBe('<Hangup/>');
  });

  it('is checked by a strict parser that catches broken documents', () => {
    expect(() => parseTwiml('<Response><Say>a & b</Say></Response>')).toThrow(/unescaped &/);
    expect(() => parseTwiml('<Response><Say>a</Response>')).toThrow(/does not close/);
    expect(() => parseTwiml('<Response><Say>a</Say>')).toThrow(/not closed/);
    expect(() => parseTwiml('<Reply/>')).toThrow(/not Response/);
    expect(() => parseTwiml('<Response/><Response/>')).toThrow(/more than one root/);
    expect(() => parseTwiml('<Response><Say a=1>x</Say></Response>')).toThrow(/malformed/);
    expect(parseTwiml(twiml())).toEqual([]);
  });

  it('serves TwiML as text/xml', () => {
    expect(twimlResponse(twiml()).headers['content-type']).toMatch(/^text\/xml/);
  });
});
