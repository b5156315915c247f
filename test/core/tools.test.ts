import { createToolRegistry, parseToolArguments, saveContactTool, UNVERIFIED_CALLER_ERROR, type ToolDeps } from '../../lib/core/tools';
import { silentLog, type Job } from '../../lib/types';
import type { Contact } from '../../lib/store/contacts';

function job(overrides: Partial<Job> = {}): Job {
  return {
    v: 1,
    channel: 'twilio',
    userId: '+15551234567',
    msgKey: 'SM1',
    conversationKey: 'twilio#+15551234567',
    input: { kind: 'text', text: 'register me' },
    reply: { channel: 'twilio', to: '+15551234567', from: '+15005550006', medium: 'sms', callSid: '' },
    arrivedAtMs: 0,
    ...overrides,
  };
}

/** Save options the tool passed, per call. */
type SaveOptions = { overwriteOthers: boolean; createOnly?: boolean } | undefined;

/**
 * A contact store in memory with the conditions of the DynamoDB one: `createOnly` keeps
 * any existing contact, no `overwriteOthers` keeps one registered by someone else.
 */
function fakeDeps(existing: readonly Contact[] = []): { deps: ToolDeps; saved: Contact[]; options: SaveOptions[] } {
  const saved: Contact[] = [];
  const options: SaveOptions[] = [];
  const deps: ToolDeps = {
    clock: { nowMs: () => 42, sleep: async () => undefined },
    log: silentLog,
    contacts: {
      save: async (input, nowMs, opts) => {
        options.push(opts);
        const old = existing.find((c) => c.phone === input.phone);
        if (old && (opts?.createOnly === true || (opts?.overwriteOthers === false && old.registeredBy !== input.registeredBy))) return undefined;
        const contact: Contact = { ...input, createdAtMs: old?.createdAtMs ?? nowMs, updatedAtMs: nowMs };
        saved.push(contact);
        return contact;
      },
    },
  };
  return { deps, saved, options };
}

async function runSave(j: Job, args: unknown, existing: readonly Contact[] = []): Promise<{ result: string; saved: Contact[]; options: SaveOptions[] }> {
  const { deps, saved, options } = fakeDeps(existing);
  const tool = saveContactTool(j, deps);
  if (!tool) throw new Error('save_contact is missing');
  return { result: await tool.run(typeof args === 'string' ? args : JSON.stringify(args)), saved, options };
}

describe('createToolRegistry', () => {
  it('offers save_contact with a JSON schema requiring the name', () => {
    const tools = createToolRegistry(fakeDeps().deps)(job());
    expect(tools.map((t) => t.name)).toEqual(['save_contact']);
    expect(tools[0]?.parameters).toMatchObject({ type: 'object', required: ['name'] });
  });

  it('takes extra tools and skips factories that decline a job', () => {
    const registry = createToolRegistry(fakeDeps().deps, [
      saveContactTool,
      (j) => (j.channel === 'wechat' ? { name: 'wechat_only', description: '', parameters: {}, run: async () => '' } : undefined),
    ]);
    expect(registry(job()).map((t) => t.name)).toEqual(['save_contact']);
    expect(registry(job({ channel: 'wechat', userId: 'oABC' })).map((t) => t.name)).toEqual(['save_contact', 'wechat_only']);
  });
});

describe('save_contact', () => {
  it("defaults the phone to the caller's number on Twilio", async () => {
    const { result, saved } = await runSave(job(), { name: '  Ada   Lovelace ' });
    expect(saved).toEqual([{ phone: '+15551234567', name: 'Ada Lovelace', channel: 'twilio', registeredBy: '+15551234567', createdAtMs: 42, updatedAtMs: 42 }]);
    expect(result).toMatch(/^Saved: Ada Lovelace, \+15551234567/);
  });

  it('uses a given phone number, normalised to E.164', async () => {
    const { saved } = await runSave(job(), { name: 'Bob', phone: '+44 (20) 7946-0958' });
    expect(saved[0]?.phone).toBe('+442079460958');
  });

  it('defaults to the wa_id on WhatsApp Cloud API', async () => {
    const { saved } = await runSave(job({ channel: 'whatsapp', userId: '4915112345678' }), { name: 'Eve' });
    expect(saved[0]?.phone).toBe('+4915112345678');
  });

  it('asks for a number where the user id is not one (WeChat)', async () => {
    const { result, saved } = await runSave(job({ channel: 'wechat', userId: 'oUpF8uMuAJO_M2pxb1Q9zNjWeS6o' }), { name: 'Li' });
    expect(result).toMatch(/^Error: no valid phone number/);
    expect(saved).toHaveLength(0);
  });

  describe('on a phone call', () => {
    const voice = (callerVerified: boolean | undefined): Job =>
      job({ reply: { channel: 'twilio', to: '+15551234567', from: '+15005550006', medium: 'voice', callSid: 'CA1', ...(callerVerified === undefined ? {} : { callerVerified }) } });
    const existing: Contact = { phone: '+15551234567', name: 'Owner', channel: 'twilio', registeredBy: '+15551234567', createdAtMs: 1, updatedAtMs: 1 };

    it('lets a verified caller rename their own contact', async () => {
      const { result, saved, options } = await runSave(voice(true), { name: 'New Name' }, [existing]);
      expect(options).toEqual([{ overwriteOthers: true, createOnly: false }]);
      expect(saved[0]).toMatchObject({ name: 'New Name', createdAtMs: 1 });
      expect(result).toMatch(/^Saved: New Name/);
    });

    it.each([[false], [undefined]])('keeps the contact of a caller whose caller ID is not verified (callerVerified %s)', async (callerVerified) => {
      const { result, saved, options } = await runSave(voice(callerVerified), { name: 'Mallory' }, [existing]);
      expect(options).toEqual([{ overwriteOthers: false, createOnly: true }]);
      expect(saved).toHaveLength(0);
      expect(result).toBe(UNVERIFIED_CALLER_ERROR);
    });

    it('lets an unverified caller register a number nobody registered', async () => {
      const { result, saved } = await runSave(voice(false), { name: 'Newcomer' });
      expect(saved[0]).toMatchObject({ phone: '+15551234567', name: 'Newcomer' });
      expect(result).toMatch(/^Saved: Newcomer/);
    });

    it('keeps the create-only rule for another number given on an unverified call', async () => {
      const other: Contact = { ...existing, phone: '+15557654321', registeredBy: '+15551234567' };
      const { result, saved } = await runSave(voice(false), { name: 'X', phone: '+15557654321' }, [other]);
      expect(saved).toHaveLength(0);
      expect(result).toBe(UNVERIFIED_CALLER_ERROR);
    });
  });

  it('returns errors to the model instead of throwing', async () => {
    expect((await runSave(job(), { phone: '+15550001111' })).result).toMatch(/^Error: a name is required/);
    expect((await runSave(job(), 'not json')).result).toMatch(/^Error: the arguments must be a JSON object/);
    expect((await runSave(job(), { name: 'X', phone: '12' })).result).toMatch(/^Error: no valid phone number/);
  });
});

describe('parseToolArguments', () => {
  it('accepts objects only', () => {
    expect(parseToolArguments('{"a":1}')).toEqual({ a: 1 });
    expect(parseToolArguments('')).toEqual({});
    expect(parseToolArguments('[1]')).toBeUndefined();
    expect(parseToolArguments('{')).toBeUndefined();
  });
});
