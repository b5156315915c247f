/**
 * Channel-neutral types shared by ingress, queue, store and worker.
 */

/** The channels this gateway speaks. */
export type ChannelName = 'wechat' | 'whatsapp' | 'twilio';

/** Injected time, so tests can pin it (design principle 1). */
export interface Clock {
  nowMs(): number;
  sleep(ms: number): Promise<void>;
}

/** The real clock. */
export const systemClock: Clock = {
  nowMs: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms))),
};

/** Structured log sink; Powertools Logger satisfies it. */
export interface Log {
  debug(message: string, extra?: Record<string, unknown>): void;
  info(message: string, extra?: Record<string, unknown>): void;
  warn(message: string, extra?: Record<string, unknown>): void;
  error(message: string, extra?: Record<string, unknown>): void;
}

/** A log that drops everything (tests that do not assert on logs). */
export const silentLog: Log = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

/**
 * What the user sent, normalised by the channel's codec.
 * - `text`: a question (voice with recognition, button replies and menu prompts become text).
 * - `image` / `audio`: media the worker fetches through the channel (`mediaRef` is channel-specific).
 * - `notice`: a fixed reply that never reaches the LLM (unsupported type, welcome).
 * - `forget`: delete the user's conversation and pending answers, no reply (WeChat unsubscribe).
 */
export type TurnInput =
  | { kind: 'text'; text: string }
  | { kind: 'image'; mediaRef: string; caption: string; mimeType: string }
  | { kind: 'audio'; mediaRef: string; mimeType: string }
  | { kind: 'notice'; text: string }
  | { kind: 'forget' };

/** Where and how the answer goes back; one arm per channel. */
export type ReplyTarget =
  | { channel: 'wechat'; accountId: string }
  | { channel: 'whatsapp'; phoneNumberId: string; to: string; messageId: string }
  | {
      channel: 'twilio';
      to: string;
      from: string;
      medium: 'sms' | 'whatsapp' | 'voice';
      callSid: string;
      /**
       * Voice only: Twilio vouched for the caller ID (SHAKEN/STIR attestation A). Absent or
       * false means the number may be spoofed: the call neither shares the number's memory
       * nor changes its contact entry.
       */
      callerVerified?: boolean;
    };

/** One unit of work on the queue: a user message to answer. */
export interface Job {
  v: 1;
  channel: ChannelName;
  /** The user's id on the channel (OpenID, wa_id, phone number). */
  userId: string;
  /** Dedupe key of the inbound message (MsgId, wamid, MessageSid, or an event key). */
  msgKey: string;
  /** Whose memory this turn uses (Twilio voice and SMS share one per phone number). */
  conversationKey: string;
  input: TurnInput;
  reply: ReplyTarget;
  /** When the first delivery of the webhook reached us. */
  arrivedAtMs: number;
  /** Set on a job replayed from the dead letters (`npm run dlq -- replay`): its failure hold starts again here. */
  replayedAtMs?: number;
}
