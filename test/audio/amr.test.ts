/**
 * AMR-NB → WAV with the real decoder (amr-js) on a committed fixture:
 * test/fixtures/audio/hello.amr is 2.72 s of synthesized speech ("Hello, what is the
 * weather like today?"), 12.2 kbit/s, 136 frames (see the README beside it).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AMR_NB_SAMPLE_RATE, AudioDecodeError, MAX_AMR_BYTES, amrFrameStats, amrToWav, decodeAmrNb } from '../../lib/audio/amr';
import { readWavInfo } from '../../lib/audio/wav';

const fixture = new Uint8Array(readFileSync(join(__dirname, '..', 'fixtures', 'audio', 'hello.amr')));

async function decodeError(input: Uint8Array): Promise<AudioDecodeError> {
  try {
    await decodeAmrNb(input);
  } catch (err) {
    if (err instanceof AudioDecodeError) return err;
    throw err;
  }
  throw new Error('expected an AudioDecodeError');
}

function rms(samples: Int16Array): number {
  let sum = 0;
  for (const s of samples) sum += s * s;
  return Math.sqrt(sum / Math.max(1, samples.length));
}

describe('amrToWav', () => {
  it('decodes the fixture to a valid 8 kHz mono 16-bit WAV of the right length', async () => {
    const wav = await amrToWav(fixture);
    const info = readWavInfo(wav);
    expect(String.fromCharCode(...wav.subarray(0, 4))).toBe('RIFF');
    expect(info).toMatchObject({ audioFormat: 1, channels: 1, sampleRate: 8000, bitsPerSample: 16, dataOffset: 44 });
    expect(info?.durationSec).toBeCloseTo(2.72, 2); // 136 frames × 20 ms
    expect(wav.length).toBe(44 + 136 * 160 * 2);
  });

  it('produces speech, not silence or noise', async () => {
    const pcm = await decodeAmrNb(fixture);
    expect(pcm.length).toBe(136 * 160);
    const whole = rms(pcm);
    expect(whole).toBeGreaterThan(1000); // the source has an RMS of about 0.08 full scale (~2,700)
    // espeak starts speaking after a short pause: the first 40 ms are much quieter than the rest.
    expect(rms(pcm.subarray(0, 320))).toBeLessThan(whole / 4);
    expect(Math.max(...pcm.map(Math.abs))).toBeLessThan(32768);
  });

  it('knows the frame layout', () => {
    expect(amrFrameStats(fixture)).toEqual({ frames: 136, speechFrames: 136, badFrames: 0, trailingBytes: 0 });
    expect(AMR_NB_SAMPLE_RATE).toBe(8000);
  });

  it('does not leave the decoder\'s uncaughtException listener behind', async () => {
    const before = process.listenerCount('uncaughtException');
    await decodeAmrNb(fixture);
    expect(process.listenerCount('uncaughtException')).toBe(before);
  });

  it('decodes a truncated file up to the last whole frame', async () => {
    const cut = fixture.subarray(0, 6 + 32 * 10 + 7);
    const pcm = await decodeAmrNb(cut);
    expect(pcm.length).toBe(10 * 160);
  });
});

describe('decodeAmrNb errors', () => {
  it('rejects input without the #!AMR magic', async () => {
    expect((await decodeError(new TextEncoder().encode('RIFF....WAVE'))).code).toBe('not_amr');
    expect((await decodeError(new Uint8Array(0))).code).toBe('not_amr');
  });

  it('rejects AMR-WB', async () => {
    expect((await decodeError(new TextEncoder().encode('#!AMR-WB\n\x04'))).code).toBe('amr_wb');
  });

  it('rejects a file with no speech frames', async () => {
    expect((await decodeError(new TextEncoder().encode('#!AMR\n'))).code).toBe('empty');
    // three NO_DATA frames (FT 15)
    expect((await decodeError(new Uint8Array([...new TextEncoder().encode('#!AMR\n'), 0x7c, 0x7c, 0x7c]))).code).toBe('empty');
  });

  it('rejects a file too large to be a WeChat voice message before decoding it', async () => {
    // The fixture's frames repeated past the limit: WeChat voice is at most 60 s (about 96 KB).
    const speech = fixture.subarray(6);
    const copies = Math.ceil((MAX_AMR_BYTES + 1) / speech.length);
    const big = new Uint8Array(6 + copies * speech.length);
    big.set(fixture.subarray(0, 6));
    for (let i = 0; i < copies; i++) big.set(speech, 6 + i * speech.length);
    expect(big.length).toBeGreaterThan(MAX_AMR_BYTES);
    expect(big.length).toBeLessThan(2 * MAX_AMR_BYTES);

    const err = await decodeError(big);

    expect(err.code).toBe('too_large');
    expect(err.message).toContain(`${MAX_AMR_BYTES}-byte limit`);
  });

  it('rejects a damaged file (mostly reserved frame types)', async () => {
    const damaged = new Uint8Array([...fixture.subarray(0, 6 + 32), ...new Array<number>(40).fill(0x64)]); // FT 12
    expect((await decodeError(damaged)).code).toBe('decode_failed');
  });
});
