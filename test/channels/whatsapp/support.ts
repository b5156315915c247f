/**
 * Helpers shared by the WhatsApp integration suites: fixture rewriting (fresh ids per test, since the
 * gateway deduplicates by `wamid` for days).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { metaJson, sampleWamid } from '../../../local/samples/whatsapp';

/** Directory of the WhatsApp fixtures. */
export const FIXTURES = path.resolve(__dirname, '../../fixtures/whatsapp');

/** The phone number id every fixture is addressed to. */
export const FIXTURE_PHONE_NUMBER_ID = '106540352242922';

/** Raw fixture bytes (for tests where the exact bytes matter). */
export function fixtureBytes(name: string): Buffer {
  return readFileSync(path.join(FIXTURES, name));
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function records(value: unknown): Record<string, unknown>[] {
  return Array.isArray(value) ? value.filter(isRecord) : [];
}

/**
 * A fixture with its messages re-addressed: message `i` gets `ids[i]` (fresh ones by
 * default) and every sender (and contact) in `senders` is replaced, then re-serialised as
 * Meta does. Returns the body and the ids used.
 */
export function fixtureWith(name: string, opts: { from?: Readonly<Record<string, string>>; ids?: readonly string[] } = {}): { body: string; ids: string[] } {
  const parsed: unknown = JSON.parse(fixtureBytes(name).toString('utf8'));
  const ids: string[] = [];
  const swap = (user: string): string => opts.from?.[user] ?? user;
  if (!isRecord(parsed)) throw new Error(`fixture ${name} is not an object`);
  for (const entry of records(parsed.entry)) {
    for (const change of records(entry.changes)) {
      const value = isRecord(change.value) ? change.value : {};
      for (const contact of records(value.contacts)) {
        if (typeof contact.wa_id === 'string') contact.wa_id = swap(contact.wa_id);
      }
      for (const m of records(value.messages)) {
        const id = opts.ids?.[ids.length] ?? sampleWamid();
        ids.push(id);
        m.id = id;
        if (typeof m.from === 'string') m.from = swap(m.from);
      }
      for (const s of records(value.statuses)) {
        if (typeof s.recipient_id === 'string') s.recipient_id = swap(s.recipient_id);
      }
    }
  }
  return { body: metaJson(parsed), ids };
}

/** Polls `check` until it returns true (the worker runs asynchronously). */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
