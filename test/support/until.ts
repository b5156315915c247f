/**
 * Polling for integration tests, where the worker runs asynchronously.
 */

/**
 * Polls `check` every `intervalMs` (default 25) until it returns true.
 * @param check - the condition, sync or async.
 * @param timeoutMs - how long to keep trying.
 * @param intervalMs - the pause between tries.
 * @throws Error `condition not met in time` when `timeoutMs` passes first.
 */
export async function until(check: () => boolean | Promise<boolean>, timeoutMs: number, intervalMs = 25): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error('condition not met in time');
}
