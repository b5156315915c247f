/**
 * What the worker needs from a channel. Each channel implements this in
 * lib/channels/<name>/ and the worker stays channel-neutral.
 */
import type { MessageRecord, MessageStore } from '../store/messages';
import type { UserStateStore } from '../store/user-state';
import type { Clock, Job, Log } from '../types';

/** Media fetched from the channel for an image or audio input. */
export interface Media {
  bytes: Uint8Array;
  mimeType: string;
  /** File name with an extension the transcription API accepts. */
  filename: string;
}

/** A delivery failure; `retryable` failures are retried through SQS redelivery. */
export class DeliveryError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly retryable: boolean,
  ) {
    super(message);
    this.name = 'DeliveryError';
  }
}

/** The worker's view of a channel. */
export interface ChannelAdapter {
  /** Best-effort start-of-work signal (typing indicator, read receipt). Must not throw. */
  onJobStart?(job: Job): Promise<void>;
  /** Downloads media referenced by an `image` / `audio` input, converted to a format the model takes. */
  fetchMedia?(job: Job, mediaRef: string, mimeType: string): Promise<Media>;
  /**
   * Whether anyone can read an answer while it streams (WeChat: a held passive delivery or a
   * "1" shows the part generated so far). Only then does the worker write the growing answer
   * to the table; other channels read it once it is finished, and every progress write
   * rewrites the whole item (a write unit per KB, plus the pending index's copy).
   */
  showsPartialAnswer?: boolean;
  /** Extra instruction for this job's system prompt (e.g. "answer briefly" for voice). */
  systemPromptSuffix?(job: Job): string;
  /**
   * Delivers a finished answer (outbound channels), resuming after `record.deliveredParts`.
   * Channels whose answer travels in the webhook response (WeChat passive) do nothing here.
   * Throws {@link DeliveryError} with `retryable` for a failure SQS redelivery can fix.
   */
  deliver(record: MessageRecord): Promise<void>;
}

/** Adapters by channel name; a disabled channel has none. */
export type ChannelAdapters = Partial<Record<Job['channel'], ChannelAdapter>>;

/** What every channel adapter is built with (see functions/compose.ts); a channel's own storage is injected separately. */
export interface AdapterDeps {
  messages: MessageStore;
  users: UserStateStore;
  clock: Clock;
  log: Log;
  fetch: typeof fetch;
}
