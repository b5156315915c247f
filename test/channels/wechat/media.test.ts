/**
 * WeChat media → Media for the model: AMR voice becomes WAV, formats the transcription
 * API takes pass through, the rest is refused with a typed error; images keep their
 * bytes. Against a stub source, plus one end-to-end download from the fake WeChat API.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AudioDecodeError } from '../../../lib/audio/amr';
import { pcm16ToWav, readWavInfo } from '../../../lib/audio/wav';
import { WeChatApi, WeChatApiError, type WeChatMediaFile } from '../../../lib/channels/wechat/api';
import { fetchWeChatImage, fetchWeChatMedia, fetchWeChatVoice, type MediaSource } from '../../../lib/channels/wechat/media';
import type { AccessTokenSource } from '../../../lib/channels/wechat/token';
import { startFakeWeChatApi } from '../../fakes/fake-wechat-api';
import { caught } from '../../support/caught';

const amr = new Uint8Array(readFileSync(join(__dirname, '..', '..', 'fixtures', 'audio', 'hello.amr')));

function source(file: Partial<WeChatMediaFile> & { bytes: Uint8Array }): MediaSource & { asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    getMedia: (mediaId: string) => {
      asked.push(mediaId);
      return Promise.resolve({ contentType: 'application/octet-stream', filename: undefined, ...file });
    },
  };
}

describe('fetchWeChatVoice', () => {
  it('transcodes AMR-NB to WAV', async () => {
    const src = source({ bytes: amr, contentType: 'audio/amr', filename: 'MEDIA.amr' });
    const media = await fetchWeChatVoice(src, 'MEDIA');
    expect(src.asked).toEqual(['MEDIA']);
    expect(media.mimeType).toBe('audio/wav');
    expect(media.filename).toBe('voice.wav');
    expect(readWavInfo(media.bytes)).toMatchObject({ sampleRate: 8000, channels: 1, bitsPerSample: 16 });
    expect(readWavInfo(media.bytes)?.durationSec).toBeCloseTo(2.72, 2);
  });

  it('recognises AMR by its magic even when labelled octet-stream', async () => {
    const media = await fetchWeChatVoice(source({ bytes: amr }), 'MEDIA');
    expect(media.mimeType).toBe('audio/wav');
  });

  it('passes through formats the transcription API takes', async () => {
    const wav = pcm16ToWav(new Int16Array(800), 8000);
    const asWav = await fetchWeChatVoice(source({ bytes: wav, contentType: 'audio/x-wav' }), 'W');
    expect(asWav).toEqual({ bytes: wav, mimeType: 'audio/wav', filename: 'voice.wav' });

    const mp3 = new Uint8Array([0x49, 0x44, 0x33, 4, 0, 0, 0, 0, 0, 0]);
    const asMp3 = await fetchWeChatVoice(source({ bytes: mp3, contentType: 'audio/mpeg' }), 'M');
    expect(asMp3).toEqual({ bytes: mp3, mimeType: 'audio/mpeg', filename: 'voice.mp3' });
  });

  it.each([
    ['AMR-WB', new TextEncoder().encode('#!AMR-WB\n\x04'), 'amr_wb'],
    ['Speex', new TextEncoder().encode('Speex   1.2rc1'), 'unsupported_format'],
    ['unknown bytes', new Uint8Array([1, 2, 3, 4]), 'unsupported_format'],
  ])('refuses %s with a typed AudioDecodeError', async (_name, bytes, code) => {
    const err = await caught(fetchWeChatVoice(source({ bytes }), 'X'));
    expect(err).toBeInstanceOf(AudioDecodeError);
    expect(err instanceof AudioDecodeError && err.code).toBe(code);
  });

  it('refuses a JSON answer without errcode (a video URL)', async () => {
    const err = await caught(fetchWeChatVoice(source({ bytes: new TextEncoder().encode('{"video_url":"x"}'), contentType: 'application/json' }), 'V'));
    expect(err).toBeInstanceOf(WeChatApiError);
    expect(err instanceof WeChatApiError && err.retryable).toBe(false);
  });
});

describe('fetchWeChatImage', () => {
  it('keeps the bytes, takes the type from the magic and the name from WeChat', async () => {
    const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    const media = await fetchWeChatImage(source({ bytes: png, contentType: 'image/jpeg', filename: 'abc.png' }), 'I');
    expect(media).toEqual({ bytes: png, mimeType: 'image/png', filename: 'abc.png' });
  });

  it('falls back to the content type and a default name', async () => {
    const media = await fetchWeChatMedia(source({ bytes: new Uint8Array([0, 1, 2]), contentType: 'image/gif' }), 'I', 'image');
    expect(media.mimeType).toBe('image/gif');
    expect(media.filename).toBe('image.gif');
  });
});

describe('against the fake WeChat API', () => {
  it('downloads voice, transcodes it, and turns an errcode JSON into a WeChatApiError', async () => {
    const wx = await startFakeWeChatApi();
    try {
      // The download itself is what is under test here: a simple token source will do.
      let calls = 0;
      const tokens: AccessTokenSource = {
        get: async () => {
          calls += 1;
          const res = await fetch(`${wx.baseUrl}/cgi-bin/stable_token`, {
            method: 'POST',
            body: JSON.stringify({ grant_type: 'client_credential', appid: wx.appId, secret: wx.appSecret, force_refresh: false }),
          });
          const body: unknown = await res.json();
          if (typeof body !== 'object' || body === null || !('access_token' in body) || typeof body.access_token !== 'string') {
            throw new Error('no token');
          }
          return body.access_token;
        },
        invalidate: () => Promise.reject(new Error('not expected')),
      };
      const api = new WeChatApi({ apiBase: wx.baseUrl, tokens });
      wx.addMedia('VOICE_1', amr, 'audio/amr');
      const media = await fetchWeChatVoice(api, 'VOICE_1');
      expect(media.mimeType).toBe('audio/wav');
      expect(readWavInfo(media.bytes)?.sampleRate).toBe(8000);

      const err = await caught(fetchWeChatVoice(api, 'EXPIRED_MEDIA'));
      expect(err).toBeInstanceOf(WeChatApiError);
      expect(err instanceof WeChatApiError && err.errcode).toBe(40007);
      expect(calls).toBe(2);
    } finally {
      await wx.close();
    }
  });
});
