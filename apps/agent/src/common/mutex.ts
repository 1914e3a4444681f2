/** Runs async functions one at a time, in call order. */
export class Mutex {
  private tail: Promise<unknown> = Promise.resolve();

  /**
   * Runs `fn` after everything queued before it. With a `signal`, a caller still waiting for its
   * turn stops waiting when the signal aborts: the promise rejects with the signal's reason at
   * once and `fn` never runs (its turn passes on). Once `fn` has started, the signal is `fn`'s
   * business: the promise settles with `fn`, so nothing it does is left running unobserved.
   */
  run<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    let started = false;
    const p = this.tail.then(() => {
      signal?.throwIfAborted();
      started = true;
      return fn();
    });
    this.tail = p.catch(() => {});
    if (!signal) return p;
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => {
        if (!started) reject(signal.reason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      if (signal.aborted) onAbort();
      p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
    });
  }

  /** Resolves when everything queued so far has run. */
  idle(): Promise<void> {
    return this.tail.then(() => {});
  }
}
