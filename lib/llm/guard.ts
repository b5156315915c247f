/**
 * Time limits for one LLM call, shared by every HTTP backend (openai, dify).
 *
 * Two limits, both enforced by aborting the call's `AbortSignal`:
 * - **idle**: while a request is in flight (from the moment it is sent until its response body
 *   ends), no byte for `idleMs` cuts it. This covers the wait for headers and a stream that goes
 *   silent mid-answer — the openai SDK's own `timeout` stops counting once headers arrive, and a
 *   plain `fetch` has none. Keep-alive bytes (Dify's `event: ping`) count as bytes: a server that
 *   is still working is not idle; the total budget bounds it instead. Our own pauses (retry
 *   backoff, running a tool) are not idle time: nothing is in flight then.
 * - **budget**: the whole call (retries, tool rounds, streaming) ends `budgetMs` after it
 *   started, whatever the server does. The worker derives it from the Lambda's remaining time.
 *
 * The guard only aborts; the backend notices (its fetch or body read rejects, or the SDK ends the
 * iteration), asks {@link CallGuard.cutReason} and ends the stream with a `cut` event.
 */

/** Why a call was cut. */
export type CutReason = 'idle' | 'deadline';

/** The guard of one LLM call. Create with {@link createCallGuard}; always {@link CallGuard.dispose} it. */
export interface CallGuard {
  /** Aborts when the caller's signal aborts or a limit is reached. Hand it to every request. */
  readonly signal: AbortSignal;
  /** A `fetch` that links {@link signal}, runs the idle timer while the request is in flight, and counts body bytes as activity. */
  readonly fetch: typeof fetch;
  /** Why the guard cut the call, or undefined (not cut, or aborted by the caller). */
  cutReason(): CutReason | undefined;
  /** Milliseconds left of the budget (Infinity without one). */
  remainingMs(): number;
  /** Clears the timers. */
  dispose(): void;
}

/** Options of {@link createCallGuard}. */
export interface CallGuardOptions {
  /** The underlying fetch. */
  fetch: typeof fetch;
  /** No byte for this long while a request is in flight cuts the call. */
  idleMs: number;
  /** The whole call's budget from now, or undefined for none. */
  budgetMs: number | undefined;
  /** The caller's signal (its abort is not a cut). */
  signal: AbortSignal | undefined;
}

/** Starts guarding one call. */
export function createCallGuard(opts: CallGuardOptions): CallGuard {
  const controller = new AbortController();
  const startedMs = Date.now();
  let reason: CutReason | undefined;
  let inFlight = 0;
  let idleTimer: ReturnType<typeof setTimeout> | undefined;
  let deadlineTimer: ReturnType<typeof setTimeout> | undefined;
  let disposed = false;

  const cut = (why: CutReason): void => {
    if (controller.signal.aborted) return;
    reason = why;
    clearTimers();
    // A TimeoutError DOMException, like AbortSignal.timeout(): fetch and body reads reject with it.
    const message = why === 'idle' ? `the LLM sent nothing for ${opts.idleMs} ms` : `the LLM call ran past its ${opts.budgetMs ?? 0} ms budget`;
    controller.abort(new DOMException(message, 'TimeoutError'));
  };

  function clearTimers(): void {
    if (idleTimer !== undefined) clearTimeout(idleTimer);
    if (deadlineTimer !== undefined) clearTimeout(deadlineTimer);
    idleTimer = undefined;
    deadlineTimer = undefined;
  }

  /** (Re)arms the idle timer while something is in flight. */
  const touch = (): void => {
    if (idleTimer !== undefined) clearTimeout(idleTimer);
    idleTimer = undefined;
    if (inFlight > 0 && !disposed && !controller.signal.aborted) {
      idleTimer = setTimeout(() => cut('idle'), opts.idleMs);
      idleTimer.unref();
    }
  };

  const settle = (): void => {
    inFlight = Math.max(0, inFlight - 1);
    touch();
  };

  if (opts.signal) {
    const caller = opts.signal;
    if (caller.aborted) controller.abort(caller.reason);
    else caller.addEventListener('abort', () => controller.abort(caller.reason), { once: true });
  }
  if (opts.budgetMs !== undefined) {
    if (opts.budgetMs <= 0) cut('deadline');
    else {
      deadlineTimer = setTimeout(() => cut('deadline'), opts.budgetMs);
      deadlineTimer.unref();
    }
  }

  const guardedFetch: typeof fetch = async (input, init) => {
    const signal = init?.signal ? AbortSignal.any([init.signal, controller.signal]) : controller.signal;
    inFlight++;
    touch();
    let response: Response;
    try {
      response = await opts.fetch(input, { ...init, signal });
    } catch (error) {
      settle();
      throw error;
    }
    if (!response.body) {
      settle();
      return response;
    }
    touch();
    const reader = response.body.getReader();
    let open = true;
    const finish = (): void => {
      if (!open) return;
      open = false;
      settle();
    };
    const body = new ReadableStream<Uint8Array>({
      async pull(stream) {
        try {
          const result = await reader.read();
          if (result.done) {
            finish();
            stream.close();
            return;
          }
          // fetch bodies are byte streams (Node's types say `any`).
          const chunk: unknown = result.value;
          if (!(chunk instanceof Uint8Array)) throw new TypeError('response body chunk is not bytes');
          touch();
          stream.enqueue(chunk);
        } catch (error) {
          finish();
          stream.error(error);
        }
      },
      async cancel(why) {
        finish();
        await reader.cancel(why);
      },
    });
    return new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers });
  };

  return {
    signal: controller.signal,
    fetch: guardedFetch,
    cutReason: () => reason,
    remainingMs: () => (opts.budgetMs === undefined ? Infinity : Math.max(0, startedMs + opts.budgetMs - Date.now())),
    dispose: () => {
      disposed = true;
      clearTimers();
    },
  };
}
