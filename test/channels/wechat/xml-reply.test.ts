import { parseInbound, type WeChatInbound } from '../../../lib/channels/wechat/xml';
import { buildTextReply, cdata, stripInvalidXmlChars } from '../../../lib/channels/wechat/xml-reply';

const GH = 'gh_10f6c3c3ac5a';
const OPENID = 'oyORnuP8q7ou2gfYjqLzSIWZf0rs';

function contentOf(msg: WeChatInbound): string {
  if (msg.kind !== 'text') throw new Error(`expected text, got ${msg.kind}`);
  return msg.content;
}

describe('buildTextReply / cdata', () => {
  it('produces exactly the documented shape', () => {
    const xml = buildTextReply({ toUser: OPENID, fromUser: GH, createTimeSec: 1700000000, content: '你好' });
    expect(xml).toBe(
      `<xml><ToUserName><![CDATA[${OPENID}]]></ToUserName><FromUserName><![CDATA[${GH}]]></FromUserName>` +
        '<CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[你好]]></Content></xml>',
    );
  });

  it('splits ]]> across two CDATA sections', () => {
    expect(cdata('a]]>b')).toBe('<![CDATA[a]]]]><![CDATA[>b]]>');
    expect(cdata(']]>]]>')).toBe('<![CDATA[]]]]><![CDATA[>]]]]><![CDATA[>]]>');
    expect(cdata('')).toBe('<![CDATA[]]>');
  });

  it.each([
    'a]]>b',
    ']]>',
    ']]]]>>',
    'x]]>]]>y]]',
    'code: if (a[b[0]]>1) {}',
    '<![CDATA[nested]]>',
    '中文 😀 & <tag> "quotes" \'apos\'\n第二行\ttab',
  ])('round-trips %j through build -> parse', (content) => {
    // Arrange: the reply shape plus the MsgId an inbound text message carries.
    const reply = buildTextReply({ toUser: OPENID, fromUser: GH, createTimeSec: 1700000000, content });
    const asInbound = reply.replace('</xml>', '<MsgId>1</MsgId></xml>');
    // Act
    const parsed = parseInbound(asInbound);
    // Assert
    expect(contentOf(parsed)).toBe(content);
    expect(parsed.toUserName).toBe(OPENID);
    expect(parsed.fromUserName).toBe(GH);
  });

  it('strips characters illegal in XML 1.0 and keeps tab, newline, CR and astral characters', () => {
    const dirty = 'a\u0000b\u0008c\u000Bd\u000Ce\u001Ff\tg\nh\ri\uFFFEj\uFFFFk\uD800l\uDC00m😀\u007F\u0085';
    const clean = 'abcdef\tg\nh\rijklm😀\u007F\u0085';
    expect(stripInvalidXmlChars(dirty)).toBe(clean);
    const reply = buildTextReply({ toUser: OPENID, fromUser: GH, createTimeSec: 1, content: dirty });
    expect(reply).toContain(`<Content><![CDATA[${clean}]]></Content>`);
    // XML end-of-line handling (XML 1.0 section 2.11) turns a lone CR into LF on parsing.
    expect(contentOf(parseInbound(reply.replace('</xml>', '<MsgId>1</MsgId></xml>')))).toBe(clean.replace('\r', '\n'));
  });

  it('refuses a CreateTime that is not a non-negative integer', () => {
    expect(() => buildTextReply({ toUser: OPENID, fromUser: GH, createTimeSec: -1, content: 'x' })).toThrow(RangeError);
    expect(() => buildTextReply({ toUser: OPENID, fromUser: GH, createTimeSec: 1.5, content: 'x' })).toThrow(RangeError);
    expect(() => buildTextReply({ toUser: OPENID, fromUser: GH, createTimeSec: NaN, content: 'x' })).toThrow(RangeError);
  });
});
