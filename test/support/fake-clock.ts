/**
 * A clock under the test's control: `sleep` returns at once after moving time forward,
 * running the events scheduled with `at` on the way (in time order), so a policy that
 * polls and waits runs in microseconds and deterministically.
 */
import type { Clock } from '../../lib/types';

export class FakeClock implements Clock {
  private events: { atMs: number; run: () => void | Promise<void> }[] = [];
  /** Total time slept, for asserting on waits. */
  sleptMs = 0;

  constructor(private now: number) {}

  nowMs(): number {
    return this.now;
  }

  async sleep(ms: number): Promise<void> {
    const until = this.now + Math.max(0, ms);
    this.sleptMs += Math.max(0, ms);
    for (;;) {
      this.events.sort((a, b) => a.atMs - b.atMs);
      const next = this.events[0];
      if (!next || next.atMs > until) break;
      this.events.shift();
      this.now = Math.max(this.now, next.atMs);
      await next.run();
    }
    this.now = until;
  }

  /** Runs `run` when time reaches `atMs` (during a sleep). */
  at(atMs: number, run: () => void | Promise<void>): void {
    this.events.push({ atMs, run });
  }
}
