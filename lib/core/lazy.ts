/**
 * A Lambda handler whose dependencies are built asynchronously once per cold start (the
 * secrets come from SSM first). esbuild emits CommonJS, which has no top-level await, so the
 * entry exports this instead: the first invocation starts `init`, every later one awaits the
 * same promise. A failed `init` is forgotten, so the next invocation tries again; until then
 * each invocation fails with its error (a configuration error names the setting).
 */
export function lazyHandler<A extends unknown[], R>(init: () => Promise<(...args: A) => Promise<R>>): (...args: A) => Promise<R> {
  let ready: Promise<(...args: A) => Promise<R>> | undefined;
  return async (...args) => {
    if (ready === undefined) {
      const pending = init();
      ready = pending;
      pending.catch(() => {
        if (ready === pending) ready = undefined;
      });
    }
    const handle = await ready;
    return handle(...args);
  };
}
