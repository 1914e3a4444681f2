/**
 * At most `max` of the given tasks run at once; the others wait in order. For bursts that would
 * otherwise all ask the database pool for a connection at the same moment (10,000 agents
 * reporting a rollout's results together): waiting here costs nothing, while waiting in the
 * pool makes transactions give up ("unable to start a transaction in the given time").
 */
export class Limiter {
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly max: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    // A finished task hands its slot straight to the next waiter: the count never drops and rises
    // again between them, so no caller can slip in ahead of the queue.
    if (this.running >= this.max) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.running++;
    try {
      return await task();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }

  get queued(): number {
    return this.waiting.length;
  }
}
