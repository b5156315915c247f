/**
 * Recognises an audio container from its first bytes. Content types from chat platforms
 * are unreliable (WeChat may say `application/octet-stream`), the magic bytes are not.
 */

/** Containers this module recognises. */
export type AudioFormat = 'wav' | 'ogg' | 'flac' | 'mp3' | 'm4a' | 'mp4' | 'webm' | 'amr' | 'amr-wb' | 'speex';

/** A recognised audio container. */
export interface SniffedAudio {
  format: AudioFormat;
  mimeType: string;
  /** File extension (without dot) that names the format for an upload. */
  extension: string;
  /**
   * Whether OpenAI's transcription API takes it as is (flac mp3 mp4 mpeg mpga m4a ogg wav
   * webm; https://platform.openai.com/docs/api-reference/audio/createTranscription). AMR
   * and Speex are not taken and must be transcoded.
   */
  transcribable: boolean;
}

/** The AMR-NB file magic (RFC 4867 §5: "#!AMR\n"). */
export const AMR_NB_MAGIC = '#!AMR\n';
/** The AMR-WB file magic (RFC 4867 §5: "#!AMR-WB\n"). */
export const AMR_WB_MAGIC = '#!AMR-WB\n';

function startsWithAscii(bytes: Uint8Array, text: string, offset = 0): boolean {
  if (bytes.length < offset + text.length) return false;
  for (let i = 0; i < text.length; i += 1) {
    if (bytes[offset + i] !== text.charCodeAt(i)) return false;
  }
  return true;
}

function containsAscii(bytes: Uint8Array, text: string, limit: number): boolean {
  const end = Math.min(bytes.length, limit) - text.length;
  for (let i = 0; i <= end; i += 1) if (startsWithAscii(bytes, text, i)) return true;
  return false;
}

function found(format: AudioFormat, mimeType: string, extension: string, transcribable: boolean): SniffedAudio {
  return { format, mimeType, extension, transcribable };
}

/** Identifies the audio container of `bytes`; undefined when it is none of {@link AudioFormat}. */
export function sniffAudio(bytes: Uint8Array): SniffedAudio | undefined {
  if (startsWithAscii(bytes, AMR_WB_MAGIC)) return found('amr-wb', 'audio/amr-wb', 'amr', false);
  if (startsWithAscii(bytes, AMR_NB_MAGIC)) return found('amr', 'audio/amr', 'amr', false);
  if (startsWithAscii(bytes, 'RIFF') && startsWithAscii(bytes, 'WAVE', 8)) return found('wav', 'audio/wav', 'wav', true);
  if (startsWithAscii(bytes, 'OggS')) {
    // Speex in Ogg announces itself in the first page ("Speex   " header packet).
    if (containsAscii(bytes, 'Speex   ', 128)) return found('speex', 'audio/ogg; codecs=speex', 'spx', false);
    return found('ogg', 'audio/ogg', 'ogg', true);
  }
  if (startsWithAscii(bytes, 'Speex   ')) return found('speex', 'audio/speex', 'spx', false);
  if (startsWithAscii(bytes, 'fLaC')) return found('flac', 'audio/flac', 'flac', true);
  if (startsWithAscii(bytes, 'ID3')) return found('mp3', 'audio/mpeg', 'mp3', true);
  const b0 = bytes[0];
  const b1 = bytes[1];
  // MPEG audio frame sync (11 bits set) with a layer other than 00 (00 is AAC ADTS).
  if (b0 === 0xff && b1 !== undefined && (b1 & 0xe0) === 0xe0 && ((b1 >> 1) & 0x03) !== 0) {
    return found('mp3', 'audio/mpeg', 'mp3', true);
  }
  if (startsWithAscii(bytes, 'ftyp', 4)) {
    const audioOnly = startsWithAscii(bytes, 'M4A ', 8) || startsWithAscii(bytes, 'M4B ', 8);
    return audioOnly ? found('m4a', 'audio/mp4', 'm4a', true) : found('mp4', 'audio/mp4', 'mp4', true);
  }
  if (b0 === 0x1a && b1 === 0x45 && bytes[2] === 0xdf && bytes[3] === 0xa3) return found('webm', 'audio/webm', 'webm', true);
  return undefined;
}
