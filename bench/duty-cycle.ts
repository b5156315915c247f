/**
 * Emulates a Lambda function's CPU share on this machine by duty-cycling a child process
 * with SIGSTOP/SIGCONT, the way a CFS bandwidth quota throttles a cgroup: in each period the
 * process runs for `period × share` and is stopped for the rest. Lambda allocates CPU in
 * proportion to memory, one full vCPU at 1,769 MB
 * (https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html).
 *
 * Limits: the timer runs in this (unthrottled) process, so the on-time is only as exact as
 * Node's timers (~1 ms); during its on-time the child may use every core it is allowed
 * (pin it to one with `taskset` to stand for one vCPU); and this machine's CPU is not
 * Lambda's Graviton.
 */

/** Memory at which Lambda gives a function one full vCPU. */
export const MB_PER_VCPU = 1769;

/** The share of one vCPU a function of `memoryMb` gets (capped at one vCPU). */
export function cpuShare(memoryMb: number): number {
  if (!Number.isFinite(memoryMb) || memoryMb <= 0) throw new RangeError(`memory must be a positive number of MB, got ${memoryMb}`);
  return Math.min(1, memoryMb / MB_PER_VCPU);
}

/** Run and stop time (ms) in each period for `memoryMb`. */
export function dutyCycle(memoryMb: number, periodMs: number): { onMs: number; offMs: number } {
  if (!Number.isFinite(periodMs) || periodMs <= 0) throw new RangeError(`period must be a positive number of ms, got ${periodMs}`);
  // Multiplied before dividing, so a period of 1,769 ms gives whole milliseconds.
  const onMs = cpuShare(memoryMb) === 1 ? periodMs : (periodMs * memoryMb) / MB_PER_VCPU;
  return { onMs, offMs: periodMs - onMs };
}

/** Sends a signal to a process; false once it has exited. */
export type Signaller = (pid: number, signal: 'SIGSTOP' | 'SIGCONT') => boolean;

const killSignal: Signaller = (pid, signal) => {
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
};

/** A running throttle. */
export interface Throttle {
  /** Lets the process run freely again. */
  stop(): void;
  /** Time (ms) the process was allowed to run so far, and the time since the start. */
  granted(): { runMs: number; elapsedMs: number };
}

/**
 * Throttles process `pid` to the CPU share of `memoryMb`, starting with a run phase (the
 * process was just spawned). Phases are scheduled on absolute times (period k starts at
 * start + k × period), so timer lateness does not accumulate; `granted()` reports the run
 * time actually given. At a full vCPU it does nothing.
 */
export function throttle(pid: number, memoryMb: number, periodMs = 100, signal: Signaller = killSignal, now: () => number = () => performance.now()): Throttle {
  const { onMs, offMs } = dutyCycle(memoryMb, periodMs);
  const start = now();
  let runMs = 0;
  let runningSince: number | undefined = start;
  if (offMs <= 0) return { stop: () => undefined, granted: () => ({ runMs: now() - start, elapsedMs: now() - start }) };
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let period = 0;
  const schedule = (at: number, next: () => void): void => {
    timer = setTimeout(next, Math.max(0, at - now()));
  };
  const pause = (): void => {
    if (stopped) return;
    if (!signal(pid, 'SIGSTOP')) {
      stopped = true;
      return;
    }
    if (runningSince !== undefined) runMs += now() - runningSince;
    runningSince = undefined;
    period += 1;
    schedule(start + period * periodMs, resume);
  };
  const resume = (): void => {
    if (stopped) return;
    if (!signal(pid, 'SIGCONT')) {
      stopped = true;
      return;
    }
    runningSince = now();
    schedule(start + period * periodMs + onMs, pause);
  };
  schedule(start + onMs, pause);
  return {
    stop: () => {
      if (timer !== undefined) clearTimeout(timer);
      if (!stopped) signal(pid, 'SIGCONT');
      stopped = true;
      if (runningSince !== undefined) runMs += now() - runningSince;
      runningSince = undefined;
    },
    granted: () => ({ runMs: runMs + (runningSince === undefined ? 0 : now() - runningSince), elapsedMs: now() - start }),
  };
}
