/**
 * The turn: one job from the queue becomes one answer.
 * history → LLM (streaming) → answer grows in DynamoDB → conversation saved → delivered.
 *
 * Idempotent under SQS redelivery: a job whose answer is finished is never sent to
 * the LLM again, only (re)delivered; delivery itself resumes where it stopped.
 */
import type { AppConfig } from '../config';
import type { ImageInput, LlmBackend, LlmRequest, ToolDefinition } from '../llm/types';
import type { ConversationStore } from '../store/conversations';
import type { MessageKey, MessageRecord, MessageStore } from '../store/messages';
import type { ChannelAdapters } from './channel';
import { CLEARED_TEXT, HELP_TEXT, parseCommand } from './commands';
import type { Clock, Job, Log } from './types';

/** Told to users not on `ALLOWED_USERS`. */
export const NOT_ENROLLED_TEXT = 'You are not enrolled in this service.';
/** Told when a voice message cannot be transcribed. */
export const NO_TRANSCRIPTION_TEXT =
  'Sorry, I can only read text messages here: voice messages cannot be transcribed with the current setup. Please type your question.';
/** Told when an image arrives and the model is text-only. */
export const TEXT_ONLY_TEXT = 'Sorry, I can only read text here, not images. Please describe it in words.';
/** Told when the answer was cut short by an infrastructure failure after part was shown. */
export const INTERRUPTED_NOTE = '\n\n(The answer was interrupted. Please ask again if you need more.)';

/** Dependencies of the turn, all injected (design principle 1). */
export interface TurnDeps {
  config: AppConfig;
  messages: MessageStore;
  conversations: ConversationStore;
  llm: LlmBackend;
  channels: ChannelAdapters;
  clock: Clock;
  log: Log;
  /** Tools offered to the model (openai only). */
  tools: (job: Job) => readonly ToolDefinition[];
  /** How often the growing answer is written to DynamoDB while streaming. */
  flushIntervalMs: number;
}

const keyOf = (job: Job): MessageKey => ({ channel: job.channel, userId: job.userId, msgKey: job.msgKey });
/** The user id the LLM backend sees (Dify scopes conversations by it). */
const llmUserId = (job: Job): string => `${job.channel}:${job.userId}`;

/** Matches ALLOWED_USERS entries against ids with and without `+` / `whatsapp:` prefixes. */
export function isAllowed(allowed: ReadonlySet<string>, userId: string): boolean {
  if (allowed.size === 0) return true;
  const bare = userId.replace(/^whatsapp:/, '');
  const candidates = [userId, bare, bare.replace(/^\+/, ''), `+${bare.replace(/^\+/, '')}`];
  return candidates.some((c) => allowed.has(c));
}

/**
 * What the model is asked, or a fixed answer that skips the model.
 */
type Prepared = { kind: 'fixed'; text: string } | { kind: 'ask'; text: string; images: ImageInput[]; remember: boolean };

async function prepare(deps: TurnDeps, job: Job): Promise<Prepared> {
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
      const vision = deps.config.llm.provider === 'openai' && deps.config.llm.openai?.vision === true;
      if (!vision || !adapter?.fetchMedia) return { kind: 'fixed', text: TEXT_ONLY_TEXT };
      const media = await adapter.fetchMedia(job, input.mediaRef, input.mimeType);
      const url = `data:${media.mimeType};base64,${Buffer.from(media.bytes).toString('base64')}`;
      const text = input.caption.trim() || 'What is in this image?';
      return { kind: 'ask', text, images: [{ url }], remember: true };
    }
    case 'audio': {
      const adapter = deps.channels[job.channel];
      if (!deps.llm.transcribe || !adapter?.fetchMedia) return { kind: 'fixed', text: NO_TRANSCRIPTION_TEXT };
      const media = await adapter.fetchMedia(job, input.mediaRef, input.mimeType);
      const text = (await deps.llm.transcribe(media.bytes, media.filename, media.mimeType)).trim();
      if (text === '') return { kind: 'fixed', text: 'Sorry, I could not hear anything in that voice message.' };
      return { kind: 'ask', text, images: [], remember: true };
    }
  }
}

/**
 * Streams the model's answer into the record, flushing the growing text every
 * `flushIntervalMs`. Returns the final text; LLM failures become a short apology.
 */
async function generate(
  deps: TurnDeps,
  job: Job,
  prepared: Extract<Prepared, { kind: 'ask' }>,
): Promise<{ text: string; ok: boolean; remember: () => Promise<void> }> {
  const key = keyOf(job);
  const conv = await deps.conversations.load(job.conversationKey, deps.clock.nowMs());
  const suffix = deps.channels[job.channel]?.systemPromptSuffix?.(job) ?? '';
  const request: LlmRequest = {
    userId: llmUserId(job),
    text: prepared.text,
    images: prepared.images,
    history: deps.llm.name === 'dify' ? [] : conv.turns.slice(-deps.config.llm.historyTurns * 2),
    systemPrompt: suffix ? `${deps.config.llm.systemPrompt}\n\n${suffix}` : deps.config.llm.systemPrompt,
    conversationId: conv.difyConversationId,
    tools: deps.tools(job),
  };
  await deps.messages.startAnswer(key, deps.clock.nowMs());

  let answer = '';
  let flushed = '';
  let lastFlushMs = deps.clock.nowMs();
  let difyConversationId = conv.difyConversationId;
  let failure: string | undefined;
  for await (const event of deps.llm.stream(request)) {
    if (event.type === 'delta') answer += event.text;
    else if (event.type === 'replace') answer = event.text;
    else if (event.type === 'conversation') difyConversationId = event.conversationId;
    else if (event.type === 'error') {
      deps.log.error('LLM failed', { code: event.code, message: event.message, retryable: event.retryable });
      failure = event.userMessage;
      break;
    } else break; // done
    const now = deps.clock.nowMs();
    if (answer !== flushed && now - lastFlushMs >= deps.flushIntervalMs) {
      await deps.messages.saveProgress(key, answer, now);
      flushed = answer;
      lastFlushMs = now;
    }
  }

  const nothing = async (): Promise<void> => undefined;
  if (failure !== undefined) {
    return { text: answer.trim() === '' ? failure : `${answer}\n\n${failure}`, ok: false, remember: nothing };
  }
  if (answer.trim() === '') {
    return { text: 'Sorry, I have no answer to that. Could you rephrase it?', ok: false, remember: nothing };
  }
  // Saved after the answer is marked done, so a waiting reply is not held up by it.
  const remember = async (): Promise<void> => {
    if (!prepared.remember) return;
    const turns = [...conv.turns, { role: 'user' as const, content: prepared.text }, { role: 'assistant' as const, content: answer }];
    await deps.conversations.save(
      job.conversationKey,
      { turns: deps.llm.name === 'dify' ? [] : turns, difyConversationId },
      deps.config.llm.historyTurns,
      deps.clock.nowMs(),
    );
  };
  return { text: answer, ok: true, remember };
}

/** Deletes the user's conversation and takes every pending answer out of the queue of things to deliver. */
async function forgetUser(deps: TurnDeps, job: Job): Promise<void> {
  await deps.conversations.clear(job.conversationKey);
  const now = deps.clock.nowMs();
  for (const rec of await deps.messages.listPending(job.channel, job.userId, now, 100)) {
    await deps.messages.dropPending(rec, now);
  }
}

/**
 * Answers one job (idempotently) and delivers it through the channel.
 * Throws only for failures SQS redelivery can fix (DynamoDB/SQS errors, retryable delivery).
 */
export async function runTurn(deps: TurnDeps, job: Job): Promise<MessageRecord> {
  const key = keyOf(job);
  const now = deps.clock.nowMs();
  let record = await deps.messages.get(key, now);
  if (!record) {
    // The claim expired or was never written (job replayed from the DLQ): claim it now.
    record = (await deps.messages.claim(job, now)).record;
  }

  if (record.status === 'streaming' && record.deliveredChars > 0) {
    // A previous attempt died mid-stream after part of the answer was shown: regenerating
    // would show the user a different text, so close what they have seen.
    record = await deps.messages.finish(key, record.answer + INTERRUPTED_NOTE, 'done', deps.clock.nowMs(), 'interrupted');
  }

  if (record.status !== 'done' && record.status !== 'failed') {
    if (job.input.kind === 'forget') {
      await forgetUser(deps, job);
      await deps.messages.finish(key, '', 'done', deps.clock.nowMs());
      await deps.messages.dropPending(key, deps.clock.nowMs());
      const gone = await deps.messages.get(key, deps.clock.nowMs());
      if (!gone) throw new Error('message record vanished');
      return gone;
    }
    let text: string;
    let ok = true;
    let remember = async (): Promise<void> => undefined;
    if (!isAllowed(deps.config.allowedUsers, job.userId)) {
      text = NOT_ENROLLED_TEXT;
    } else {
      await deps.channels[job.channel]?.onJobStart?.(job);
      const prepared = await prepare(deps, job);
      if (prepared.kind === 'fixed') {
        text = prepared.text;
      } else {
        const result = await generate(deps, job, prepared);
        text = result.text;
        ok = result.ok;
        remember = result.remember;
      }
    }
    record = await deps.messages.finish(key, text, 'done', deps.clock.nowMs(), ok ? '' : 'apology');
    await remember();
  }

  const adapter = deps.channels[job.channel];
  if (adapter && record.pending) await adapter.deliver(record);
  return record;
}
