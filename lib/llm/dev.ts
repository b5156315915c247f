/**
 * Offline `dev` backend: the default when no API key is configured, so the gateway can be run
 * and demoed end to end without a vendor account. Deterministic (same input, same output) and
 * clearly labelled as a local answer so nobody mistakes it for a model.
 */
import type { LlmBackend, LlmEvent, LlmRequest } from './types';

/** The label every dev answer starts with. */
export const DEV_LABEL = '[dev LLM — no API key configured]';
/** Put this in the message to get a long answer (several thousand characters) for paging demos. */
export const DEV_LONG_MARKER = '/dev-long';
/**
 * Put this in the message to make the answer wait {@link DevBackendOptions.slowMs} before its
 * first chunk: longer than WeChat's three deliveries, so the "reply 1" path can be seen.
 */
export const DEV_SLOW_MARKER = '/dev-slow';
/** Minimum number of chunks an answer is streamed in. */
export const DEV_MIN_CHUNKS = 4;

/** Options of {@link createDevBackend}. */
export interface DevBackendOptions {
  /** Pause between chunks, to imitate a model streaming (0 for none). */
  chunkDelayMs: number;
  /** Pause before the first chunk of a {@link DEV_SLOW_MARKER} answer (default 0). */
  slowMs?: number;
  sleep(ms: number): Promise<void>;
}

const LONG_PARAGRAPHS: readonly string[] = [
  'This is a long answer from the local dev backend. It exists so that you can see how a channel splits an answer that does not fit in one message: WeChat passive replies stop at about 2,048 bytes, WhatsApp text messages at 4,096 characters, and SMS segments at 153 or 67 characters.',
  'Paragraph two mixes scripts to exercise byte counting: 你好，世界！这是一段用于测试分页的中文文本。每个汉字在 UTF-8 中占用三个字节，所以按字节分页和按字符分页的结果不同。Emoji take four bytes each: 🚀🌍✨.',
  'Paragraph three is a numbered list:\n1. The first item explains that lists should stay together when possible.\n2. The second item is a little longer, so that a page boundary might fall inside it and the pager has to choose a sensible place to cut.\n3. The third item closes the list.',
  'Paragraph four is one long sentence without any line breaks that keeps going for quite a while, describing nothing in particular but giving the pager a stretch of text where the only sensible cut points are spaces between words rather than blank lines between paragraphs, which is the harder case to handle gracefully.',
  'Paragraph five has a short code sample:\n```\nfunction add(a, b) {\n  return a + b;\n}\n```\nCode blocks read badly when cut in the middle.',
];

/** The deterministic long answer (for `/dev-long`), about 6,000 characters. */
export function devLongAnswer(): string {
  const sections: string[] = [];
  for (let part = 1; part <= 4; part++) {
    sections.push(`Part ${part} of 4.`);
    sections.push(...LONG_PARAGRAPHS);
  }
  sections.push('End of the long dev answer.');
  return sections.join('\n\n');
}

/** The deterministic answer for `request`. */
export function devAnswer(request: LlmRequest): string {
  if (request.text.includes(DEV_LONG_MARKER)) return `${DEV_LABEL}\n\n${devLongAnswer()}`;
  const turns = request.history.length;
  const images = request.images.length;
  const imageNote = images === 0 ? '' : ` (${images} image${images === 1 ? '' : 's'} received, not looked at)`;
  const said = request.text === '' ? '(nothing)' : request.text;
  return `${DEV_LABEL} You said: ${said}${imageNote}. (${turns} earlier turn${turns === 1 ? '' : 's'} remembered)`;
}

/** Splits `text` into at least `minChunks` pieces (fewer only when there are fewer characters), never inside a surrogate pair. */
export function splitIntoChunks(text: string, minChunks: number = DEV_MIN_CHUNKS): string[] {
  const chars = Array.from(text); // code points, so emoji are not cut in half
  const size = Math.max(1, Math.min(200, Math.floor(chars.length / minChunks)));
  const chunks: string[] = [];
  for (let i = 0; i < chars.length; i += size) chunks.push(chars.slice(i, i + size).join(''));
  return chunks;
}

/** Creates the offline dev backend. */
export function createDevBackend(opts: DevBackendOptions): LlmBackend {
  async function* stream(request: LlmRequest, signal?: AbortSignal): AsyncGenerator<LlmEvent> {
    const chunks = splitIntoChunks(devAnswer(request));
    const slowMs = opts.slowMs ?? 0;
    if (slowMs > 0 && request.text.includes(DEV_SLOW_MARKER)) await opts.sleep(slowMs);
    for (const [index, chunk] of chunks.entries()) {
      if (signal?.aborted) return;
      if (index > 0 && opts.chunkDelayMs > 0) await opts.sleep(opts.chunkDelayMs);
      if (signal?.aborted) return;
      yield { type: 'delta', text: chunk };
    }
    yield { type: 'done', finishReason: 'stop' };
  }

  /** Offline stand-in for speech-to-text, so voice channels can be demoed without a key. */
  async function transcribe(audio: Uint8Array, filename: string, mimeType: string): Promise<string> {
    return `(voice message ${filename}, ${mimeType}, ${audio.byteLength} bytes — no transcription service configured)`;
  }

  return { name: 'dev', capabilities: { keepsHistory: false, acceptsImages: false }, stream, transcribe };
}
