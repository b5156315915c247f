/**
 * The Twilio voice webhooks: a phone conversation with the same pipeline as messaging.
 *
 * Twilio waits 15 s for every TwiML response (error 11200 after that;
 * https://www.twilio.com/docs/usage/webhooks/webhooks-connection-overrides) while a model
 * may need longer, so a turn is bridged:
 *
 * ```
 * POST /twilio/voice            → <Gather speech> greeting </Gather> <Redirect gather?t=1&s=0>
 * POST /twilio/voice/gather     → (speech) claim CallSid:t, enqueue; "One moment." <Pause> <Redirect poll?t&r=0>
 *                                 (silence) "Are you still there?" + <Gather>; twice in a row: goodbye, <Hangup>
 *                                 ("goodbye") farewell, <Hangup>
 * POST /twilio/voice/poll       → waits up to `pollWaitMs` on the record:
 *                                 done → <Gather speech> <Say>answer</Say> </Gather> <Redirect gather?t+1&s=0>
 *                                 else <Pause> <Redirect poll?t&r+1>, at most `maxPolls` times, then an apology
 * ```
 *
 * Without speech, `<Gather>` falls through to the next verb (Twilio docs, "TwiML Voice:
 * <Gather>"), hence the redirect after each one to the same action, which then sees no
 * `SpeechResult`. Turn (`t`), silence (`s`) and poll (`r`) counters travel in the URLs,
 * which Twilio signs, so no call state is stored. The turn's dedupe key is
 * `{CallSid}:{t}`: a repeated webhook never asks the model twice.
 *
 * Caller IDs can be spoofed. A call shares the memory of its number's SMS / WhatsApp
 * conversation, and may change that number's contact entry, only when Twilio reports
 * the caller ID verified with full attestation: `StirVerstat=TN-Validation-Passed-A`
 * (https://www.twilio.com/docs/voice/trusted-calling-with-shakenstir; B and C
 * attestations, failed validations and calls without the parameter are not). Any other
 * call gets a conversation of its own, keyed by its CallSid. The verdict is taken from
 * the call's first webhook and carried in the signed URLs (`v=1`) like the counters.
 *
 * @module
 */
import type { TwilioConfig } from '../../config';
import { acceptMessage, type IngressDeps } from '../../core/ingress';
import { NOT_ENROLLED_TEXT, isAllowed } from '../../core/turn';
import type { Job, Log } from '../../types';
import type { HttpRequest, HttpResponse } from '../http';
import { param, type TwilioParams } from './form';
import { bareNumber, conversationKeyOf } from './inbound';
import { rejectTwilio, verifiedParams } from './messaging';
import { forSay, isGoodbye } from './speech';
import { calledBaseUrl } from './signature';
import { gather, hangup, pause, redirect, say, twiml, twimlResponse } from './twiml';
import { VOICE_GATHER_PATH, VOICE_PATH, VOICE_POLL_PATH, counter, gatherUrl, pollUrl } from './urls';

/** Dependencies of the voice webhooks. */
export interface TwilioVoiceDeps extends IngressDeps {
  config: TwilioConfig;
  publicBaseUrl: string;
  allowedUsers: ReadonlySet<string>;
  log: Log;
  /** How long one poll waits for the answer before redirecting again (well inside Twilio's 15 s). */
  pollWaitMs: number;
  /** How often a waiting poll re-reads DynamoDB. */
  pollIntervalMs: number;
  /** Polls per turn before the caller hears an apology (bounds the redirect loop). */
  maxPolls: number;
  /** `<Pause>` after the filler, in seconds. */
  fillerPauseSec: number;
  /** `<Pause>` between polls, in seconds. */
  pollPauseSec: number;
}

/** The voice protocol's timings, the defaults of {@link TwilioVoiceDeps} (tests scale them down). */
export const VOICE_TIMINGS: Readonly<Pick<TwilioVoiceDeps, 'pollWaitMs' | 'pollIntervalMs' | 'maxPolls' | 'fillerPauseSec' | 'pollPauseSec'>> = {
  // Twilio gives up on a TwiML fetch after 15 s (error 11200,
  // https://www.twilio.com/docs/api/errors/11200): 8 s of waiting plus DynamoDB reads and the
  // Lambda's own latency stay well inside it.
  pollWaitMs: 8_000,
  pollIntervalMs: 250,
  // 6 polls ≈ 6 × (8 s + 1 s pause) ≈ 54 s of "thinking" before the apology.
  maxPolls: 6,
  fillerPauseSec: 2,
  pollPauseSec: 1,
};

/** Said while the model thinks. */
export const FILLER_TEXT = 'One moment, let me think.';
/** Said after the first silence. */
export const STILL_THERE_TEXT = 'Are you still there? You can ask me anything.';
/** Said when the caller says goodbye. */
export const GOODBYE_TEXT = 'Thank you for calling. Goodbye!';
/** Said after the second silence in a row. */
export const SILENCE_GOODBYE_TEXT = 'I did not hear anything, so I will hang up now. Goodbye!';
/** Said when the answer did not come within the bounded polls. */
export const TIMEOUT_APOLOGY_TEXT = 'Sorry, I could not come up with an answer in time. Please ask again, or ask something else.';
/** Said when the model gave nothing speakable. */
export const EMPTY_ANSWER_TEXT = 'Sorry, I have no answer to that. Could you rephrase it?';
/** Said when something failed on our side. */
export const ERROR_TEXT = 'Sorry, something went wrong on my side. Please say that again.';
/** Consecutive silent gathers that end the call. */
export const SILENCE_LIMIT = 2;

/** `StirVerstat` of a caller ID whose owner the originating carrier verified (SHAKEN/STIR attestation A). */
export const STIR_VERIFIED_A = 'TN-Validation-Passed-A';

/**
 * Whether this call's caller ID is verified: Twilio says so on this request, or said so
 * on the call's first webhook and our signed URL carries it (`v=1`).
 */
export function callerIdVerified(params: TwilioParams, query: Readonly<Record<string, string | undefined>>): boolean {
  return param(params, 'StirVerstat') === STIR_VERIFIED_A || query.v === '1';
}

/** Memory of one call whose caller ID is not verified: its own, never the number's. */
export function callConversationKey(callSid: string): string {
  return `twilio-call#${callSid}`;
}

/** Turn `t`'s key and owner. */
function turnKey(params: TwilioParams, turn: number): { channel: 'twilio'; userId: string; msgKey: string } {
  return { channel: 'twilio', userId: bareNumber(param(params, 'From')), msgKey: `${param(params, 'CallSid')}:${turn}` };
}

/** A `<Gather>` for the next question, with `prompt` (verbs) played while listening, then the silence fallback. */
function listen(deps: TwilioVoiceDeps, turn: number, silences: number, prompt: string, verified: boolean): string[] {
  const action = gatherUrl(deps.publicBaseUrl, turn, silences, verified);
  return [gather({ action, language: deps.config.voiceLanguage, prompt }), redirect(action)];
}

/** Handles POST `/twilio/voice`, `/twilio/voice/gather` and `/twilio/voice/poll`. */
export async function handleTwilioVoice(callDeps: TwilioVoiceDeps, req: HttpRequest): Promise<HttpResponse> {
  // The call's next URLs go where this request came: its function URL, or PUBLIC_BASE_URL.
  const deps: TwilioVoiceDeps = { ...callDeps, publicBaseUrl: calledBaseUrl(callDeps.publicBaseUrl, req) };
  const verified = verifiedParams(deps, req);
  if (!verified.ok) return verified.response;
  const params = verified.params;
  if (!/^CA[0-9a-zA-Z]{1,62}$/.test(param(params, 'CallSid')) || param(params, 'From') === '') {
    return rejectTwilio(deps.log, 400, 'CallSid or From is missing');
  }
  try {
    if (req.path.endsWith(VOICE_GATHER_PATH)) return await onGather(deps, req, params);
    if (req.path.endsWith(VOICE_POLL_PATH)) return await onPoll(deps, req, params);
    if (req.path.endsWith(VOICE_PATH)) return onCall(deps, req, params);
  } catch (err) {
    // A 5xx would make Twilio play its "application error" message and drop the call:
    // every voice response is TwiML, so the caller hears an apology and may ask again.
    deps.log.error('voice webhook failed', { error: err instanceof Error ? `${err.name}: ${err.message}` : String(err) });
    const turn = counter(req.query.t, 1) + (req.path.endsWith(VOICE_POLL_PATH) ? 1 : 0);
    return twimlResponse(twiml(...listen(deps, turn, 0, say(ERROR_TEXT, deps.config.voiceLanguage), callerIdVerified(params, req.query))));
  }
  return rejectTwilio(deps.log, 404, `path ${req.path}`);
}

/** A new call: greet and listen (or turn away a number not on ALLOWED_USERS). */
function onCall(deps: TwilioVoiceDeps, req: HttpRequest, params: TwilioParams): HttpResponse {
  const lang = deps.config.voiceLanguage;
  if (!isAllowed(deps.allowedUsers, bareNumber(param(params, 'From')))) {
    return twimlResponse(twiml(say(NOT_ENROLLED_TEXT, lang), hangup()));
  }
  return twimlResponse(twiml(...listen(deps, 1, 0, say(deps.config.voiceGreeting, lang), callerIdVerified(params, req.query))));
}

/** What the caller said (or did not say) in turn `t`. */
async function onGather(deps: TwilioVoiceDeps, req: HttpRequest, params: TwilioParams): Promise<HttpResponse> {
  const lang = deps.config.voiceLanguage;
  const turn = counter(req.query.t, 1);
  const silences = counter(req.query.s, 0);
  const verified = callerIdVerified(params, req.query);
  const speech = param(params, 'SpeechResult').trim();
  if (speech === '') {
    if (silences + 1 >= SILENCE_LIMIT) return twimlResponse(twiml(say(SILENCE_GOODBYE_TEXT, lang), hangup()));
    return twimlResponse(twiml(...listen(deps, turn, silences + 1, say(STILL_THERE_TEXT, lang), verified)));
  }
  if (isGoodbye(speech)) return twimlResponse(twiml(say(GOODBYE_TEXT, lang), hangup()));

  const from = param(params, 'From');
  const key = turnKey(params, turn);
  const job: Job = {
    v: 1,
    channel: 'twilio',
    userId: key.userId,
    msgKey: key.msgKey,
    // A verified caller shares the number's memory with its texts; any other call keeps its own.
    conversationKey: verified ? conversationKeyOf(from) : callConversationKey(param(params, 'CallSid')),
    input: { kind: 'text', text: speech },
    reply: { channel: 'twilio', to: from, from: param(params, 'To'), medium: 'voice', callSid: param(params, 'CallSid'), callerVerified: verified },
    arrivedAtMs: req.receivedAtMs,
  };
  // Not pending: the answer is spoken by the poll below, never pushed.
  await acceptMessage(deps, job, { pending: false });
  return twimlResponse(twiml(say(FILLER_TEXT, lang), pause(deps.fillerPauseSec), redirect(pollUrl(deps.publicBaseUrl, turn, 0, verified))));
}

/** Waits (bounded) for turn `t`'s answer; speaks it and listens again, or redirects to poll once more. */
async function onPoll(deps: TwilioVoiceDeps, req: HttpRequest, params: TwilioParams): Promise<HttpResponse> {
  const lang = deps.config.voiceLanguage;
  const turn = counter(req.query.t, 1);
  const poll = counter(req.query.r, 0);
  const verified = callerIdVerified(params, req.query);
  const key = turnKey(params, turn);
  const deadline = req.receivedAtMs + deps.pollWaitMs;
  for (;;) {
    const record = await deps.messages.get(key, deps.clock.nowMs());
    if (record && (record.status === 'done' || record.status === 'failed')) {
      const spoken = forSay(record.answer) || EMPTY_ANSWER_TEXT;
      return twimlResponse(twiml(...listen(deps, turn + 1, 0, say(spoken, lang), verified)));
    }
    if (!record) deps.log.warn('voice turn has no record', { msgKey: key.msgKey });
    const left = deadline - deps.clock.nowMs();
    if (!record || left <= 0) break;
    await deps.clock.sleep(Math.min(deps.pollIntervalMs, left));
  }
  if (poll + 1 >= deps.maxPolls) {
    deps.log.warn('voice answer did not come in time', { msgKey: key.msgKey, polls: poll + 1 });
    return twimlResponse(twiml(...listen(deps, turn + 1, 0, say(TIMEOUT_APOLOGY_TEXT, lang), verified)));
  }
  return twimlResponse(twiml(pause(deps.pollPauseSec), redirect(pollUrl(deps.publicBaseUrl, turn, poll + 1, verified))));
}
