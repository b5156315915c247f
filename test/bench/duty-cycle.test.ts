/**
 * The cold-start bench's CPU throttle: the run time per period follows Lambda's rule (CPU in
 * proportion to memory, one vCPU at 1,769 MB), and the SIGSTOP/SIGCONT schedule keeps to it
 * on a fake clock, without drifting and without touching a process that has exited.
 */
import { cpuShare, dutyCycle, MB_PER_VCPU, throttle, type Signaller } from '../../bench/duty-cycle';

describe('cpuShare and dutyCycle', () => {
  it('gives the share of one vCPU in proportion to memory', () => {
    expect(cpuShare(MB_PER_VCPU)).toBe(1);
    expect(cpuShare(128)).toBeCloseTo(0.07236, 5);
    expect(cpuShare(512)).toBeCloseTo(0.28943, 5);
  });

  it('caps the share at one vCPU', () => {
    expect(cpuShare(3008)).toBe(1);
    expect(dutyCycle(3008, 100)).toEqual({ onMs: 100, offMs: 0 });
  });

  it('splits a period into run and stop time', () => {
    const { onMs, offMs } = dutyCycle(256, 100);

    expect(onMs).toBeCloseTo(14.4715, 4);
    expect(onMs + offMs).toBeCloseTo(100, 10);
  });

  it('rejects a memory size or period that is not positive', () => {
    expect(() => cpuShare(0)).toThrow(RangeError);
    expect(() => cpuShare(Number.NaN)).toThrow(/memory/);
    expect(() => dutyCycle(128, 0)).toThrow(/period/);
  });
});

describe('throttle', () => {
  beforeEach(() => jest.useFakeTimers({ now: 0 }));
  afterEach(() => jest.useRealTimers());

  function recorder(alive: () => boolean = () => true): { signal: Signaller; log: string[] } {
    const log: string[] = [];
    return {
      log,
      signal: (pid, sig) => {
        if (!alive()) return false;
        log.push(`${Date.now()} ${pid} ${sig}`);
        return true;
      },
    };
  }

  it('stops the process after its share of each period and resumes it at the next period', () => {
    const { signal, log } = recorder();
    // 128 MB over a 1,769 ms period: 128 ms of run time, whole milliseconds on the fake clock.
    const t = throttle(42, 128, MB_PER_VCPU, signal, () => Date.now());

    jest.advanceTimersByTime(2 * MB_PER_VCPU + 200);

    expect(log).toEqual(['128 42 SIGSTOP', '1769 42 SIGCONT', '1897 42 SIGSTOP', '3538 42 SIGCONT', '3666 42 SIGSTOP']);
    expect(t.granted()).toEqual({ runMs: 3 * 128, elapsedMs: 2 * MB_PER_VCPU + 200 });
  });

  it('resumes the process when stopped, and signals nothing more', () => {
    const { signal, log } = recorder();
    const t = throttle(7, 128, MB_PER_VCPU, signal, () => Date.now());
    jest.advanceTimersByTime(500);

    t.stop();
    jest.advanceTimersByTime(10 * MB_PER_VCPU);

    expect(log).toEqual(['128 7 SIGSTOP', '500 7 SIGCONT']);
    expect(t.granted().runMs).toBe(128);
  });

  it('gives up once the process has exited', () => {
    let alive = true;
    const { signal, log } = recorder(() => alive);
    throttle(9, 128, MB_PER_VCPU, signal, () => Date.now());
    jest.advanceTimersByTime(200);
    alive = false;

    jest.advanceTimersByTime(10 * MB_PER_VCPU);

    expect(log).toEqual(['128 9 SIGSTOP']);
    expect(jest.getTimerCount()).toBe(0);
  });

  it('leaves a full vCPU unthrottled', () => {
    const { signal, log } = recorder();
    throttle(3, MB_PER_VCPU, 100, signal, () => Date.now());

    jest.advanceTimersByTime(1000);

    expect(log).toEqual([]);
  });
});
