/**
 * Waits for `work` at most `ms`; then runs `force` (e.g. drop the connection) and returns.
 * Shutdown must never hang on a dependency that is down: a BullMQ close or an ioredis quit
 * waits for a Redis that may never come back.
 */
export async function within(work: Promise<unknown>, ms: number, force: () => unknown): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), ms)));
  try {
    const r = await Promise.race([work.then(() => 'done' as const), timedOut]);
    if (r === 'timeout') {
      // Forcing can itself wait on the dead connection: give it a moment, never more.
      const forced = Promise.resolve()
        .then(force)
        .catch(() => {});
      await Promise.race([forced, new Promise((resolve) => setTimeout(resolve, 1000).unref())]);
    }
  } finally {
    clearTimeout(timer);
  }
}
