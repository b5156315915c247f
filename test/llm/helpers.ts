/**
 * Shared helpers for the LLM backend tests.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LlmEvent, LlmRequest } from '../../lib/llm/types';

/** Reads a fixture from test/fixtures/llm as raw bytes. */
export function fixtureBytes(name: string): Buffer {
  return readFileSync(join(__dirname, '..', 'fixtures', 'llm', name));
}

/** Reads a fixture from test/fixtures/llm as text. */
export function fixtureText(name: string): string {
  return fixtureBytes(name).toString('utf8');
}

/** A `sleep` that records the requested waits and returns at once. */
export function recordingSleep(): { sleep: (ms: number) => Promise<void>; waits: number[] } {
  const waits: number[] = [];
  return {
    waits,
    sleep: async (ms: number) => {
      waits.push(ms);
    },
  };
}

/** Drains an event stream. */
export async function collect(events: AsyncIterable<LlmEvent>): Promise<LlmEvent[]> {
  const out: LlmEvent[] = [];
  for await (const event of events) out.push(event);
  return out;
}

/** The answer text the events build up (deltas appended, `replace` resets). */
export function answerText(events: readonly LlmEvent[]): string {
  let text = '';
  for (const event of events) {
    if (event.type === 'delta') text += event.text;
    if (event.type === 'replace') text = event.text;
  }
  return text;
}

/** The event types in order, for compact assertions. */
export function types(events: readonly LlmEvent[]): string[] {
  return events.map((event) => event.type);
}

/** The single `error` event, or a failure naming what came instead. */
export function errorOf(events: readonly LlmEvent[]): Extract<LlmEvent, { type: 'error' }> {
  const errors = events.filter((event): event is Extract<LlmEvent, { type: 'error' }> => event.type === 'error');
  const [first] = errors;
  if (errors.length !== 1 || !first) throw new Error(`expected one error event, got ${JSON.stringify(events)}`);
  return first;
}

/** A request with sensible defaults. */
export function llmRequest(overrides: Partial<LlmRequest> = {}): LlmRequest {
  return {
    userId: 'user-1',
    text: 'Hello',
    images: [],
    history: [],
    systemPrompt: 'You are a test assistant.',
    conversationId: undefined,
    tools: [],
    ...overrides,
  };
}

/** Yields `bytes` split at the given offsets. */
export async function* chunked(bytes: Uint8Array, offsets: readonly number[]): AsyncGenerator<Uint8Array> {
  let start = 0;
  for (const offset of offsets) {
    yield bytes.subarray(start, offset);
    start = offset;
  }
  yield bytes.subarray(start);
}
