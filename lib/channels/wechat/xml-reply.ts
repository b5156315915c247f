/**
 * WeChat passive replies: the documented text-reply XML, with every string in CDATA
 * (https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Passive_user_reply_message.html):
 * characters XML 1.0 forbids are removed and a `]]>` inside text is split across two
 * CDATA sections.
 *
 * @module
 */

/**
 * Removes characters that XML 1.0 does not allow (section 2.2 `Char`): C0 controls
 * other than TAB, LF and CR, lone surrogates, U+FFFE and U+FFFF. No XML parser
 * (WeChat's included) accepts them, even inside CDATA.
 *
 * @param text - any string.
 * @returns `text` without the illegal characters.
 */
export function stripInvalidXmlChars(text: string): string {
  // Pairs are matched first so that only *lone* surrogates fall in the removed class.
  return text.replace(
    /([\uD800-\uDBFF][\uDC00-\uDFFF])|[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD]/g,
    (_whole: string, pair: string | undefined): string => pair ?? '',
  );
}

/**
 * Wraps text in CDATA so that it round-trips exactly (after {@link stripInvalidXmlChars}).
 *
 * A CDATA section ends at the first `]]>`, so each `]]>` in the text is split across
 * two sections: `]]` closes the first and `>` opens the next
 * (`]]>` → `]]]]><![CDATA[>`), as the WeChat reply rule requires.
 *
 * @example
 * ```ts
 * cdata('a]]>b'); // => '<![CDATA[a]]]]><![CDATA[>b]]>'
 * ```
 */
export function cdata(text: string): string {
  return `<![CDATA[${stripInvalidXmlChars(text).split(']]>').join(']]]]><![CDATA[>')}]]>`;
}

/** Inputs of {@link buildTextReply}. */
export interface TextReplyInput {
  /** The user's OpenID (the inbound `FromUserName`). */
  toUser: string;
  /** The account id `gh_…` (the inbound `ToUserName`). */
  fromUser: string;
  /** Epoch seconds (injected clock). */
  createTimeSec: number;
  /** Reply text; keep it within the passive-reply size (see `takePage`). */
  content: string;
}

/**
 * Builds a passive text reply in the documented shape:
 * `<xml><ToUserName><![CDATA[…]]></ToUserName><FromUserName><![CDATA[…]]></FromUserName><CreateTime>…</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[…]]></Content></xml>`
 *
 * All strings go through {@link cdata} (illegal characters removed, `]]>` split).
 *
 * @throws `RangeError` when `createTimeSec` is not a non-negative integer.
 */
export function buildTextReply(input: TextReplyInput): string {
  const { toUser, fromUser, createTimeSec, content } = input;
  if (!Number.isSafeInteger(createTimeSec) || createTimeSec < 0) {
    throw new RangeError('createTimeSec must be a non-negative integer');
  }
  return (
    `<xml><ToUserName>${cdata(toUser)}</ToUserName>` +
    `<FromUserName>${cdata(fromUser)}</FromUserName>` +
    `<CreateTime>${createTimeSec}</CreateTime>` +
    `<MsgType><![CDATA[text]]></MsgType>` +
    `<Content>${cdata(content)}</Content></xml>`
  );
}
