/**
 * Catching what a promise rejects with, for assertions on the error itself.
 */

/**
 * What `promise` rejects with.
 * @throws Error `expected a rejection` when it resolves instead.
 */
export async function caught(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}
