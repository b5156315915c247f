/**
 * The turn: one job from the queue becomes one answer.
 * history → LLM (streaming) → answer grows in DynamoDB → conversation saved → delivered.
 *
 * Idempotent under SQS redelivery: a job whose answer is finished is never sent to
 * the LLM again, only (re)delivered; delivery itself resumes where it stopped.
 */
import { normaliseUserId } from '../config';
import type { LlmRequest } from '../llm/types';
import type { Conversation } from '../store/conversations';
import type { MessageKey, MessageRecord } from '../store/messages';
import { NO_NOTE, type RecordNote } from '../store/notes';
import { DeliveryError } from './channel';
import { CUT_NOTE, LENGTH_NOTE, localise, rateLimitedText, TOO_SLOW_TEXT } from './notes';
import type { Job } from '../types';
import { budgetOf, isLlmBound, llmUserId, NOT_ENROLLED_TEXT, prepare, type Prepared } from './input';
import { METRIC, noMetrics } from './metrics';
import { AnswerInProgressError, OutOfTimeError, type TurnDeps, type TurnOptions } from './turn-deps';

export { MEDIA_FAILED_TEXT, NO_TRANSCRIPTION_TEXT, NOT_ENROLLED_TEXT, TEXT_ONLY_TEXT } from './input';
export { AnswerInProgressError, OutOfTimeError, type TurnDeps, type TurnOptions } from './turn-deps';

/** Told when the answer was cut short by an infrastructure failure after part was shown. */
export const INTERRUPTED_NOTE = '\n\n(The answer was interrupted. Please ask again if you need more.)';

const keyOf = (job: Job): MessageKey => ({ channel: job.channel, userId: job.userId, msgKey: job.msgKey });
/** Matches ALLOWED_USERS (normalised at load) against the user id in the same spelling. */
export function isAllowed(allowed: ReadonlySet<string>, userId: string): boolean {
  return allowed.size === 0 || allowed.has(normaliseUserId(userId));
}

/**
 * Streams the model's answer into the record, flushing the growing text every
 * `flushIntervalMs`. Returns the final text; LLM failures become a short apology.
 */
async function generate(
  deps: TurnDeps,
  job: Job,
  prepared: Extract<Prepared, { kind: 'ask' }>,
  opts: TurnOptions,
  lease: { held: boolean },
): Promise<Generated> {
  const key = keyOf(job);
  // The conversation is read while the lease is taken: two round trips at once instead of one
  // after the other before the model is called (the user's time to the first token). The
  // FIFO group runs one job of a user at a time, so the read is as fresh either way.
  const [loaded, started] = await Promise.allSettled([deps.conversations.load(job.conversationKey, deps.clock.nowMs()), deps.messages.startAnswer(key, deps.clock.nowMs(), deps.streamLeaseMs)]);
  if (started.status === 'rejected') throw started.reason;
  if (!started.value) throw new AnswerInProgressError(job.msgKey);
  // From here a failure releases the lease (the caller's finally), a failed read included.
  lease.held = true;
  if (loaded.status === 'rejected') throw loaded.reason;
  const conv = loaded.value;
  const suffix = deps.channels[job.channel]?.systemPromptSuffix?.(job) ?? '';
  const request: LlmRequest = {
    userId: llmUserId(job),
    text: prepared.text,
    images: prepared.images,
    history: deps.llm.capabilities.keepsHistory ? [] : conv.turns.slice(-deps.config.llm.historyTurns * 2),
    systemPrompt: suffix ? `${deps.config.llm.systemPrompt}\n\n${suffix}` : deps.config.llm.systemPrompt,
    conversationId: conv.difyConversationId,
    tools: deps.tools(job),
  };

  // Keep the lease while the model thinks before its first token.
  const keepAlive = setInterval(() => {
    deps.messages.touch(key, deps.clock.nowMs()).catch((err: unknown) => deps.log.warn('lease refresh failed', { error: String(err) }));
  }, Math.max(1000, Math.floor(deps.streamLeaseMs / 4)));
  try {
    // The budget is measured after the lease is taken, so it counts from the model call.
    const budgetMs = budgetOf(deps, opts);
    return await streamAnswer(deps, job, prepared, budgetMs === undefined ? request : { ...request, budgetMs }, conv);
  } finally {
    clearInterval(keepAlive);
  }
}

/** The outcome of a model call: the text to deliver, the record's note, and how to remember it. */
interface Generated {
  text: string;
  /** None for a normal answer; `apology`, `cut` or `length` otherwise. */
  note: RecordNote;
  remember: () => Promise<void>;
}

async function streamAnswer(
  deps: TurnDeps,
  job: Job,
  prepared: Extract<Prepared, { kind: 'ask' }>,
  request: LlmRequest,
  conv: Conversation,
): Promise<Generated> {
  const key = keyOf(job);
  let answer = '';
  let flushed = '';
  let lastFlushMs = deps.clock.nowMs();
  let difyConversationId = conv.difyConversationId;
  let failure: string | undefined;
  let cut = false;
  let finishReason = '';
  // Progress is written only where someone can read it, when the channel's readers need it
  // (see ChannelAdapter.progress).
  const progress = deps.channels[job.channel]?.progress;
  const metrics = deps.metrics ?? noMetrics;
  const channel = { channel: job.channel };
  let firstToken = true;
  stream: for await (const event of deps.llm.stream(request)) {
    switch (event.type) {
      case 'delta':
        if (firstToken && event.text !== '') {
          firstToken = false;
          metrics.timing(METRIC.timeToFirstToken, channel, deps.clock.nowMs() - job.arrivedAtMs);
        }
        answer += event.text;
        break;
      case 'usage':
        metrics.count(METRIC.tokens, { kind: 'prompt' }, event.promptTokens);
        metrics.count(METRIC.tokens, { kind: 'completion' }, event.completionTokens);
        break;
      case 'replace':
        answer = event.text;
        break;
      case 'conversation':
        difyConversationId = event.conversationId;
        break;
      case 'error':
        deps.log.error('LLM failed', { code: event.code, message: event.message, retryable: event.retryable });
        metrics.count(METRIC.llmErrors, { kind: event.code });
        failure = event.userMessage;
        break stream;
      case 'cut':
        deps.log.warn('LLM answer cut short', { reason: event.reason, message: event.message, chars: answer.length });
        metrics.count(METRIC.llmErrors, { kind: `cut_${event.reason}` });
        cut = true;
        break stream;
      case 'done':
        finishReason = event.finishReason;
        break stream;
    }
    const now = deps.clock.nowMs();
    if (
      progress &&
      answer !== flushed &&
      now - lastFlushMs >= deps.flushIntervalMs &&
      progress.due({ arrivedAtMs: job.arrivedAtMs, answer, written: flushed, writtenAtMs: lastFlushMs, nowMs: now })
    ) {
      await deps.messages.saveProgress(key, answer, now);
      flushed = answer;
      lastFlushMs = now;
    }
  }

  if (failure === undefined) metrics.timing(METRIC.timeToAnswer, channel, deps.clock.nowMs() - job.arrivedAtMs);

  /** Saves the exchange (when there is an answer to remember) and Dify's conversation id. */
  const save = async (remembered: string): Promise<void> => {
    if (!prepared.remember) return;
    const turns =
      remembered.trim() === '' ? conv.turns : [...conv.turns, { role: 'user' as const, content: prepared.text }, { role: 'assistant' as const, content: remembered }];
    await deps.conversations.save(
      job.conversationKey,
      { turns: deps.llm.capabilities.keepsHistory ? [] : turns, difyConversationId },
      { maxTurns: deps.config.llm.historyTurns, maxBytes: deps.config.llm.historyMaxBytes },
      deps.clock.nowMs(),
    );
  };
  const nothing = async (): Promise<void> => undefined;
  if (failure !== undefined) {
    return { text: answer.trim() === '' ? failure : `${answer}\n\n${failure}`, note: { kind: 'apology' }, remember: nothing };
  }
  if (cut) {
    // A cut is final: the text so far is delivered with a note, and remembered as the model's
    // answer (without the note), so the next question has the context the user saw.
    if (answer.trim() === '') return { text: localise(job, TOO_SLOW_TEXT), note: { kind: 'cut' }, remember: () => save('') };
    return { text: answer + localise(job, CUT_NOTE), note: { kind: 'cut' }, remember: () => save(answer) };
  }
  if (answer.trim() === '') {
    return { text: 'Sorry, I have no answer to that. Could you rephrase it?', note: { kind: 'apology' }, remember: nothing };
  }
  if (finishReason === 'length') return { text: answer + localise(job, LENGTH_NOTE), note: { kind: 'length' }, remember: () => save(answer) };
  return { text: answer, note: NO_NOTE, remember: () => save(answer) };
}

/**
 * Counts an LLM-bound message against the user's window. Returns undefined when it may go on,
 * the note to send for the first refused message of the window, or '' for later refused ones.
 */
async function rateLimit(deps: TurnDeps, job: Job): Promise<string | undefined> {
  const now = deps.clock.nowMs();
  const decision = await deps.rateLimits.take(job.channel, job.userId, job.msgKey, now, deps.config.rateLimit);
  if (decision.allowed) return undefined;
  deps.log.warn('rate limit reached', { channel: job.channel, msgKey: job.msgKey, first: decision.first });
  return decision.first ? localise(job, rateLimitedText((decision.resetAtMs - now) / 60_000)) : '';
}

/** Deletes the user's conversation and takes every pending answer out of the queue of things to deliver. */
async function forgetUser(deps: TurnDeps, job: Job): Promise<void> {
  await deps.conversations.clear(job.conversationKey);
  const now = deps.clock.nowMs();
  for (const rec of await deps.messages.listPending(job.channel, job.userId, now, 100)) {
    await deps.messages.dropPending(rec, now);
  }
}

/** Produces and stores the answer of a job that has none yet; `lease.held` once this invocation generates it. */
async function answer(deps: TurnDeps, job: Job, lease: { held: boolean }, opts: TurnOptions): Promise<MessageRecord> {
  const key = keyOf(job);
  let text: string;
  let note: RecordNote = NO_NOTE;
  let remember = async (): Promise<void> => undefined;
  if (!isAllowed(deps.config.allowedUsers, job.userId)) {
    text = NOT_ENROLLED_TEXT;
  } else {
    let limited: string | undefined;
    if (isLlmBound(deps, job)) {
      // A later record of a long batch must not start a call it cannot finish (see OutOfTimeError).
      const left = budgetOf(deps, opts);
      if (opts.mayDefer === true && left !== undefined && left < deps.config.llm.minCallTimeMs) throw new OutOfTimeError(job.msgKey, left);
      limited = await rateLimit(deps, job);
    }
    if (limited === '') {
      // A further message past the limit: dropped quietly (the user was told once this window).
      await deps.messages.finish(key, '', 'done', deps.clock.nowMs(), { kind: 'over_limit' });
      await deps.messages.dropPending(key, deps.clock.nowMs());
      const dropped = await deps.messages.get(key, deps.clock.nowMs());
      if (!dropped) throw new Error('message record vanished');
      return dropped;
    }
    if (limited !== undefined) {
      text = limited;
      note = { kind: 'over_limit' };
    } else {
      await deps.channels[job.channel]?.onJobStart?.(job);
      const prepared = await prepare(deps, job, opts);
      if (prepared.kind === 'fixed') {
        text = prepared.text;
      } else {
        const result = await generate(deps, job, prepared, opts, lease);
        text = result.text;
        note = result.note;
        remember = result.remember;
      }
    }
  }
  // Memory first: once the record says done, a redelivered job skips the turn entirely.
  await remember();
  return deps.messages.finish(key, text, 'done', deps.clock.nowMs(), note);
}

/**
 * Answers one job (idempotently) and delivers it through the channel.
 * Throws only for failures SQS redelivery can fix (DynamoDB/SQS errors, retryable delivery).
 */
export async function runTurn(deps: TurnDeps, job: Job, opts: TurnOptions = {}): Promise<MessageRecord> {
  const key = keyOf(job);
  const now = deps.clock.nowMs();
  let record = await deps.messages.get(key, now);
  if (!record) {
    // The claim expired or was never written (job replayed from the DLQ): claim it now.
    record = (await deps.messages.claim(job, now)).record;
  }

  if (record.status === 'streaming') {
    // SQS redelivered a job whose answer is streaming. A live worker keeps touching the
    // record: leave it alone and let SQS retry later.
    if (deps.clock.nowMs() - record.updatedAtMs < deps.streamLeaseMs) throw new AnswerInProgressError(job.msgKey);
    if (record.deliveredChars > 0) {
      // The previous attempt died after part of the answer was shown: regenerating would
      // show the user a different text, so close what they have seen.
      record = await deps.messages.finish(key, record.answer + INTERRUPTED_NOTE, 'done', deps.clock.nowMs(), { kind: 'interrupted' });
    }
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
    const lease = { held: false };
    try {
      record = await answer(deps, job, lease, opts);
    } catch (err) {
      // A failure must not keep the generation lease: the next receive would wait it out
      // (and fail) instead of answering. Only a lease this invocation took is released.
      if (lease.held) {
        await deps.messages.releaseAnswer(key).catch((releaseErr: unknown) => deps.log.warn('lease release failed', { error: String(releaseErr) }));
      }
      throw err;
    }
  }

  const adapter = deps.channels[job.channel];
  if (adapter && record.pending) {
    try {
      await adapter.deliver(record);
    } catch (err) {
      if (err instanceof DeliveryError) deps.metrics?.count(METRIC.outboundErrors, { channel: job.channel, code: err.code });
      // A refusal no retry can fix (revoked token, number not on WhatsApp…) must not hold
      // the user's FIFO group through five redeliveries: the adapter noted it on the
      // record; log it loudly and let the job succeed. Retryable failures go back to SQS.
      if (!(err instanceof DeliveryError) || err.retryable) throw err;
      deps.log.error('delivery failed for good', { channel: job.channel, msgKey: job.msgKey, code: err.code, error: err.message });
    }
  }
  return record;
}
