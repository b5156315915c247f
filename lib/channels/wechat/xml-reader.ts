/**
 * The safe reading half of WeChat XML: the byte limit, strict UTF-8, the DTD refusal and the
 * lexer-aware well-formedness pre-scan, the tree built by fast-xml-parser (entities off), and
 * typed access to the root's fields. xml.ts turns the fields into messages; xml-reply.ts
 * builds replies.
 *
 * @module
 */
import { XMLParser } from 'fast-xml-parser';

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
 * Checks the markup before the parser sees it: DTD refusal and well-formedness
 * (balanced tags, one root element, nothing but whitespace, comments and processing
 * instructions outside it). fast-xml-parser itself is lenient about mismatched or
 * unclosed tags, and its validator is deprecated, so this is done here.
 *
 * DTDs: any `<!` declaration outside CDATA (DOCTYPE, ENTITY, ELEMENT, ATTLIST,
 * conditional sections) is refused with `dtd_not_allowed`. A plain substring search is
 * not used because a user who pastes HTML (`<!DOCTYPE html>`) into the chat gets it
 * delivered inside CDATA, and refusing the body would drop their message.
 *
 * Why this scan cannot be bypassed by disagreeing with the parser: every region it
 * skips except CDATA (tags, comments, processing instructions) must contain no `<` at
 * all (well-formed XML never has one there), so wherever this scan and the parser
 * might disagree on where such a region ends, no markup can start; CDATA is recognised
 * from the same opener and ends at the first `]]>` in both.
 */
function checkMarkup(xml: string): void {
  const open: string[] = [];
  let rootSeen = false;
  let i = 0;
  while (i < xml.length) {
    const lt = xml.indexOf('<', i);
    const textEnd = lt === -1 ? xml.length : lt;
    if (open.length === 0 && xml.slice(i, textEnd).trim() !== '') {
      throw malformed('text outside the root element');
    }
    if (lt === -1) break;
    if (xml.startsWith('<![CDATA[', lt)) {
      const end = xml.indexOf(']]>', lt + 9);
      if (end === -1) throw malformed('unterminated CDATA section');
      if (open.length === 0) throw malformed('CDATA outside the root element');
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
      // A tag; quoted attribute values may contain '>' (as in the parser) but never '<'.
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
      checkTag(xml.slice(lt + 1, k), open, rootSeen);
      rootSeen = true;
      i = k + 1;
    }
  }
  if (!rootSeen) throw malformed('no root element');
  if (open.length > 0) throw malformed('unclosed element');
}

/** Checks one tag (the text between `<` and `>`) against the stack of open elements. */
function checkTag(tag: string, open: string[], rootSeen: boolean): void {
  if (tag.startsWith('/')) {
    const name = tag.slice(1).trimEnd();
    if (open.pop() !== name) throw malformed('mismatched closing tag');
    return;
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
}

/** Name of the CDATA property in fast-xml-parser's ordered output. */
const CDATA = '#cdata';
/** Name of the text property in fast-xml-parser's ordered output. */
const TEXT = '#text';

const parser = new XMLParser({
  preserveOrder: true, // keeps text and CDATA pieces in document order
  cdataPropName: CDATA, // CDATA stays verbatim, apart from text
  processEntities: false, // no DTD entities, ever; predefined ones are decoded below
  parseTagValue: false, // MsgId is a 64-bit integer: never turn it into a number
  parseAttributeValue: false,
  trimValues: false, // user text keeps its whitespace
  ignoreAttributes: true,
  ignoreDeclaration: true,
  ignorePiTags: true,
  maxNestedTags: MAX_DEPTH,
});

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isUnknownArray(value: unknown): value is readonly unknown[] {
  return Array.isArray(value);
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

/** The text of an element whose children are text and CDATA pieces only. */
function elementValue(children: readonly unknown[]): FieldValue {
  let text = '';
  for (const node of children) {
    if (!isRecord(node)) throw new WeChatXmlError('malformed', 'unexpected parser output');
    for (const [key, value] of Object.entries(node)) {
      if (key === ':@') continue; // attributes (ignored)
      if (key === TEXT) {
        if (typeof value !== 'string') throw new WeChatXmlError('malformed', 'unexpected parser output');
        text += decodeXmlText(value);
      } else if (key === CDATA) {
        text += cdataText(value);
      } else {
        return { nested: true };
      }
    }
  }
  return { text };
}

/** Verbatim text of a CDATA node (`[{ '#text': '…' }]`, or `[]` when empty). */
function cdataText(value: unknown): string {
  if (!isUnknownArray(value)) throw new WeChatXmlError('malformed', 'unexpected parser output');
  let text = '';
  for (const piece of value) {
    if (!isRecord(piece)) throw new WeChatXmlError('malformed', 'unexpected parser output');
    const t = piece[TEXT];
    if (t === undefined) continue;
    if (typeof t !== 'string') throw new WeChatXmlError('malformed', 'unexpected parser output');
    text += t;
  }
  return text;
}

/** The children of `<xml>`, by element name (repeated names keep every value). */
export type Fields = ReadonlyMap<string, readonly FieldValue[]>;

/** Runs every safety check, parses, and returns the direct children of the `<xml>` root. */
export function readFields(body: string | Uint8Array, opts: ParseOptions | undefined): Fields {
  const maxBytes = opts?.maxBytes ?? DEFAULT_MAX_XML_BYTES;
  const xml = toBoundedString(body, maxBytes);
  checkMarkup(xml);
  let parsed: unknown;
  try {
    parsed = parser.parse(xml);
  } catch {
    throw new WeChatXmlError('malformed', 'body is not well-formed XML');
  }
  if (!isUnknownArray(parsed)) throw new WeChatXmlError('malformed', 'unexpected parser output');

  let root: readonly unknown[] | undefined;
  for (const node of parsed) {
    if (!isRecord(node)) throw new WeChatXmlError('malformed', 'unexpected parser output');
    for (const [key, value] of Object.entries(node)) {
      if (key === ':@') continue;
      if (key === TEXT && typeof value === 'string' && value.trim() === '') continue;
      if (key !== 'xml' || root !== undefined || !isUnknownArray(value)) {
        throw new WeChatXmlError('malformed', 'the root element must be a single <xml>');
      }
      root = value;
    }
  }
  if (root === undefined) throw new WeChatXmlError('malformed', 'the root element must be <xml>');

  const fields = new Map<string, FieldValue[]>();
  for (const node of root) {
    if (!isRecord(node)) throw new WeChatXmlError('malformed', 'unexpected parser output');
    for (const [key, value] of Object.entries(node)) {
      if (key === ':@') continue;
      if (key === TEXT || key === CDATA) {
        // Whitespace between elements is fine; other text directly in <xml> is not.
        const text = key === TEXT && typeof value === 'string' ? value : cdataText(value);
        if (text.trim() !== '') throw new WeChatXmlError('malformed', 'text directly inside <xml>');
        continue;
      }
      if (!isUnknownArray(value)) throw new WeChatXmlError('malformed', 'unexpected parser output');
      const list = fields.get(key) ?? [];
      list.push(elementValue(value));
      fields.set(key, list);
    }
  }
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
