import { setTimeout as sleep } from 'node:timers/promises';

export interface WaitOptions {
  /** Give up after this long (default 10 s). */
  timeoutMs?: number;
  /** Poll this often (default 25 ms). */
  intervalMs?: number;
}

/**
 * Polls `check` until it returns something other than undefined/false, and returns that.
 * An error thrown by `check` ends the wait at once; on timeout the error names what was
 * awaited, so a failing test says why instead of hanging.
 */
export async function waitFor<T>(what: string, check: () => T | undefined | false | Promise<T | undefined | false>, opts: WaitOptions = {}): Promise<T> {
  // The monotonic clock: a wall-clock step (NTP, a paused VM) must not end the wait early.
  const deadline = performance.now() + (opts.timeoutMs ?? 10_000);
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (performance.now() > deadline) throw new Error(`timed out after ${opts.timeoutMs ?? 10_000} ms waiting for ${what}`);
    await sleep(opts.intervalMs ?? 25);
  }
}
