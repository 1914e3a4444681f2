/**
 * Reconnect delays: exponential with full jitter (AWS architecture blog), so a controller
 * restart does not get every device back in the same second (TLS handshakes cost ~5 ms each).
 */
export interface BackoffOptions {
  baseMs: number;
  capMs: number;
  random?: () => number;
}

export class Backoff {
  private failures = 0;
  constructor(private readonly opts: BackoffOptions) {}

  /**
   * Delay before the next attempt: uniform in [0, min(cap, base * 2^failures)), or in
   * [0, windowMs) when that is wider (the controller's reconnect window, after a Welcome).
   */
  next(windowMs = 0): number {
    const ceiling = Math.max(windowMs, Math.min(this.opts.capMs, this.opts.baseMs * 2 ** Math.min(this.failures, 30)));
    this.failures++;
    return Math.floor((this.opts.random ?? Math.random)() * ceiling);
  }

  /** The longest delay, jittered only upwards of half of it (used while the credential is refused). */
  longest(): number {
    this.failures++;
    return Math.floor(this.opts.capMs * (0.5 + 0.5 * (this.opts.random ?? Math.random)()));
  }

  reset(): void {
    this.failures = 0;
  }

  get attempts(): number {
    return this.failures;
  }
}
