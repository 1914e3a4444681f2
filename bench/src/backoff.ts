/**
 * Reconnect delays as the real agent computes them (apps/agent/src/common/backoff.ts, base 1 s,
 * cap 60 s): exponential with full jitter, reset once a stream was welcomed. Mirrored here, not
 * imported, so the harness does not depend on the agent's build.
 */
export class Backoff {
  private failures = 0;
  constructor(
    private readonly baseMs = 1000,
    private readonly capMs = 60_000,
    private readonly random: () => number = Math.random,
  ) {}

  /** Delay before the next attempt: uniform in [0, min(cap, base * 2^failures)), or in [0, windowMs) when wider (the Welcome's reconnect window). */
  next(windowMs = 0): number {
    const ceiling = Math.max(windowMs, Math.min(this.capMs, this.baseMs * 2 ** Math.min(this.failures, 30)));
    this.failures++;
    return Math.floor(this.random() * ceiling);
  }

  reset(): void {
    this.failures = 0;
  }
}
