/**
 * Text for the phone (pure, no I/O): what the model is told about voice, how an answer
 * is made speakable and short enough for `<Say>`, and how the caller ends the call.
 *
 * @module
 */
import { splitForChannel } from '../../core/chunking';

/**
 * `<Say>` takes 3,000-5,000 characters depending on the speech engine (Twilio docs,
 * "TwiML Voice: <Say>", https://www.twilio.com/docs/voice/twiml/say). Voice answers are cut well below the
 * smallest limit: past a minute of speech a caller has stopped listening anyway.
 */
export const SAY_MAX_CHARS = 1500;

/** Added to the system prompt for voice turns (ChannelAdapter.systemPromptSuffix). */
export const VOICE_INSTRUCTION =
  'You are talking to the user on a phone call; your answer is read aloud by text-to-speech. ' +
  'Answer in one to three short spoken sentences (under 60 words). ' +
  'Use plain words only: no lists, headings, markdown, emoji, URLs or code.';

/**
 * Makes model output speakable: markdown markers, code fences, link syntax and emoji
 * would be read out literally or garble the speech.
 */
export function speakable(text: string): string {
  return text
    .replace(/```[\s\S]*?```/g, ' ')
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/https?:\/\/\S+/g, 'the link')
    .replace(/^\s{0,3}#{1,6}\s+/gm, '')
    .replace(/^\s*[-*+]\s+/gm, '')
    .replace(/[*_`~]+/g, '')
    .replace(/\p{Extended_Pictographic}\uFE0F?/gu, '')
    .replace(/[ \t]+/g, ' ')
    .replace(/\s*\n\s*/g, '\n')
    .trim();
}

/** The part of an answer that is spoken: speakable, and cut at a sentence below {@link SAY_MAX_CHARS}. */
export function forSay(answer: string, maxChars = SAY_MAX_CHARS): string {
  const parts = splitForChannel(speakable(answer), maxChars);
  return parts[0] ?? '';
}

/** True when the caller is saying goodbye ("goodbye", "bye", "bye bye", "that's all, thanks"…). */
export function isGoodbye(speech: string): boolean {
  const t = speech.toLowerCase().replace(/[^\p{L}\p{N}' ]+/gu, ' ').replace(/\s+/g, ' ').trim();
  if (t === '') return false;
  return /^(ok(ay)? )?(good ?bye|bye( bye)?|bye now|hang up|that'?s all( thanks?| thank you)?|see you|farewell)( now| then| thanks?| thank you)*$/.test(t);
}
