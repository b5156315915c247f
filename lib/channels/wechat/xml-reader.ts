/**
 * The safe reading half of WeChat XML: the byte limit, strict UTF-8, the DTD refusal, and one
 * lexer-aware well-formedness scan that also collects the root's fields (WeChat's bodies are
 * flat: `<xml>` and text fields, a few nested ones, so no general XML parser is loaded; it was
 * most of the webhook bundle's load time over the AWS SDK's). No entity is ever expanded; the
 * five predefined XML entities and character references are decoded here, strictly, in
 * non-CDATA text only. xml.ts turns the fields into messages; xml-reply.ts builds replies.
 *
 * @module
 */

/** Why parsing failed. */
export type WeChatXmlErrorCode =
  /** The body is larger than the configured byte limit. */
  | 'too_large'
  /** The body contains a DTD (`<!DOCTYPE`, `<!ENTITY`, …) outside CDATA. */
  | 'dtd_not_allowed'
  /** Not well-formed XML, not valid UTF-8, root is not `<xml>`, or a field has a bad value. */
  | 'malformed'
  /** A field required for the message type is absent. */
  | 'missing_field';

/** Typed parse error. The message names a field at most, never echoes the body. */
export class WeChatXmlError extends Error {
  /** Machine-readable reason. */
  readonly code: WeChatXmlErrorCode;

  /**
   * @param code - machine-readable reason.
   * @param message - detail without body content.
   */
  constructor(code: WeChatXmlErrorCode, message: string) {
    super(message);
    this.name = 'WeChatXmlError';
    this.code = code;
  }
}

/** Default body limit: 64 KiB (WeChat bodies are a few hundred bytes). */
export const DEFAULT_MAX_XML_BYTES = 64 * 1024;

/** Options for the parsers. */
export interface ParseOptions {
  /** Largest accepted body in UTF-8 bytes; default {@link DEFAULT_MAX_XML_BYTES}. */
  maxBytes?: number;
}

// ---------------------------------------------------------------------------
// Inbound message types
// ---------------------------------------------------------------------------


const utf8Fatal = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

/** Applies the byte limit and decodes bytes as strict UTF-8. */
function toBoundedString(body: string | Uint8Array, maxBytes: number): string {
  if (typeof body === 'string') {
    if (Buffer.byteLength(body, 'utf8') > maxBytes) {
      throw new WeChatXmlError('too_large', `body exceeds ${maxBytes} bytes`);
    }
    return body.charCodeAt(0) === 0xfeff ? body.slice(1) : body;
  }
  if (body.length > maxBytes) {
    throw new WeChatXmlError('too_large', `body exceeds ${maxBytes} bytes`);
  }
  try {
    return utf8Fatal.decode(body); // also strips a UTF-8 BOM
  } catch {
    throw new WeChatXmlError('malformed', 'body is not valid UTF-8');
  }
}

/** Index of the first `<` inside `xml[from, to)`, or -1. */
function ltBetween(xml: string, from: number, to: number): number {
  const at = xml.indexOf('<', from);
  return at !== -1 && at < to ? at : -1;
}

/** An XML element name (XML 1.0 section 2.3, simplified to letters, digits and `_:.-`). */
const NAME = /^[\p{L}_:][\p{L}\p{N}_:.-]*/u;
/** The attribute list after an element name; values may not contain `<` (section 3.1). */
const ATTRIBUTES = /^(?:\s+[\p{L}_:][\p{L}\p{N}_:.-]*\s*=\s*(?:"[^"<]*"|'[^'<]*'))*\s*$/u;
/** Deepest element nesting accepted (WeChat bodies nest 3-4 levels at most). */
const MAX_DEPTH = 16;

function malformed(detail: string): WeChatXmlError {
  return new WeChatXmlError('malformed', detail);
}

/**
 * Scans the markup once: DTD refusal, well-formedness (balanced tags, one root element,
 * nothing but whitespace, comments and processing instructions outside it), and the
 * fields of the root: each direct child's text (text and CDATA pieces in document order,
 * comments and processing instructions skipped) or a marker that it has child elements.
 *
 * DTDs: any `<!` declaration outside CDATA (DOCTYPE, ENTITY, ELEMENT, ATTLIST,
 * conditional sections) is refused with `dtd_not_allowed`. A plain substring search is
 * not used because a user who pastes HTML (`<!DOCTYPE html>`) into the chat gets it
 * delivered inside CDATA, and refusing the body would drop their message.
 *
 * Every region skipped except CDATA (tags, comments, processing instructions) must contain
 * no `<` at all (well-formed XML never has one there); CDATA ends at the first `]]>`.
 */
function scanMarkup(xml: string): { rootName: string; fields: Map<string, FieldValue[]> } {
  const open: string[] = [];
  const fields = new Map<string, FieldValue[]>();
  let rootName = '';
  /** The root child being read: its name and text so far, or nested. */
  let field: { name: string; text: string; nested: boolean } | undefined;
  const addText = (raw: string, cdata: boolean): void => {
    if (open.length === 1) {
      // Whitespace between elements is fine; other text directly in the root is not.
      if (raw.trim() !== '') throw malformed('text directly inside <xml>');
    } else if (open.length === 2 && field) {
      field.text += cdata ? raw : decodeXmlText(raw);
    }
  };
  let i = 0;
  while (i < xml.length) {
    const lt = xml.indexOf('<', i);
    const textEnd = lt === -1 ? xml.length : lt;
    if (open.length === 0 && xml.slice(i, textEnd).trim() !== '') {
      throw malformed('text outside the root element');
    }
    if (open.length > 0 && textEnd > i) addText(xml.slice(i, textEnd), false);
    if (lt === -1) break;
    if (xml.startsWith('<![CDATA[', lt)) {
      const end = xml.indexOf(']]>', lt + 9);
      if (end === -1) throw malformed('unterminated CDATA section');
      if (open.length === 0) throw malformed('CDATA outside the root element');
      addText(xml.slice(lt + 9, end), true);
      i = end + 3;
    } else if (xml.startsWith('<!--', lt)) {
      const end = xml.indexOf('-->', lt + 4);
      if (end === -1 || ltBetween(xml, lt + 1, end) !== -1) throw malformed('bad comment');
      i = end + 3;
    } else if (xml.startsWith('<!', lt)) {
      throw new WeChatXmlError('dtd_not_allowed', 'DTD and entity declarations are not accepted');
    } else if (xml.startsWith('<?', lt)) {
      const end = xml.indexOf('?>', lt + 2);
      if (end === -1 || ltBetween(xml, lt + 1, end) !== -1) throw malformed('bad processing instruction');
      i = end + 2;
    } else {
      // A tag; quoted attribute values may contain '>' but never '<'.
      let k = lt + 1;
      let quote = '';
      for (; k < xml.length; k++) {
        const c = xml[k];
        if (c === '<') throw malformed("'<' inside a tag");
        if (quote !== '') {
          if (c === quote) quote = '';
        } else if (c === '"' || c === "'") {
          quote = c;
        } else if (c === '>') {
          break;
        }
      }
      if (k >= xml.length) throw malformed('unterminated tag');
      const depthBefore = open.length;
      const tag = checkTag(xml.slice(lt + 1, k), open, rootName !== '');
      if (depthBefore === 0) rootName = tag.name;
      if (!tag.closing) {
        if (depthBefore === 1) {
          field = { name: tag.name, text: '', nested: false };
          if (tag.selfClosing) endField();
        } else if (depthBefore === 2 && field) {
          field.nested = true;
        }
      } else if (depthBefore === 2) {
        endField();
      }
      i = k + 1;
    }
  }
  if (rootName === '') throw malformed('no root element');
  if (open.length > 0) throw malformed('unclosed element');
  return { rootName, fields };

  function endField(): void {
    if (!field) return;
    const list = fields.get(field.name) ?? [];
    list.push(field.nested ? { nested: true } : { text: field.text });
    fields.set(field.name, list);
    field = undefined;
  }
}

/** Checks one tag (the text between `<` and `>`) against the stack of open elements. */
function checkTag(tag: string, open: string[], rootSeen: boolean): { name: string; closing: boolean; selfClosing: boolean } {
  if (tag.startsWith('/')) {
    const name = tag.slice(1).trimEnd();
    if (open.pop() !== name) throw malformed('mismatched closing tag');
    return { name, closing: true, selfClosing: false };
  }
  const selfClosing = tag.endsWith('/');
  const body = selfClosing ? tag.slice(0, -1) : tag;
  const name = NAME.exec(body)?.[0];
  if (name === undefined || !ATTRIBUTES.test(body.slice(name.length))) throw malformed('bad start tag');
  if (open.length === 0 && rootSeen) throw malformed('more than one root element');
  if (!selfClosing) {
    if (open.length >= MAX_DEPTH) throw malformed('elements nested too deeply');
    open.push(name);
  }
  return { name, closing: false, selfClosing };
}

/** True for the XML 1.0 `Char` production. */
function isXmlChar(cp: number): boolean {
  return (
    cp === 0x9 ||
    cp === 0xa ||
    cp === 0xd ||
    (cp >= 0x20 && cp <= 0xd7ff) ||
    (cp >= 0xe000 && cp <= 0xfffd) ||
    (cp >= 0x10000 && cp <= 0x10ffff)
  );
}

const PREDEFINED_ENTITIES: ReadonlyMap<string, string> = new Map([
  ['amp', '&'],
  ['lt', '<'],
  ['gt', '>'],
  ['quot', '"'],
  ['apos', "'"],
]);

/**
 * Decodes the five predefined entities and numeric character references of XML 1.0
 * (section 4.6 / 4.1) in non-CDATA text. Anything else after `&` (an undeclared entity,
 * a bare `&`, a reference to a non-XML character) is not well-formed.
 */
function decodeXmlText(raw: string): string {
  if (!raw.includes('&')) return raw;
  return raw.replace(/&([^;&\s]{0,32});?/g, (whole: string, name: string): string => {
    if (!whole.endsWith(';')) {
      throw new WeChatXmlError('malformed', "bare '&' in text");
    }
    const named = PREDEFINED_ENTITIES.get(name);
    if (named !== undefined) return named;
    const numeric = /^#(?:x([0-9A-Fa-f]{1,6})|([0-9]{1,7}))$/.exec(name);
    if (numeric !== null) {
      const cp = numeric[1] !== undefined ? parseInt(numeric[1], 16) : Number(numeric[2]);
      if (isXmlChar(cp)) return String.fromCodePoint(cp);
    }
    throw new WeChatXmlError('malformed', 'unknown entity or invalid character reference');
  });
}

/** A direct child element of `<xml>`: its text, or a marker that it has child elements. */
type FieldValue = { readonly text: string } | { readonly nested: true };

/** The children of `<xml>`, by element name (repeated names keep every value). */
export type Fields = ReadonlyMap<string, readonly FieldValue[]>;

/** Runs every safety check, parses, and returns the direct children of the `<xml>` root. */
export function readFields(body: string | Uint8Array, opts: ParseOptions | undefined): Fields {
  const maxBytes = opts?.maxBytes ?? DEFAULT_MAX_XML_BYTES;
  const xml = toBoundedString(body, maxBytes);
  // XML 1.0 section 2.11: a parser reads CRLF and a lone CR as LF, CDATA included
  // (https://www.w3.org/TR/xml/#sec-line-ends).
  const { rootName, fields } = scanMarkup(xml.replace(/\r\n?/g, '\n'));
  if (rootName !== 'xml') throw new WeChatXmlError('malformed', 'the root element must be <xml>');
  return fields;
}

/** The text of field `name`; `undefined` when absent; malformed when repeated or nested. */
export function optionalText(fields: Fields, name: string): string | undefined {
  const values = fields.get(name);
  if (values === undefined || values.length === 0) return undefined;
  const [first] = values;
  if (values.length > 1 || first === undefined || !('text' in first)) {
    throw new WeChatXmlError('malformed', `field ${name} must appear once, as text`);
  }
  return first.text;
}

/** The text of required field `name`, verbatim. */
export function requiredText(fields: Fields, name: string): string {
  const value = optionalText(fields, name);
  if (value === undefined) throw new WeChatXmlError('missing_field', `missing field ${name}`);
  return value;
}

/** A required identifier-like field (trimmed, non-empty). */
export function requiredId(fields: Fields, name: string): string {
  const value = requiredText(fields, name).trim();
  if (value === '') throw new WeChatXmlError('missing_field', `empty field ${name}`);
  return value;
}

/** An optional field where empty means absent (trimmed). */
export function optionalNonEmpty(fields: Fields, name: string): string | undefined {
  const value = optionalText(fields, name)?.trim();
  return value === undefined || value === '' ? undefined : value;
}

/** A required decimal number (coordinates, scale). */
export function requiredNumber(fields: Fields, name: string): number {
  const raw = requiredText(fields, name).trim();
  if (!/^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/.test(raw)) {
    throw new WeChatXmlError('malformed', `field ${name} is not a number`);
  }
  return Number(raw);
}

/** `CreateTime`: epoch seconds, a non-negative safe integer. */
export function createTime(fields: Fields): number {
  const raw = requiredText(fields, 'CreateTime').trim();
  const value = Number(raw);
  if (!/^\d{1,15}$/.test(raw) || !Number.isSafeInteger(value)) {
    throw new WeChatXmlError('malformed', 'field CreateTime is not epoch seconds');
  }
  return value;
}
