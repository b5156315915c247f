/**
 * Audio container recognition from magic bytes.
 */
import { sniffAudio } from '../../lib/audio/sniff';
import { pcm16ToWav } from '../../lib/audio/wav';

const text = (s: string): Uint8Array => new TextEncoder().encode(s);
const bytes = (...b: number[]): Uint8Array => new Uint8Array(b);

describe('sniffAudio', () => {
  it.each([
    ['AMR-NB', text('#!AMR\n\x3c'), 'amr', false],
    ['AMR-WB', text('#!AMR-WB\n'), 'amr-wb', false],
    ['WAV', pcm16ToWav(new Int16Array(4), 8000), 'wav', true],
    ['Ogg Opus', text('OggS\0\x02' + '\0'.repeat(22) + 'OpusHead'), 'ogg', true],
    ['Ogg Speex', text('OggS\0\x02' + '\0'.repeat(22) + 'Speex   1.2'), 'speex', false],
    ['FLAC', text('fLaC\0\0\0\x22'), 'flac', true],
    ['MP3 with ID3', text('ID3\x04\0\0'), 'mp3', true],
    ['MP3 frame', bytes(0xff, 0xfb, 0x90, 0x64), 'mp3', true],
    ['M4A', text('\0\0\0\x20ftypM4A \0\0\0\0'), 'm4a', true],
    ['MP4', text('\0\0\0\x20ftypisom\0\0\0\0'), 'mp4', true],
    ['WebM', bytes(0x1a, 0x45, 0xdf, 0xa3, 0x9f), 'webm', true],
  ])('%s', (_name, input, format, transcribable) => {
    expect(sniffAudio(input)).toMatchObject({ format, transcribable });
  });

  it('does not take AAC ADTS (layer 00) for MP3', () => {
    expect(sniffAudio(bytes(0xff, 0xf1, 0x50, 0x80))).toBeUndefined();
  });

  it('returns undefined for unknown or empty input', () => {
    expect(sniffAudio(new Uint8Array(0))).toBeUndefined();
    expect(sniffAudio(text('hello world'))).toBeUndefined();
  });
});
