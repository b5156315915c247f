/**
 * The one outbound send loop every channel uses: resume after the parts already delivered,
 * send the next part, record progress before the next one (a crash must never show a part
 * twice), and on a failure do what the channel's classification says.
 *
 * A channel supplies the parts, how to send one, how to record progress, and how to read
 * its vendor's errors ({@link OutboundChannel}). What a verdict means is decided here, once:
 *
 * - `retry`: record the note (if any) without closing the record, then throw the
 *   retryable {@link DeliveryError}: SQS redelivers and the next attempt resumes at this part.
 * - `fatal`: record the note; with an `error`, the record stays open and the error is thrown
 *   (an operator looks at it); without one, the record is closed and the send stops.
 * - `token`: the vendor refused our credentials: record the note, throw the non-retryable error.
 * - `window_closed`: the conversation window is shut; the channel's own recovery runs (a
 *   template, keeping the answer for later) and the send stops with that outcome.
 *
 * @module
 */
import type { RecordNote } from '../store/notes';
import type { DeliveryError } from './channel';

/** What to do about a failed send (see the module comment for what each verdict does). */
export type SendVerdict =
  | { kind: 'retry'; error: DeliveryError; note?: RecordNote }
  | { kind: 'fatal'; note: RecordNote; error?: DeliveryError }
  | { kind: 'token'; note: RecordNote; error: DeliveryError }
  | { kind: 'window_closed' };

/** One channel's side of the send loop. */
export interface OutboundChannel<Part> {
  /** Part number `index` (0-based) of the answer, or `undefined` when nothing is left to send. */
  part(index: number): Part | undefined;
  /** Sends one part; throws the vendor's error. */
  send(part: Part, index: number): Promise<void>;
  /** Reads a vendor error; `undefined` for an error it does not know (rethrown as is). */
  classify(err: unknown, index: number): SendVerdict | undefined;
  /**
   * Stores progress: `delivered` parts are out; `done` closes the record's delivery. After a
   * successful send `note` is absent. A channel whose record can be taken over by another
   * path (WeChat's passive replies) returns no further {@link part} once it is.
   */
  record(delivered: number, done: boolean, note?: RecordNote): Promise<void>;
}

/** How a send loop ended, with the number of parts out. */
export interface OutboundResult {
  outcome: 'delivered' | 'window_closed' | 'stopped';
  delivered: number;
}

/** Sends the parts from `from` on; see the module comment for the failure rules. */
export async function sendOutbound<Part>(channel: OutboundChannel<Part>, from: number): Promise<OutboundResult> {
  let delivered = from;
  for (let part = channel.part(delivered); part !== undefined; part = channel.part(delivered)) {
    try {
      await channel.send(part, delivered);
    } catch (err) {
      const verdict = channel.classify(err, delivered);
      if (verdict === undefined) throw err;
      switch (verdict.kind) {
        case 'window_closed':
          return { outcome: 'window_closed', delivered };
        case 'retry':
          if (verdict.note !== undefined) await channel.record(delivered, false, verdict.note);
          throw verdict.error;
        case 'token':
          await channel.record(delivered, false, verdict.note);
          throw verdict.error;
        case 'fatal':
          await channel.record(delivered, verdict.error === undefined, verdict.note);
          if (verdict.error !== undefined) throw verdict.error;
          return { outcome: 'stopped', delivered };
      }
    }
    delivered++;
    // Persist the resume point before the next part: a crash now must not resend this one.
    await channel.record(delivered, channel.part(delivered) === undefined);
  }
  return { outcome: 'delivered', delivered };
}
