/**
 * WeChat Official Account XML: inbound messages and events, parsed safely (pure, no I/O).
 * The reading itself is xml-reader.ts; passive replies are built in xml-reply.ts.
 *
 * Vendor rules (WeChat Official Account docs "接收普通消息" / "接收事件推送" /
 * "被动回复用户消息"; https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Receiving_standard_messages.html,
 * https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Receiving_event_pushes.html,
 * https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Passive_user_reply_message.html):
 * - Inbound bodies are `<xml>` with `ToUserName`, `FromUserName`, `CreateTime`
 *   (epoch seconds), `MsgType` and per-type fields; strings come mostly in CDATA.
 * - `MsgId` is a 64-bit integer: it is kept as a string (a JS number loses digits).
 * - The passive text reply has a fixed shape; a `]]>` inside text must be split
 *   across two CDATA sections.
 * - DTD / entity expansion must be disabled in the parser.
 *
 * Safety: bodies over a byte limit are refused before parsing; DTDs are refused and
 * well-formedness is checked by a lexer-aware pre-scan (see {@link parseInbound});
 * fast-xml-parser then only builds the tree, with entity
 * processing off and `parseTagValue: false`; the five predefined XML entities and
 * character references are decoded here, strictly, in non-CDATA text only.
 *
 * @module
 */
import { readFields, optionalText, requiredText, requiredId, optionalNonEmpty, requiredNumber, createTime, WeChatXmlError, type ParseOptions } from './xml-reader';

export { DEFAULT_MAX_XML_BYTES, WeChatXmlError, type ParseOptions, type WeChatXmlErrorCode } from './xml-reader';

// ---------------------------------------------------------------------------
// Inbound message types
// ---------------------------------------------------------------------------

/** Fields every inbound message and event carries. */
export interface WeChatInboundCommon {
  /** The account's original id (`gh_…`). */
  toUserName: string;
  /** The sender's OpenID. */
  fromUserName: string;
  /** `CreateTime`, epoch seconds. */
  createTimeSec: number;
  /** `MsgType` exactly as sent. */
  msgType: string;
}

/** `MsgType=text`. */
export interface WeChatTextMessage extends WeChatInboundCommon {
  kind: 'text';
  /** The text, verbatim. */
  content: string;
  /** 64-bit message id, as a decimal string. */
  msgId: string;
}

/** `MsgType=image`. */
export interface WeChatImageMessage extends WeChatInboundCommon {
  kind: 'image';
  /** `PicUrl`: the image on WeChat's CDN. */
  picUrl: string;
  /** `MediaId`: temporary media id (3 days), for `media/get`. */
  mediaId: string;
  /** 64-bit message id, as a decimal string. */
  msgId: string;
}

/** `MsgType=voice`. */
export interface WeChatVoiceMessage extends WeChatInboundCommon {
  kind: 'voice';
  /** `MediaId` of the AMR / Speex audio. */
  mediaId: string;
  /** `amr` or `speex`, as sent. */
  format: string;
  /**
   * Speech recognition result when the account has it enabled. WeChat may send the
   * element empty; absent and empty are both `undefined` here.
   */
  recognition: string | undefined;
  /** 64-bit message id, as a decimal string. */
  msgId: string;
}

/** `MsgType=video` or `MsgType=shortvideo`. */
export interface WeChatVideoMessage extends WeChatInboundCommon {
  kind: 'video' | 'shortvideo';
  /** `MediaId` of the video. */
  mediaId: string;
  /** `ThumbMediaId` of its thumbnail. */
  thumbMediaId: string;
  /** 64-bit message id, as a decimal string. */
  msgId: string;
}

/** `MsgType=location`. */
export interface WeChatLocationMessage extends WeChatInboundCommon {
  kind: 'location';
  /** `Location_X`: latitude in degrees. */
  locationX: number;
  /** `Location_Y`: longitude in degrees. */
  locationY: number;
  /** `Scale`: map zoom level. */
  scale: number;
  /** `Label`: place description. */
  label: string;
  /** 64-bit message id, as a decimal string. */
  msgId: string;
}

/** `MsgType=link`. */
export interface WeChatLinkMessage extends WeChatInboundCommon {
  kind: 'link';
  /** `Title`, verbatim. */
  title: string;
  /** `Description`, verbatim. */
  description: string;
  /** `Url` of the shared page. */
  url: string;
  /** 64-bit message id, as a decimal string. */
  msgId: string;
}

/** `MsgType=event`. */
export interface WeChatEventMessage extends WeChatInboundCommon {
  kind: 'event';
  /**
   * `Event` exactly as sent: `subscribe`, `unsubscribe`, `SCAN`, `LOCATION`, `CLICK`,
   * `VIEW`, … (WeChat mixes cases; compare case-sensitively against the documented value).
   */
  event: string;
  /** `EventKey` (menu key, `qrscene_…`, URL for VIEW); absent or empty → `undefined`. */
  eventKey: string | undefined;
  /** `Ticket` of a QR-code scan (subscribe with scene, SCAN); absent or empty → `undefined`. */
  ticket: string | undefined;
}

/** Any other `MsgType` (e.g. `miniprogrampage`, or a type added later). */
export interface WeChatUnknownMessage extends WeChatInboundCommon {
  kind: 'unknown';
  /** `MsgId` when present. */
  msgId: string | undefined;
}

/** A parsed inbound body; switch on `kind` (the `unknown` arm is explicit). */
export type WeChatInbound =
  | WeChatTextMessage
  | WeChatImageMessage
  | WeChatVoiceMessage
  | WeChatVideoMessage
  | WeChatLocationMessage
  | WeChatLinkMessage
  | WeChatEventMessage
  | WeChatUnknownMessage;

/** A safe-mode request body: `<xml><ToUserName>…</ToUserName><Encrypt>…</Encrypt></xml>`. */
export interface WeChatEncryptedEnvelope {
  /** `ToUserName` when present (it is in the documented envelope). */
  toUserName: string | undefined;
  /** The base64 ciphertext, verbatim (input to `msg_signature` and decryption). */
  encrypt: string;
}

// ---------------------------------------------------------------------------
// Safe reading: size, encoding, DTD pre-scan, parse, narrowing
// ---------------------------------------------------------------------------

/**
 * Parses a plain (or decrypted) inbound WeChat body into a {@link WeChatInbound}.
 *
 * Safety checks, in order: byte limit (`too_large`, default 64 KiB); strict UTF-8 for
 * byte input; DTD refusal (`dtd_not_allowed`: any `<!DOCTYPE`, `<!ENTITY` or other
 * `<!` declaration outside CDATA — a DOCTYPE quoted inside a user's CDATA text is
 * just text); well-formedness and the `<xml>` root (`malformed`). Entities are never
 * expanded: only `&amp; &lt; &gt; &quot; &apos;` and numeric references are decoded,
 * in non-CDATA text; CDATA comes through verbatim, and adjacent pieces (as produced
 * by the `]]>` split) are joined.
 *
 * Text fields (`Content`, `Title`, `Description`, `Label`, `Recognition`) are verbatim;
 * identifiers are trimmed. Unknown `MsgType` values give the `unknown` arm.
 *
 * @param body - the raw request body (string or bytes).
 * @param opts - `maxBytes` limit.
 * @throws {@link WeChatXmlError} `too_large` | `dtd_not_allowed` | `malformed` | `missing_field`.
 *
 * @example
 * ```ts
 * const msg = parseInbound(body);
 * if (msg.kind === 'text') reply(msg.fromUserName, msg.content, msg.msgId);
 * ```
 */
export function parseInbound(body: string | Uint8Array, opts?: ParseOptions): WeChatInbound {
  const fields = readFields(body, opts);
  const common: WeChatInboundCommon = {
    toUserName: requiredId(fields, 'ToUserName'),
    fromUserName: requiredId(fields, 'FromUserName'),
    createTimeSec: createTime(fields),
    msgType: requiredId(fields, 'MsgType'),
  };
  switch (common.msgType) {
    case 'text':
      return { ...common, kind: 'text', content: requiredText(fields, 'Content'), msgId: requiredId(fields, 'MsgId') };
    case 'image':
      return {
        ...common,
        kind: 'image',
        picUrl: requiredId(fields, 'PicUrl'),
        mediaId: requiredId(fields, 'MediaId'),
        msgId: requiredId(fields, 'MsgId'),
      };
    case 'voice':
      return {
        ...common,
        kind: 'voice',
        mediaId: requiredId(fields, 'MediaId'),
        format: requiredId(fields, 'Format'),
        recognition: emptyToUndefined(optionalText(fields, 'Recognition')),
        msgId: requiredId(fields, 'MsgId'),
      };
    case 'video':
    case 'shortvideo':
      return {
        ...common,
        kind: common.msgType,
        mediaId: requiredId(fields, 'MediaId'),
        thumbMediaId: requiredId(fields, 'ThumbMediaId'),
        msgId: requiredId(fields, 'MsgId'),
      };
    case 'location':
      return {
        ...common,
        kind: 'location',
        locationX: requiredNumber(fields, 'Location_X'),
        locationY: requiredNumber(fields, 'Location_Y'),
        scale: requiredNumber(fields, 'Scale'),
        label: requiredText(fields, 'Label'),
        msgId: requiredId(fields, 'MsgId'),
      };
    case 'link':
      return {
        ...common,
        kind: 'link',
        title: requiredText(fields, 'Title'),
        description: requiredText(fields, 'Description'),
        url: requiredId(fields, 'Url'),
        msgId: requiredId(fields, 'MsgId'),
      };
    case 'event':
      return {
        ...common,
        kind: 'event',
        event: requiredId(fields, 'Event'),
        eventKey: optionalNonEmpty(fields, 'EventKey'),
        ticket: optionalNonEmpty(fields, 'Ticket'),
      };
    default:
      return { ...common, kind: 'unknown', msgId: optionalNonEmpty(fields, 'MsgId') };
  }
}

/** Free text where an empty (or whitespace-only) element means "none"; kept verbatim otherwise. */
function emptyToUndefined(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value;
}

/**
 * Parses a safe-mode body `<xml><ToUserName>…</ToUserName><Encrypt>…</Encrypt></xml>`
 * with the same safety checks as {@link parseInbound}.
 *
 * `encrypt` is returned verbatim (it is signed as sent).
 *
 * @throws {@link WeChatXmlError} as {@link parseInbound}; `missing_field` without `Encrypt`.
 */
export function parseEncryptedEnvelope(body: string | Uint8Array, opts?: ParseOptions): WeChatEncryptedEnvelope {
  const fields = readFields(body, opts);
  const encrypt = requiredText(fields, 'Encrypt');
  if (encrypt === '') throw new WeChatXmlError('missing_field', 'empty field Encrypt');
  return { toUserName: optionalNonEmpty(fields, 'ToUserName'), encrypt };
}
