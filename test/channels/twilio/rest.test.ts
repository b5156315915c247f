/**
 * TwilioRest.fetchMedia against the fake Twilio over HTTP: the bytes arrive whole with or
 * without Content-Length, and media over the limit is refused for good, whether the limit
 * shows in the header or only while the body streams.
 */
import { TwilioApiError, TwilioRest } from '../../../lib/channels/twilio/rest';
import { startFakeTwilio, type FakeTwilio } from '../../../local/fakes/fake-twilio';

const ACCOUNT_SID = `AC${'fedcba9876543210'.repeat(2)}`;
const AUTH_TOKEN = 'rest-test-token';

let twilio: FakeTwilio;
let rest: TwilioRest;

beforeAll(async () => {
  twilio = await startFakeTwilio({ accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN, publicBaseUrl: 'https://gateway.example.com' });
  rest = new TwilioRest({ accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN, apiBase: twilio.apiBase }, fetch);
});

afterAll(async () => {
  await twilio.close();
});

async function failureOf(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => undefined,
    (err: unknown) => err,
  );
}

describe('TwilioRest.fetchMedia', () => {
  it.each([false, true])('downloads the bytes and type (chunked: %s)', async (chunked) => {
    // Arrange
    const bytes = Buffer.alloc(200_000, 3);
    const url = twilio.addMedia(bytes, 'audio/ogg', { chunked });

    // Act
    const media = await rest.fetchMedia(url, 1_000_000);

    // Assert
    expect(Buffer.from(media.bytes).equals(bytes)).toBe(true);
    expect(media.contentType).toBe('audio/ogg');
  });

  it.each([false, true])('refuses media over the limit as permanent (chunked: %s)', async (chunked) => {
    // Arrange
    const url = twilio.addMedia(Buffer.alloc(1_000_000), 'image/jpeg', { chunked });

    // Act
    const failure = await failureOf(rest.fetchMedia(url, 100_000));

    // Assert
    expect(failure).toBeInstanceOf(TwilioApiError);
    expect(failure).toMatchObject({ code: 'media_too_large', retryable: false });
  });
});
