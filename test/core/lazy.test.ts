import { lazyHandler } from '../../lib/core/lazy';

describe('lazyHandler', () => {
  it('initialises once for concurrent and later invocations', async () => {
    let inits = 0;
    const handler = lazyHandler(async () => {
      inits += 1;
      await new Promise((resolve) => setTimeout(resolve, 5));
      return async (event: number) => event * 2;
    });

    const results = await Promise.all([handler(1), handler(2), handler(3)]);

    expect(results).toEqual([2, 4, 6]);
    expect(await handler(4)).toBe(8);
    expect(inits).toBe(1);
  });

  it('forgets a failed initialisation so the next invocation tries again', async () => {
    let attempt = 0;
    const handler = lazyHandler(async () => {
      attempt += 1;
      if (attempt === 1) throw new Error('SSM unreachable');
      return async (event: string) => `ok ${event}`;
    });

    await expect(handler('a')).rejects.toThrow('SSM unreachable');
    await expect(handler('b')).resolves.toBe('ok b');
    expect(attempt).toBe(2);
  });
});
