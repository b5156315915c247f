/**
 * The WAV writer/reader: exact canonical header bytes and a round trip.
 */
import { WAV_HEADER_BYTES, pcm16ToWav, readWavInfo } from '../../lib/audio/wav';

function ascii(bytes: Uint8Array, from: number, to: number): string {
  return String.fromCharCode(...bytes.subarray(from, to));
}

describe('pcm16ToWav', () => {
  it('writes the canonical 44-byte header and little-endian samples', () => {
    const wav = pcm16ToWav(new Int16Array([0, 1, -1, 32767, -32768]), 8000);
    const view = new DataView(wav.buffer, wav.byteOffset, wav.byteLength);
    expect(wav.length).toBe(WAV_HEADER_BYTES + 10);
    expect(ascii(wav, 0, 4)).toBe('RIFF');
    expect(view.getUint32(4, true)).toBe(36 + 10);
    expect(ascii(wav, 8, 16)).toBe('WAVEfmt ');
    expect(view.getUint32(16, true)).toBe(16);
    expect(view.getUint16(20, true)).toBe(1); // PCM
    expect(view.getUint16(22, true)).toBe(1); // mono
    expect(view.getUint32(24, true)).toBe(8000);
    expect(view.getUint32(28, true)).toBe(16000); // byte rate
    expect(view.getUint16(32, true)).toBe(2); // block align
    expect(view.getUint16(34, true)).toBe(16);
    expect(ascii(wav, 36, 40)).toBe('data');
    expect(view.getUint32(40, true)).toBe(10);
    expect(Array.from(wav.subarray(44))).toEqual([0x00, 0x00, 0x01, 0x00, 0xff, 0xff, 0xff, 0x7f, 0x00, 0x80]);
  });

  it('round-trips through readWavInfo', () => {
    const wav = pcm16ToWav(new Int16Array(16000 * 2), 16000, 2);
    expect(readWavInfo(wav)).toEqual({
      audioFormat: 1,
      channels: 2,
      sampleRate: 16000,
      bitsPerSample: 16,
      dataBytes: 64000,
      dataOffset: 44,
      durationSec: 1,
    });
  });

  it('handles an empty signal', () => {
    expect(readWavInfo(pcm16ToWav(new Int16Array(0), 8000))?.durationSec).toBe(0);
  });

  it('rejects nonsense parameters', () => {
    expect(() => pcm16ToWav(new Int16Array(1), 0)).toThrow(RangeError);
    expect(() => pcm16ToWav(new Int16Array(1), 8000, 0)).toThrow(RangeError);
  });
});

describe('readWavInfo', () => {
  it('skips chunks before data (LIST etc.)', () => {
    const plain = pcm16ToWav(new Int16Array([1, 2, 3]), 8000);
    const list = new Uint8Array([0x4c, 0x49, 0x53, 0x54, 3, 0, 0, 0, 1, 2, 3, 0]); // "LIST", odd size + pad byte
    const withList = new Uint8Array(plain.length + list.length);
    withList.set(plain.subarray(0, 36));
    withList.set(list, 36);
    withList.set(plain.subarray(36), 36 + list.length);
    expect(readWavInfo(withList)).toMatchObject({ sampleRate: 8000, dataBytes: 6, dataOffset: 56 });
  });

  it('returns undefined for what is not a WAV', () => {
    expect(readWavInfo(new TextEncoder().encode('#!AMR\n'))).toBeUndefined();
    expect(readWavInfo(new Uint8Array(0))).toBeUndefined();
  });
});
