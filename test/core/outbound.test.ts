import { DeliveryError } from '../../lib/core/channel';
import { sendOutbound, type OutboundChannel, type SendVerdict } from '../../lib/core/outbound';
import type { RecordNote } from '../../lib/store/notes';

/** A channel over fixed parts that fails where told, recording what the loop did. */
function fakeChannel(parts: readonly string[], failAt: ReadonlyMap<number, unknown>, classify: (err: unknown) => SendVerdict | undefined) {
  const sent: string[] = [];
  const records: { delivered: number; done: boolean; note?: RecordNote }[] = [];
  const channel: OutboundChannel<string> = {
    part: (i) => parts[i],
    send: async (part, i) => {
      if (failAt.has(i)) throw failAt.get(i);
      sent.push(part);
    },
    classify,
    record: async (delivered, done, note) => {
      records.push(note === undefined ? { delivered, done } : { delivered, done, note });
    },
  };
  return { channel, sent, records };
}

class VendorError extends Error {}
const stopped: RecordNote = { kind: 'send_stopped', reason: 'failed', code: '400' };

describe('sendOutbound', () => {
  it('resumes after the delivered parts and records each one before the next, closing on the last', async () => {
    const { channel, sent, records } = fakeChannel(['a', 'b', 'c'], new Map(), () => undefined);

    const result = await sendOutbound(channel, 1);

    expect(result).toEqual({ outcome: 'delivered', delivered: 3 });
    expect(sent).toEqual(['b', 'c']);
    expect(records).toEqual([
      { delivered: 2, done: false },
      { delivered: 3, done: true },
    ]);
  });

  it('sends nothing when every part is already out', async () => {
    const { channel, sent, records } = fakeChannel(['a'], new Map(), () => undefined);

    expect(await sendOutbound(channel, 1)).toEqual({ outcome: 'delivered', delivered: 1 });
    expect(sent).toEqual([]);
    expect(records).toEqual([]);
  });

  it('retry: records the note without closing, then throws the retryable error', async () => {
    const note: RecordNote = { kind: 'send_stopped', reason: 'rate_limited', code: '131056' };
    const error = new DeliveryError('slow down', '131056', true);
    const { channel, sent, records } = fakeChannel(['a', 'b'], new Map([[1, new VendorError('429')]]), () => ({ kind: 'retry', error, note }));

    await expect(sendOutbound(channel, 0)).rejects.toBe(error);
    expect(sent).toEqual(['a']);
    expect(records).toEqual([
      { delivered: 1, done: false },
      { delivered: 1, done: false, note },
    ]);
  });

  it('retry without a note records nothing before throwing', async () => {
    const error = new DeliveryError('503', '503', true);
    const { channel, records } = fakeChannel(['a'], new Map([[0, new VendorError('503')]]), () => ({ kind: 'retry', error }));

    await expect(sendOutbound(channel, 0)).rejects.toBe(error);
    expect(records).toEqual([]);
  });

  it('fatal without an error closes the record and stops', async () => {
    const { channel, sent, records } = fakeChannel(['a', 'b', 'c'], new Map([[1, new VendorError('gone')]]), () => ({ kind: 'fatal', note: stopped }));

    expect(await sendOutbound(channel, 0)).toEqual({ outcome: 'stopped', delivered: 1 });
    expect(sent).toEqual(['a']);
    expect(records.at(-1)).toEqual({ delivered: 1, done: true, note: stopped });
  });

  it('fatal with an error keeps the record open and throws it', async () => {
    const error = new DeliveryError('bad request', '400', false);
    const { channel, records } = fakeChannel(['a'], new Map([[0, new VendorError('400')]]), () => ({ kind: 'fatal', note: stopped, error }));

    await expect(sendOutbound(channel, 0)).rejects.toBe(error);
    expect(records).toEqual([{ delivered: 0, done: false, note: stopped }]);
  });

  it('token: records the note without closing and throws the non-retryable error', async () => {
    const note: RecordNote = { kind: 'send_stopped', reason: 'token_error', code: '190' };
    const error = new DeliveryError('token', '190', false);
    const { channel, records } = fakeChannel(['a'], new Map([[0, new VendorError('190')]]), () => ({ kind: 'token', note, error }));

    await expect(sendOutbound(channel, 0)).rejects.toBe(error);
    expect(records).toEqual([{ delivered: 0, done: false, note }]);
  });

  it('window_closed: records nothing and hands the outcome to the channel', async () => {
    const { channel, sent, records } = fakeChannel(['a', 'b'], new Map([[1, new VendorError('131047')]]), () => ({ kind: 'window_closed' }));

    expect(await sendOutbound(channel, 0)).toEqual({ outcome: 'window_closed', delivered: 1 });
    expect(sent).toEqual(['a']);
    expect(records).toEqual([{ delivered: 1, done: false }]);
  });

  it('rethrows an error the channel does not know, recording nothing', async () => {
    const bug = new TypeError('bug');
    const { channel, records } = fakeChannel(['a'], new Map([[0, bug]]), () => undefined);

    await expect(sendOutbound(channel, 0)).rejects.toBe(bug);
    expect(records).toEqual([]);
  });
});
