/**
 * WeChat media → {@link Media} the model takes.
 *
 * WeChat voice messages are AMR-NB at 8 kHz (`Format` `amr`, sometimes `speex`;
 * https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Receiving_standard_messages.html). OpenAI's transcription
 * API takes flac mp3 mp4 mpeg mpga m4a ogg wav webm but not AMR
 * (https://platform.openai.com/docs/api-reference/audio/createTranscription), so AMR is decoded to WAV; formats it takes pass through as they
 * are; anything else (AMR-WB, Speex) is refused with an {@link AudioDecodeError} so the
 * caller can answer politely ("please type your question"). Remember that a voice
 * message with a non-empty `Recognition` needs no download at all.
 */
import { AudioDecodeError, amrToWav } from '../../audio/amr';
import { sniffAudio } from '../../audio/sniff';
import type { Media } from '../../core/channel';
import { WeChatApiError, type WeChatApi } from './api';

/** The part of {@link WeChatApi} this module uses (tests may pass a stub). */
export type MediaSource = Pick<WeChatApi, 'getMedia'>;

const IMAGE_EXTENSIONS: Readonly<Record<string, string>> = {
  'image/jpeg': 'jpg',
  'image/png': 'png',
  'image/gif': 'gif',
  'image/webp': 'webp',
  'image/bmp': 'bmp',
};

/** Image type from magic bytes (WeChat images are JPEG, but labels are not trusted). */
function sniffImage(bytes: Uint8Array): string | undefined {
  if (bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'image/jpeg';
  if (bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47) return 'image/png';
  if (bytes[0] === 0x47 && bytes[1] === 0x49 && bytes[2] === 0x46) return 'image/gif';
  if (bytes[0] === 0x52 && bytes[1] === 0x49 && bytes[8] === 0x57 && bytes[9] === 0x45 && bytes[10] === 0x42 && bytes[11] === 0x50) return 'image/webp';
  if (bytes[0] === 0x42 && bytes[1] === 0x4d) return 'image/bmp';
  return undefined;
}

function notFile(mediaId: string): WeChatApiError {
  // A JSON answer without errcode is a video's `video_url`, not a file we can use.
  return new WeChatApiError(`WeChat media ${mediaId} is not a downloadable file (JSON answer)`, 'media/get', undefined, '', false);
}

/**
 * Downloads a voice message and returns audio the transcription API accepts: AMR-NB
 * becomes `{mimeType:'audio/wav', filename:'voice.wav'}`; WAV/MP3/OGG/… pass through.
 * Throws {@link AudioDecodeError} (`amr_wb`, `unsupported_format`, `empty`, …) for audio
 * that cannot be transcribed, and {@link WeChatApiError} for download failures.
 */
export async function fetchWeChatVoice(api: MediaSource, mediaId: string): Promise<Media> {
  const file = await api.getMedia(mediaId);
  if (file.contentType === 'application/json') throw notFile(mediaId);
  const sniffed = sniffAudio(file.bytes);
  if (sniffed?.format === 'amr') {
    return { bytes: await amrToWav(file.bytes), mimeType: 'audio/wav', filename: 'voice.wav' };
  }
  if (sniffed?.transcribable) {
    return { bytes: file.bytes, mimeType: sniffed.mimeType, filename: `voice.${sniffed.extension}` };
  }
  if (sniffed?.format === 'amr-wb') throw new AudioDecodeError('AMR-WB (wideband) voice is not supported, only AMR-NB', 'amr_wb');
  const what = sniffed ? sniffed.format : `content type ${file.contentType}`;
  throw new AudioDecodeError(`voice in ${what} cannot be transcribed (only AMR-NB is transcoded)`, 'unsupported_format');
}

/**
 * Downloads an image message: the bytes as they are, with the MIME type from the magic
 * bytes or else the response's Content-Type, and WeChat's file name (or `image.<ext>`).
 */
export async function fetchWeChatImage(api: MediaSource, mediaId: string): Promise<Media> {
  const file = await api.getMedia(mediaId);
  if (file.contentType === 'application/json') throw notFile(mediaId);
  const mimeType = sniffImage(file.bytes) ?? (file.contentType.startsWith('image/') ? file.contentType : 'image/jpeg');
  const extension = IMAGE_EXTENSIONS[mimeType] ?? 'jpg';
  return { bytes: file.bytes, mimeType, filename: file.filename ?? `image.${extension}` };
}

/** Downloads media of an `audio` or `image` input (see {@link fetchWeChatVoice} / {@link fetchWeChatImage}). */
export function fetchWeChatMedia(api: MediaSource, mediaId: string, kind: 'audio' | 'image'): Promise<Media> {
  return kind === 'audio' ? fetchWeChatVoice(api, mediaId) : fetchWeChatImage(api, mediaId);
}
