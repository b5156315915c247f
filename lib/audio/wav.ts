/**
 * Minimal RIFF/WAVE writing and reading for 16-bit PCM. The transcription API takes WAV
 * (https://platform.openai.com/docs/api-reference/audio/createTranscription), so decoded
 * WeChat voice is wrapped here.
 */

/** Size of the canonical 44-byte header: RIFF (12) + `fmt ` chunk (24) + `data` chunk header (8). */
export const WAV_HEADER_BYTES = 44;

/** What a WAV header says about its audio. */
export interface WavInfo {
  /** 1 = integer PCM. */
  audioFormat: number;
  channels: number;
  sampleRate: number;
  bitsPerSample: number;
  /** Bytes of sample data in the `data` chunk. */
  dataBytes: number;
  /** Offset of the first sample byte. */
  dataOffset: number;
  /** Duration in seconds (`dataBytes / byteRate`). */
  durationSec: number;
}

/**
 * Wraps 16-bit little-endian PCM samples in a canonical WAV file.
 * Samples of several channels are interleaved (frame by frame), as WAV requires.
 */
export function pcm16ToWav(samples: Int16Array, sampleRate: number, channels = 1): Uint8Array {
  if (!Number.isInteger(sampleRate) || sampleRate <= 0) throw new RangeError(`sampleRate must be a positive integer, got ${sampleRate}`);
  if (!Number.isInteger(channels) || channels <= 0) throw new RangeError(`channels must be a positive integer, got ${channels}`);
  const bytesPerSample = 2;
  const dataBytes = samples.length * bytesPerSample;
  const out = new Uint8Array(WAV_HEADER_BYTES + dataBytes);
  const view = new DataView(out.buffer);
  const ascii = (offset: number, text: string): void => {
    for (let i = 0; i < text.length; i += 1) view.setUint8(offset + i, text.charCodeAt(i));
  };
  ascii(0, 'RIFF');
  view.setUint32(4, 36 + dataBytes, true); // file size minus the 8 bytes of "RIFF" + this field
  ascii(8, 'WAVE');
  ascii(12, 'fmt ');
  view.setUint32(16, 16, true); // fmt chunk size for PCM
  view.setUint16(20, 1, true); // audio format 1 = PCM
  view.setUint16(22, channels, true);
  view.setUint32(24, sampleRate, true);
  view.setUint32(28, sampleRate * channels * bytesPerSample, true); // byte rate
  view.setUint16(32, channels * bytesPerSample, true); // block align
  view.setUint16(34, 8 * bytesPerSample, true); // bits per sample
  ascii(36, 'data');
  view.setUint32(40, dataBytes, true);
  for (let i = 0; i < samples.length; i += 1) {
    view.setInt16(WAV_HEADER_BYTES + i * bytesPerSample, samples[i] ?? 0, true);
  }
  return out;
}

function fourCc(bytes: Uint8Array, offset: number): string {
  return String.fromCharCode(...bytes.subarray(offset, offset + 4));
}

/**
 * Reads the header of a PCM WAV file (walks the chunks, so `LIST` and other chunks
 * before `data` are fine). Returns undefined when the bytes are not a readable WAV.
 */
export function readWavInfo(bytes: Uint8Array): WavInfo | undefined {
  if (bytes.length < 12 || fourCc(bytes, 0) !== 'RIFF' || fourCc(bytes, 8) !== 'WAVE') return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let fmt: Omit<WavInfo, 'dataBytes' | 'dataOffset' | 'durationSec'> | undefined;
  let offset = 12;
  while (offset + 8 <= bytes.length) {
    const id = fourCc(bytes, offset);
    const size = view.getUint32(offset + 4, true);
    const body = offset + 8;
    if (id === 'fmt ' && size >= 16 && body + 16 <= bytes.length) {
      fmt = {
        audioFormat: view.getUint16(body, true),
        channels: view.getUint16(body + 2, true),
        sampleRate: view.getUint32(body + 4, true),
        bitsPerSample: view.getUint16(body + 14, true),
      };
    } else if (id === 'data') {
      if (!fmt || fmt.channels === 0 || fmt.sampleRate === 0 || fmt.bitsPerSample === 0) return undefined;
      const dataBytes = Math.min(size, bytes.length - body);
      const byteRate = fmt.sampleRate * fmt.channels * (fmt.bitsPerSample / 8);
      return { ...fmt, dataBytes, dataOffset: body, durationSec: dataBytes / byteRate };
    }
    offset = body + size + (size % 2); // chunks are word-aligned
  }
  return undefined;
}
