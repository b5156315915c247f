import { readFileSync } from 'node:fs';
import path from 'node:path';
import {
  DEFAULT_MAX_XML_BYTES,
  WeChatXmlError,
  parseEncryptedEnvelope,
  parseInbound,
  type WeChatInbound,
  type WeChatXmlErrorCode,
} from '../../../lib/channels/wechat/xml';

const FIXTURES = path.resolve(__dirname, '../../fixtures/wechat');
const fixture = (name: string): string => readFileSync(path.join(FIXTURES, name), 'utf8');

const GH = 'gh_10f6c3c3ac5a';
const OPENID = 'oyORnuP8q7ou2gfYjqLzSIWZf0rs';

/** Runs `fn` and returns the WeChatXmlError code it throws. */
function xmlErrorCode(fn: () => unknown): WeChatXmlErrorCode {
  try {
    fn();
  } catch (err) {
    if (err instanceof WeChatXmlError) return err.code;
    throw err;
  }
  throw new Error('expected a WeChatXmlError');
}

/** A minimal inbound text body around `contentXml` (already-escaped element content). */
function textBody(contentXml: string, extra = ''): string {
  return (
    `<xml><ToUserName><![CDATA[${GH}]]></ToUserName>\n<FromUserName><![CDATA[${OPENID}]]></FromUserName>\n` +
    `<CreateTime>1700000000</CreateTime>\n<MsgType><![CDATA[text]]></MsgType>\n` +
    `<Content>${contentXml}</Content>\n<MsgId>6054768590064713728</MsgId>${extra}\n</xml>`
  );
}

/** Content of a parsed text message (fails the test for any other kind). */
function contentOf(msg: WeChatInbound): string {
  if (msg.kind !== 'text') throw new Error(`expected text, got ${msg.kind}`);
  return msg.content;
}

describe('parseInbound: fixtures shaped like real WeChat bodies', () => {
  const common = { toUserName: GH, fromUserName: OPENID };

  it.each<[string, WeChatInbound]>([
    [
      'text.xml',
      {
        ...common,
        createTimeSec: 1409735668,
        msgType: 'text',
        kind: 'text',
        content: '你好，请用三句话介绍一下 AWS Lambda & SQS <FIFO>。',
        msgId: '6054768590064713728',
      },
    ],
    [
      'image.xml',
      {
        ...common,
        createTimeSec: 1700000001,
        msgType: 'image',
        kind: 'image',
        picUrl: 'http://mmbiz.qpic.cn/mmbiz_jpg/5Hq8WQ0ZyLxib3oQX1VQeCGia3Gtn6Pjb4xUMbXz2nWgBhYxqYxXp8m0kzNf5icbQ/0',
        mediaId: 'Hc2rPqJ1n3y0nXBqUOvQzK8g7yRZ6mD5wE4fT9sL2aVbC1uIiOoPp-QqRrSsTtUu',
        msgId: '24339123456789012345',
      },
    ],
    [
      'voice.xml',
      {
        ...common,
        createTimeSec: 1700000002,
        msgType: 'voice',
        kind: 'voice',
        mediaId: 'Vq7dLh2mN4pS8tX1zB5cF9gJ3kR6wY0aE2iO4uQ7vT1yM5nP8sD3fG6hK9jL2xC',
        format: 'amr',
        recognition: '明天北京天气怎么样？',
        msgId: '24339123456789012346',
      },
    ],
    [
      'voice-empty-recognition.xml',
      {
        ...common,
        createTimeSec: 1700000003,
        msgType: 'voice',
        kind: 'voice',
        mediaId: 'Vq7dLh2mN4pS8tX1zB5cF9gJ3kR6wY0aE2iO4uQ7vT1yM5nP8sD3fG6hK9jL2xD',
        format: 'speex',
        recognition: undefined,
        msgId: '24339123456789012347',
      },
    ],
    [
      'video.xml',
      {
        ...common,
        createTimeSec: 1700000004,
        msgType: 'video',
        kind: 'video',
        mediaId: 'Wm3nB5vC7xZ9lK1jH3gF5dS7aP9oI1uY3tR5eW7qM2nB4vC6xZ8lK0jH2gF4dS6',
        thumbMediaId: 'Tq1wE3rT5yU7iO9pA1sD3fG5hJ7kL9zX1cV3bN5mQ7wE9rT1yU3iO5pA7sD9fG1',
        msgId: '24339123456789012348',
      },
    ],
    [
      'shortvideo.xml',
      {
        ...common,
        createTimeSec: 1700000005,
        msgType: 'shortvideo',
        kind: 'shortvideo',
        mediaId: 'Sv2nB5vC7xZ9lK1jH3gF5dS7aP9oI1uY3tR5eW7qM2nB4vC6xZ8lK0jH2gF4dS6',
        thumbMediaId: 'St1wE3rT5yU7iO9pA1sD3fG5hJ7kL9zX1cV3bN5mQ7wE9rT1yU3iO5pA7sD9fG1',
        msgId: '24339123456789012349',
      },
    ],
    [
      'location.xml',
      {
        ...common,
        createTimeSec: 1700000006,
        msgType: 'location',
        kind: 'location',
        locationX: 23.134521,
        locationY: 113.358803,
        scale: 20,
        label: '广东省广州市天河区天河路385号',
        msgId: '24339123456789012350',
      },
    ],
    [
      'link.xml',
      {
        ...common,
        createTimeSec: 1700000007,
        msgType: 'link',
        kind: 'link',
        title: '公众号消息加解密说明',
        description: '安全模式下消息体的加密与签名',
        url: 'https://mp.weixin.qq.com/s?__biz=MzA3MDM3NjE5NQ==&mid=2650000000&idx=1&sn=0123456789abcdef',
        msgId: '24339123456789012351',
      },
    ],
    [
      'event-subscribe.xml',
      {
        ...common,
        createTimeSec: 1700000008,
        msgType: 'event',
        kind: 'event',
        event: 'subscribe',
        eventKey: undefined,
        ticket: undefined,
      },
    ],
    [
      'event-subscribe-qrscene.xml',
      {
        ...common,
        createTimeSec: 1700000009,
        msgType: 'event',
        kind: 'event',
        event: 'subscribe',
        eventKey: 'qrscene_123123',
        ticket: 'gQH47joAAAAAAAAAASxodHRwOi8vd2VpeGluLnFxLmNvbS9xL2taZ2Z3TVRtNzJXV1Brb3ZhYmJJAAIEZ23sUwMEmm3sUw==',
      },
    ],
    [
      'event-unsubscribe.xml',
      {
        ...common,
        createTimeSec: 1700000010,
        msgType: 'event',
        kind: 'event',
        event: 'unsubscribe',
        eventKey: undefined,
        ticket: undefined,
      },
    ],
    [
      'event-scan.xml',
      {
        ...common,
        createTimeSec: 1700000011,
        msgType: 'event',
        kind: 'event',
        event: 'SCAN',
        eventKey: '123123',
        ticket: 'gQH47joAAAAAAAAAASxodHRwOi8vd2VpeGluLnFxLmNvbS9xL2taZ2Z3TVRtNzJXV1Brb3ZhYmJJAAIEZ23sUwMEmm3sUw==',
      },
    ],
    [
      'event-location.xml',
      {
        ...common,
        createTimeSec: 1700000012,
        msgType: 'event',
        kind: 'event',
        event: 'LOCATION',
        eventKey: undefined,
        ticket: undefined,
      },
    ],
    [
      'event-click.xml',
      {
        ...common,
        createTimeSec: 1700000013,
        msgType: 'event',
        kind: 'event',
        event: 'CLICK',
        eventKey: 'V1001_RESET_CHAT',
        ticket: undefined,
      },
    ],
    [
      'event-view.xml',
      {
        ...common,
        createTimeSec: 1700000014,
        msgType: 'event',
        kind: 'event',
        event: 'VIEW',
        eventKey: 'https://www.example.com/help?from=menu&lang=zh_CN',
        ticket: undefined,
      },
    ],
    [
      'unknown-miniprogrampage.xml',
      {
        ...common,
        createTimeSec: 1700000015,
        msgType: 'miniprogrampage',
        kind: 'unknown',
        msgId: '24339123456789012352',
      },
    ],
  ])('%s', (name, expected) => {
    // Arrange
    const body = fixture(name);
    // Act
    const parsed = parseInbound(body);
    // Assert
    expect(parsed).toEqual(expected);
  });

  it('accepts the same body as bytes, with a UTF-8 BOM', () => {
    const bytes = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(fixture('text.xml'), 'utf8')]);
    expect(parseInbound(bytes)).toEqual(parseInbound(fixture('text.xml')));
  });

  it('narrows on kind (exhaustive switch compiles with a never check)', () => {
    const describeMsg = (m: WeChatInbound): string => {
      switch (m.kind) {
        case 'text':
          return m.content;
        case 'image':
          return m.picUrl;
        case 'voice':
          return m.recognition ?? m.mediaId;
        case 'video':
        case 'shortvideo':
          return m.thumbMediaId;
        case 'location':
          return m.label;
        case 'link':
          return m.url;
        case 'event':
          return m.event;
        case 'unknown':
          return m.msgType;
        default: {
          const unreachable: never = m;
          return unreachable;
        }
      }
    };
    expect(describeMsg(parseInbound(fixture('event-click.xml')))).toBe('CLICK');
  });
});

describe('parseInbound: 64-bit MsgId', () => {
  it("keeps MsgId '6054768590064713728' as the exact string (never a number)", () => {
    const msg = parseInbound(textBody('<![CDATA[hi]]>'));
    expect(msg.kind).toBe('text');
    if (msg.kind !== 'text') return;
    expect(typeof msg.msgId).toBe('string');
    expect(msg.msgId).toBe('6054768590064713728');
    // As a JS number it would have lost digits:
    expect(String(Number('6054768590064713728'))).not.toBe('6054768590064713728');
  });

  it('keeps other numeric-looking strings as strings too (leading zeros, exponents)', () => {
    const msg = parseInbound(textBody('00123'));
    expect(contentOf(msg)).toBe('00123');
    expect(contentOf(parseInbound(textBody('1e3')))).toBe('1e3');
  });
});

describe('parseInbound: text and CDATA', () => {
  it('passes CDATA through verbatim, entities and markup included', () => {
    const raw = ' <b>x</b> &amp; &lt; &#20013; <!DOCTYPE html> \n ';
    expect(contentOf(parseInbound(textBody(`<![CDATA[${raw}]]>`)))).toBe(raw);
  });

  it('decodes the predefined entities and character references in plain text', () => {
    const body = textBody('a &amp; b &lt;c&gt; &quot;d&quot; &apos;e&apos; &#20013;&#x6587; &#x1F600;');
    expect(contentOf(parseInbound(body))).toBe('a & b <c> "d" \'e\' 中文 😀');
  });

  it('joins mixed text and CDATA pieces in document order', () => {
    expect(contentOf(parseInbound(textBody('x &amp; <![CDATA[&amp; y]]> z')))).toBe('x & &amp; y z');
  });

  it('keeps leading and trailing whitespace of the content', () => {
    expect(contentOf(parseInbound(textBody('<![CDATA[  two spaces \n]]>')))).toBe('  two spaces \n');
  });

  it('accepts an empty Content', () => {
    expect(contentOf(parseInbound(textBody('<![CDATA[]]>')))).toBe('');
    expect(contentOf(parseInbound(textBody('')))).toBe('');
  });

  it('ignores unknown extra fields (MsgDataId, Idx) and attributes', () => {
    const body = textBody('<![CDATA[hi]]>', '<MsgDataId>xxxx</MsgDataId><Idx>1</Idx>').replace('<xml>', '<xml lang="zh">');
    expect(contentOf(parseInbound(body))).toBe('hi');
  });
});

describe('parseInbound: DTDs and entities are refused', () => {
  it('refuses the billion-laughs body', () => {
    expect(xmlErrorCode(() => parseInbound(fixture('billion-laughs.xml')))).toBe('dtd_not_allowed');
  });

  it('refuses an external-entity (XXE) body', () => {
    expect(xmlErrorCode(() => parseInbound(fixture('xxe-external-entity.xml')))).toBe('dtd_not_allowed');
  });

  it.each([
    ['a bare DOCTYPE', `<!DOCTYPE xml>${textBody('<![CDATA[hi]]>')}`],
    ['a lower-case doctype', `<!doctype xml>${textBody('<![CDATA[hi]]>')}`],
    ['an ENTITY declaration in the body', textBody('<![CDATA[hi]]>', '<!ENTITY x "y">')],
    ['an ELEMENT declaration', textBody('<![CDATA[hi]]>', '<!ELEMENT x ANY>')],
    ['a conditional section', textBody('<![INCLUDE[ x ]]>')],
    ['a DOCTYPE after the declaration', `<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY a "b">]>${textBody('&a;')}`],
  ])('refuses %s', (_label, body) => {
    expect(xmlErrorCode(() => parseInbound(body))).toBe('dtd_not_allowed');
  });

  it('accepts a user message that merely quotes a DOCTYPE inside CDATA', () => {
    const html = '<!DOCTYPE html>\n<html><!ENTITY nope "x"></html>';
    expect(contentOf(parseInbound(textBody(`<![CDATA[${html}]]>`)))).toBe(html);
  });

  it.each([
    ['hidden behind a comment that contains a CDATA opener', '<!-- <![CDATA[ --><!DOCTYPE z [<!ENTITY a "b">]>]]>'],
    ['hidden behind a quoted attribute with a CDATA opener', '<x a="><![CDATA["><!DOCTYPE z>]]></x>'],
    ['hidden in a processing instruction', '<?pi <![CDATA[ ?><!DOCTYPE z>]]>'],
  ])('cannot be smuggled %s', (_label, trick) => {
    const code = xmlErrorCode(() => parseInbound(textBody('<![CDATA[hi]]>', trick)));
    expect(['dtd_not_allowed', 'malformed']).toContain(code);
  });

  it('never expands an undeclared entity reference', () => {
    expect(xmlErrorCode(() => parseInbound(textBody('&lol9;')))).toBe('malformed');
    expect(xmlErrorCode(() => parseInbound(textBody('&nbsp;')))).toBe('malformed');
  });
});

describe('parseInbound: size limit', () => {
  it('refuses bodies over 64 KiB by default', () => {
    const body = textBody(`<![CDATA[${'a'.repeat(DEFAULT_MAX_XML_BYTES)}]]>`);
    expect(xmlErrorCode(() => parseInbound(body))).toBe('too_large');
    expect(xmlErrorCode(() => parseInbound(Buffer.from(body)))).toBe('too_large');
  });

  it('counts UTF-8 bytes, not characters', () => {
    const body = textBody(`<![CDATA[${'中'.repeat(300)}]]>`); // 900 bytes of content
    const bytes = Buffer.byteLength(body, 'utf8');
    expect(contentOf(parseInbound(body, { maxBytes: bytes }))).toHaveLength(300);
    expect(xmlErrorCode(() => parseInbound(body, { maxBytes: bytes - 1 }))).toBe('too_large');
    expect(xmlErrorCode(() => parseInbound(body, { maxBytes: body.length }))).toBe('too_large');
  });
});

describe('parseInbound: malformed input', () => {
  it.each([
    ['empty', ''],
    ['not XML', 'hello'],
    ['JSON', '{"MsgType":"text"}'],
    ['unclosed root', textBody('<![CDATA[hi]]>').replace('</xml>', '')],
    ['mismatched tags', textBody('<![CDATA[hi]]>').replace('</Content>', '</Contents>')],
    ['unterminated CDATA', textBody('<![CDATA[hi')],
    ['two roots', `${textBody('<![CDATA[hi]]>')}<xml></xml>`],
    ['trailing text', `${textBody('<![CDATA[hi]]>')}junk`],
    ['another root element', textBody('<![CDATA[hi]]>').replace(/<(\/?)xml>/g, '<$1root>')],
    ['a bare ampersand', textBody('a & b')],
    ['a reference to NUL', textBody('&#0;')],
    ['a reference beyond Unicode', textBody('&#x110000;')],
    ['a nested element in Content', textBody('<b>bold</b>')],
    ['a repeated Content', textBody('<![CDATA[a]]>', '<Content>b</Content>')],
    ['text directly inside <xml>', textBody('<![CDATA[hi]]>', 'stray')],
    ['a non-numeric CreateTime', textBody('<![CDATA[hi]]>').replace('1700000000', 'yesterday')],
    ['a negative CreateTime', textBody('<![CDATA[hi]]>').replace('1700000000', '-1')],
    ['an unbounded CreateTime', textBody('<![CDATA[hi]]>').replace('1700000000', '9'.repeat(20))],
    ['a stray closing tag', textBody('<![CDATA[hi]]>', '</MsgId>')],
    ['an attribute value containing <', textBody('<![CDATA[hi]]>').replace('<xml>', '<xml a="<">')],
    ['an unquoted attribute value', textBody('<![CDATA[hi]]>').replace('<xml>', '<xml a=b>')],
    ['CDATA outside the root', `<![CDATA[x]]>${textBody('<![CDATA[hi]]>')}`],
    ['an unterminated comment', textBody('<![CDATA[hi]]>', '<!-- no end')],
  ])('refuses %s', (_label, body) => {
    expect(xmlErrorCode(() => parseInbound(body))).toBe('malformed');
  });

  it('accepts a declaration, comments, attributes with > in quotes and CRLF line ends', () => {
    const body = `<?xml version="1.0" encoding="UTF-8"?>\r\n<!-- from WeChat -->\r\n${textBody('<![CDATA[hi]]>')
      .replace('<xml>', `<xml note='a>b' id="1">`)
      .replace(/\n/g, '\r\n')}\r\n<!-- end -->\r\n`;
    expect(contentOf(parseInbound(body))).toBe('hi');
  });

  it('refuses invalid UTF-8 bytes', () => {
    const bytes = Buffer.concat([Buffer.from(textBody('<![CDATA[').slice(0, -30)), Buffer.from([0xff, 0xfe])]);
    expect(xmlErrorCode(() => parseInbound(bytes))).toBe('malformed');
  });

  it('refuses a non-numeric location coordinate', () => {
    const body = fixture('location.xml').replace('23.134521', 'north');
    expect(xmlErrorCode(() => parseInbound(body))).toBe('malformed');
  });

  it('refuses deep nesting', () => {
    const deep = `${'<a>'.repeat(50)}${'</a>'.repeat(50)}`;
    expect(xmlErrorCode(() => parseInbound(textBody('<![CDATA[hi]]>', deep)))).toBe('malformed');
  });
});

describe('parseInbound: missing fields', () => {
  it.each([
    ['Content', (b: string) => b.replace(/<Content>.*<\/Content>/, '')],
    ['MsgId', (b: string) => b.replace(/<MsgId>.*<\/MsgId>/, '')],
    ['MsgType', (b: string) => b.replace(/<MsgType>.*<\/MsgType>/, '')],
    ['FromUserName', (b: string) => b.replace(/<FromUserName>.*<\/FromUserName>/, '')],
    ['CreateTime', (b: string) => b.replace(/<CreateTime>.*<\/CreateTime>/, '')],
    ['an empty FromUserName', (b: string) => b.replace(OPENID, '')],
  ])('reports %s', (_label, edit) => {
    expect(xmlErrorCode(() => parseInbound(edit(fixture('text.xml'))))).toBe('missing_field');
  });

  it('reports an event without Event', () => {
    const body = fixture('event-click.xml').replace(/<Event>.*<\/Event>/, '');
    expect(xmlErrorCode(() => parseInbound(body))).toBe('missing_field');
  });

  it('treats a voice message without Recognition as recognition undefined', () => {
    const body = fixture('voice.xml').replace(/<Recognition>.*<\/Recognition>/, '');
    const msg = parseInbound(body);
    expect(msg.kind === 'voice' ? msg.recognition : 'not voice').toBeUndefined();
  });
});

describe('parseEncryptedEnvelope', () => {
  it('reads ToUserName and the Encrypt value verbatim from a safe-mode body', () => {
    const env = parseEncryptedEnvelope(fixture('safe-mode-envelope.xml'));
    expect(env.toUserName).toBe(GH);
    expect(env.encrypt).toMatch(/^hyzAe4OzmOMbd6TvGdIOO6uBmd.*GhglF2PE=$/);
    expect(env.encrypt).toHaveLength(428);
  });

  it('accepts an envelope without ToUserName', () => {
    expect(parseEncryptedEnvelope('<xml><Encrypt><![CDATA[abcd]]></Encrypt></xml>')).toEqual({
      toUserName: undefined,
      encrypt: 'abcd',
    });
  });

  it('reports a missing or empty Encrypt', () => {
    expect(xmlErrorCode(() => parseEncryptedEnvelope(fixture('text.xml')))).toBe('missing_field');
    expect(xmlErrorCode(() => parseEncryptedEnvelope('<xml><Encrypt><![CDATA[]]></Encrypt></xml>'))).toBe(
      'missing_field',
    );
  });

  it('applies the same safety checks', () => {
    expect(xmlErrorCode(() => parseEncryptedEnvelope(fixture('billion-laughs.xml')))).toBe('dtd_not_allowed');
    expect(xmlErrorCode(() => parseEncryptedEnvelope('<xml><Encrypt>abc</xml>'))).toBe('malformed');
    expect(
      xmlErrorCode(() => parseEncryptedEnvelope('<xml><Encrypt>abcd</Encrypt></xml>', { maxBytes: 10 })),
    ).toBe('too_large');
  });
});
