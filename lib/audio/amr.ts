/**
 * AMR-NB → WAV for speech-to-text. WeChat voice messages are AMR-NB at 8 kHz
 * (https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Receiving_standard_messages.html) and OpenAI's
 * transcription API does not take AMR
 * (https://platform.openai.com/docs/api-reference/audio/createTranscription), so the worker
 * decodes them to 16-bit PCM and wraps that in a WAV header.
 *
 * The decoder is `amr-js` (an asm.js build of OpenCORE-AMR): pure JavaScript, no native
 * binary, no .wasm file, nothing downloaded at run time, so it bundles with esbuild and
 * runs on Lambda arm64 as is. It is loaded lazily (about 0.3 s of parsing) on the first
 * voice message, not at cold start.
 */
import type AmrNbCodec from 'amr-js/library/amrnb.js';
import { AMR_NB_MAGIC, AMR_WB_MAGIC } from './sniff';
import { pcm16ToWav } from './wav';

/** AMR-NB is always 8 kHz mono (3GPP TS 26.071). */
export const AMR_NB_SAMPLE_RATE = 8000;

/** Samples per 20 ms AMR-NB frame at 8 kHz. */
const SAMPLES_PER_FRAME = 160;

/**
 * Speech bytes after the one-byte frame header, by frame type (RFC 4867 §5.3 / 3GPP TS
 * 26.101): FT 0-7 are the eight codec modes 4.75 … 12.2 kbit/s, FT 8 is SID (comfort
 * noise), 9-11 are other codecs' SID, 12-14 are reserved, 15 is NO_DATA.
 */
const FRAME_BYTES: readonly number[] = [12, 13, 15, 17, 19, 20, 26, 31, 5, 6, 5, 5, 0, 0, 0, 0];

/**
 * Refuse inputs beyond this. WeChat voice is at most 2 MB and 60 s
 * (https://developers.weixin.qq.com/doc/offiaccount/Asset_Management/New_temporary_materials.html):
 * 60 s of AMR-NB at its highest rate (12.2 kbit/s, 32-byte frames) is 96 KB, so this allows
 * well over twice that. It also bounds the decoder's memory: amr-js sizes its output for the
 * smallest possible frames up front (about 53 bytes of PCM per input byte, 14 MB here),
 * which at the former 5 MB limit would have been 280 MB, more than the worker has.
 */
export const MAX_AMR_BYTES = 256 * 1024;

/** Why AMR decoding failed. */
export type AudioDecodeErrorCode =
  | 'not_amr'
  | 'amr_wb'
  | 'unsupported_format'
  | 'empty'
  | 'too_large'
  | 'decode_failed'
  | 'decoder_unavailable';

/** A voice file that cannot be turned into WAV; `code` says why. Never retryable. */
export class AudioDecodeError extends Error {
  constructor(
    message: string,
    readonly code: AudioDecodeErrorCode,
  ) {
    super(message);
    this.name = 'AudioDecodeError';
  }
}

type Codec = typeof AmrNbCodec;

let codecPromise: Promise<Codec> | undefined;

/**
 * Loads the Emscripten module once per process. Its Node prologue installs an
 * `uncaughtException` listener that re-throws; that would override the Lambda runtime's
 * own handling, so any listener it added is removed again.
 */
function loadCodec(): Promise<Codec> {
  codecPromise ??= (async () => {
    const before = new Set(process.listeners('uncaughtException'));
    try {
      const mod = await import('amr-js/library/amrnb.js');
      return mod.default;
    } finally {
      for (const listener of process.listeners('uncaughtException')) {
        if (!before.has(listener)) process.removeListener('uncaughtException', listener);
      }
    }
  })().catch((err: unknown) => {
    codecPromise = undefined;
    const reason = err instanceof Error ? err.message : String(err);
    throw new AudioDecodeError(`the AMR decoder (package amr-js) could not be loaded: ${reason}`, 'decoder_unavailable');
  });
  return codecPromise;
}

function hasMagic(bytes: Uint8Array, magic: string): boolean {
  if (bytes.length < magic.length) return false;
  for (let i = 0; i < magic.length; i += 1) if (bytes[i] !== magic.charCodeAt(i)) return false;
  return true;
}

/** Frame statistics of an AMR-NB file's storage-format body (RFC 4867 §5.3). */
export interface AmrFrameStats {
  /** All frames, including NO_DATA and damaged ones. */
  frames: number;
  /** Frames carrying speech (FT 0-7). */
  speechFrames: number;
  /** Frames with a reserved type (12-14): a sign of corruption. */
  badFrames: number;
  /** Bytes left over after the last whole frame (a truncated file). */
  trailingBytes: number;
}

/** Walks the frames after the `#!AMR\n` magic without decoding them. */
export function amrFrameStats(bytes: Uint8Array): AmrFrameStats {
  const stats: AmrFrameStats = { frames: 0, speechFrames: 0, badFrames: 0, trailingBytes: 0 };
  let offset = AMR_NB_MAGIC.length;
  while (offset < bytes.length) {
    const header = bytes[offset] ?? 0;
    const type = (header >> 3) & 0x0f;
    const size = 1 + (FRAME_BYTES[type] ?? 0);
    if (offset + size > bytes.length) {
      stats.trailingBytes = bytes.length - offset;
      break;
    }
    stats.frames += 1;
    if (type <= 7) stats.speechFrames += 1;
    else if (type >= 12 && type <= 14) stats.badFrames += 1;
    offset += size;
  }
  return stats;
}

/**
 * Decodes an AMR-NB file (single channel, storage format with the `#!AMR\n` magic of
 * RFC 4867 §5) to 16-bit PCM at {@link AMR_NB_SAMPLE_RATE}.
 * Throws {@link AudioDecodeError} for anything else (AMR-WB, Speex, a damaged file).
 */
export async function decodeAmrNb(bytes: Uint8Array): Promise<Int16Array> {
  if (hasMagic(bytes, AMR_WB_MAGIC)) throw new AudioDecodeError('AMR-WB (wideband) voice is not supported, only AMR-NB', 'amr_wb');
  if (!hasMagic(bytes, AMR_NB_MAGIC)) throw new AudioDecodeError('not an AMR-NB file: the "#!AMR\\n" header is missing', 'not_amr');
  if (bytes.length > MAX_AMR_BYTES) {
    throw new AudioDecodeError(`AMR file of ${bytes.length} bytes is larger than the ${MAX_AMR_BYTES}-byte limit`, 'too_large');
  }
  const stats = amrFrameStats(bytes);
  if (stats.speechFrames === 0) throw new AudioDecodeError('the AMR file holds no speech frames', 'empty');
  if (stats.badFrames * 2 > stats.frames) {
    throw new AudioDecodeError(`the AMR file looks damaged (${stats.badFrames} of ${stats.frames} frames have a reserved type)`, 'decode_failed');
  }
  const codec = await loadCodec();
  const pcm = codec._decode(bytes);
  if (pcm === null || pcm.length === 0) throw new AudioDecodeError('the AMR decoder produced no audio', 'decode_failed');
  // Copy out of the decoder's scratch buffer (it returns a view over a larger array).
  return pcm.slice(0, Math.min(pcm.length, stats.frames * SAMPLES_PER_FRAME));
}

/**
 * Transcodes WeChat voice (AMR-NB) to a WAV file (16-bit PCM, 8 kHz, mono) that the
 * transcription API accepts. Throws {@link AudioDecodeError} when the input is not AMR-NB.
 */
export async function amrToWav(bytes: Uint8Array): Promise<Uint8Array> {
  const pcm = await decodeAmrNb(bytes);
  return pcm16ToWav(pcm, AMR_NB_SAMPLE_RATE);
}
