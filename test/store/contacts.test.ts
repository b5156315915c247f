import { ContactStore, normalizeName, normalizePhone } from '../../lib/store/contacts';
import { createDocumentClient } from '../../lib/store/client';
import { loadConfig } from '../../lib/config';
import { startTestStack, type TestStack } from '../../local/stack';

describe('normalizePhone', () => {
  it.each([
    ['+1 (555) 123-4567', '+15551234567'],
    ['whatsapp:+4915112345678', '+4915112345678'],
    ['0044 20 7946 0958', '+442079460958'],
    ['+1.555.123.4567', '+15551234567'],
  ])('normalises %s', (raw, e164) => {
    expect(normalizePhone(raw)).toBe(e164);
  });

  it.each(['5551234567', '+0123456789', '+1234567', '+1234567890123456', 'call me', ''])('rejects %s', (raw) => {
    expect(normalizePhone(raw)).toBeUndefined();
  });
});

describe('normalizeName', () => {
  it('trims, collapses white space, drops control characters and caps the length', () => {
    expect(normalizeName('  Ada \n\t Lovelace\u0000 ')).toBe('Ada Lovelace');
    expect(normalizeName('x'.repeat(500))).toHaveLength(100);
  });
});

describe('ContactStore', () => {
  let stack: TestStack;
  let store: ContactStore;

  beforeAll(async () => {
    stack = await startTestStack();
    const cfg = loadConfig(stack.env);
    store = new ContactStore(createDocumentClient(cfg.aws), cfg.aws.tableName);
  });

  afterAll(async () => {
    await stack.stop();
  });

  it('saves, renames keeping createdAtMs, and reads back', async () => {
    // Arrange + Act
    await store.save({ phone: '+15550000001', name: 'Ada', channel: 'twilio', registeredBy: '+15550000001' }, 1000);
    const renamed = await store.save({ phone: '+15550000001', name: 'Ada Lovelace', channel: 'whatsapp', registeredBy: '15550000001' }, 2000);
    // Assert
    expect(renamed).toEqual({ phone: '+15550000001', name: 'Ada Lovelace', channel: 'whatsapp', registeredBy: '15550000001', createdAtMs: 1000, updatedAtMs: 2000 });
    expect(await store.get('+15550000001')).toEqual(renamed);
    expect(await store.get('+15550000009')).toBeUndefined();
  });

  it('lists in phone order, page by page', async () => {
    // Arrange
    for (const n of ['3', '2', '4']) await store.save({ phone: `+1555000000${n}`, name: `P${n}`, channel: 'twilio', registeredBy: 'x' }, 5);
    // Act
    const first = await store.list(2);
    const second = await store.list(2, first.nextCursor);
    const rest = second.nextCursor === undefined ? [] : (await store.list(2, second.nextCursor)).contacts;
    // Assert
    const phones = [...first.contacts, ...second.contacts, ...rest].map((c) => c.phone);
    expect(phones).toEqual(['+15550000001', '+15550000002', '+15550000003', '+15550000004']);
    expect(first.contacts).toHaveLength(2);
  });
  it('does not let someone else rename a contact unless told to overwrite', async () => {
    // Arrange
    await store.save({ phone: '+15550000021', name: 'Grace', channel: 'twilio', registeredBy: '+15550000021' }, 1000);
    // Act
    const hijack = await store.save({ phone: '+15550000021', name: 'Mallory', channel: 'twilio', registeredBy: '+15559999999' }, 2000, { overwriteOthers: false });
    const fresh = await store.save({ phone: '+15550000022', name: 'Linus', channel: 'twilio', registeredBy: '+15559999999' }, 2000, { overwriteOthers: false });
    // Assert
    expect(hijack).toBeUndefined();
    expect((await store.get('+15550000021'))?.name).toBe('Grace');
    expect(fresh?.name).toBe('Linus');
  });

  it('with createOnly, creates a new contact but changes no existing one, not even its own', async () => {
    // Arrange: registered by the number itself (e.g. by SMS).
    await store.save({ phone: '+15550000031', name: 'Grace', channel: 'twilio', registeredBy: '+15550000031' }, 1000);
    // Act: the same number again, as an unverified call would.
    const own = await store.save({ phone: '+15550000031', name: 'Mallory', channel: 'twilio', registeredBy: '+15550000031' }, 2000, { overwriteOthers: false, createOnly: true });
    const fresh = await store.save({ phone: '+15550000032', name: 'Linus', channel: 'twilio', registeredBy: '+15550000032' }, 2000, { overwriteOthers: false, createOnly: true });
    // Assert
    expect(own).toBeUndefined();
    expect(await store.get('+15550000031')).toMatchObject({ name: 'Grace', updatedAtMs: 1000 });
    expect(fresh?.name).toBe('Linus');
  });
});
