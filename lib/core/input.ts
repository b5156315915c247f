/**
 * The turn's first step: what the user sent becomes either a fixed reply (a command, a
 * notice, a user not enrolled, media that cannot be read) or a question for the model
 * (text, a transcribed voice note, an image for a model that reads images).
 *
 * @module
 */
import type { ImageInput } from '../llm/types';
import { DeliveryError } from './channel';
import { CLEARED_TEXT, HELP_TEXT, parseCommand } from './commands';
import { CUT_CODES, LlmCallError } from '../llm/retry';
import { localise, TOO_SLOW_TEXT } from './notes';
import type { TurnDeps, TurnOptions } from './turn-deps';
import type { Job } from '../types';

/** Told to users not on `ALLOWED_USERS`. */
export const NOT_ENROLLED_TEXT = 'You are not enrolled in this service.';
/** Told when a voice message cannot be transcribed. */
export const NO_TRANSCRIPTION_TEXT =
  'Sorry, I can only read text messages here: voice messages cannot be transcribed with the current setup. Please type your question.';
/** Told when media could not be fetched or understood. */
export const MEDIA_FAILED_TEXT = 'Sorry, I could not process that attachment. Please send your question as text.';
/** Told when an image arrives and the model is text-only. */
export const TEXT_ONLY_TEXT = 'Sorry, I can only read text here, not images. Please describe it in words.';

/** The user id the LLM backend sees (Dify scopes conversations by it). */
export const llmUserId = (job: Job): string => `${job.channel}:${job.userId}`;

/**
 * What the model is asked, or a fixed answer that skips the model.
 */
export type Prepared = { kind: 'fixed'; text: string } | { kind: 'ask'; text: string; images: ImageInput[]; remember: boolean };

/**
 * Media that cannot be fetched or understood (expired media id, undecodable voice) gets a
 * polite reply instead of endless retries; failures a retry can fix still throw.
 */
export async function prepare(deps: TurnDeps, job: Job, opts: TurnOptions): Promise<Prepared> {
  try {
    return await prepareInput(deps, job, opts);
  } catch (err) {
    if (err instanceof LlmCallError && (err.code === CUT_CODES.idle || err.code === CUT_CODES.deadline)) {
      deps.log.warn('transcription cut short', { code: err.code, error: err.message });
      return { kind: 'fixed', text: localise(job, TOO_SLOW_TEXT) };
    }
    const retryable = err instanceof DeliveryError ? err.retryable : err instanceof LlmCallError ? err.retryable : true;
    if (retryable || (job.input.kind !== 'audio' && job.input.kind !== 'image')) throw err;
    deps.log.warn('media could not be used', { error: err instanceof Error ? err.message : String(err) });
    return { kind: 'fixed', text: err instanceof LlmCallError ? err.userMessage : MEDIA_FAILED_TEXT };
  }
}

/**
 * Whether `job` would reach the model (and so counts against the rate limit and needs LLM
 * time). Mirrors {@link prepareInput}: commands, notices, a text-only model's images and
 * voice without transcription are answered without it.
 */
export function isLlmBound(deps: TurnDeps, job: Job): boolean {
  const input = job.input;
  const adapter = deps.channels[job.channel];
  switch (input.kind) {
    case 'notice':
    case 'forget':
      return false;
    case 'text':
      return parseCommand(input.text) === undefined;
    case 'image':
      return deps.llm.capabilities.acceptsImages && adapter?.fetchMedia !== undefined;
    case 'audio':
      return deps.llm.transcribe !== undefined && adapter?.fetchMedia !== undefined;
  }
}

/** Milliseconds of LLM time left, or undefined without a deadline. */
export function budgetOf(deps: TurnDeps, opts: TurnOptions): number | undefined {
  return opts.llmDeadlineMs === undefined ? undefined : opts.llmDeadlineMs - deps.clock.nowMs();
}

async function prepareInput(deps: TurnDeps, job: Job, opts: TurnOptions): Promise<Prepared> {
  const input = job.input;
  switch (input.kind) {
    case 'notice':
      return { kind: 'fixed', text: input.text };
    case 'forget':
      return { kind: 'fixed', text: '' };
    case 'text': {
      const command = parseCommand(input.text);
      if (command === 'help') return { kind: 'fixed', text: HELP_TEXT };
      if (command === 'clear') {
        const conv = await deps.conversations.load(job.conversationKey, deps.clock.nowMs());
        if (conv.difyConversationId && deps.llm.forgetConversation) {
          await deps.llm.forgetConversation(llmUserId(job), conv.difyConversationId).catch((err: unknown) => {
            deps.log.warn('could not delete the Dify conversation', { error: String(err) });
          });
        }
        await deps.conversations.clear(job.conversationKey);
        return { kind: 'fixed', text: CLEARED_TEXT };
      }
      return { kind: 'ask', text: input.text, images: [], remember: true };
    }
    case 'image': {
      const adapter = deps.channels[job.channel];
      const vision = deps.llm.capabilities.acceptsImages;
      if (!vision || !adapter?.fetchMedia) return { kind: 'fixed', text: TEXT_ONLY_TEXT };
      const media = await adapter.fetchMedia(job, input.mediaRef, input.mimeType);
      const text = input.caption.trim() || 'What is in this image?';
      // The bytes go to the backend as they are; it encodes them while sending (no base64 copy here).
      return { kind: 'ask', text, images: [{ bytes: media.bytes, mimeType: media.mimeType }], remember: true };
    }
    case 'audio': {
      const adapter = deps.channels[job.channel];
      if (!deps.llm.transcribe || !adapter?.fetchMedia) return { kind: 'fixed', text: NO_TRANSCRIPTION_TEXT };
      const media = await adapter.fetchMedia(job, input.mediaRef, input.mimeType);
      const text = (await deps.llm.transcribe(media.bytes, media.filename, media.mimeType, budgetOf(deps, opts))).trim();
      if (text === '') return { kind: 'fixed', text: 'Sorry, I could not hear anything in that voice message.' };
      return { kind: 'ask', text, images: [], remember: true };
    }
  }
}
