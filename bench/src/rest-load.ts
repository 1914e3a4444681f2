import { Agent, request } from 'node:http';
import { type Distribution, distribution } from './stats.js';

export interface RestLoadResult {
  /** Requests per second asked for, and the rate at which they were actually sent. */
  rate: number;
  sentPerS: number;
  sent: number;
  /** Answered with 200. */
  ok: number;
  /** Answered otherwise, or failed; the first few reasons. */
  errors: number;
  firstErrors: string[];
  /** Latency from each request's *scheduled* send time to its last response byte, ms. */
  latency: Distribution;
  seconds: number;
}

/**
 * Request i is due at start + i / rate. Every tick sends what is due by now; a late tick sends
 * the backlog at once, and each request's latency is measured from its due time, not from when
 * it went out, so a slow server cannot hide its queueing by slowing the sender down
 * (coordinated omission). Pure.
 */
export function dueCount(startMs: number, nowMs: number, rate: number): number {
  return nowMs < startMs ? 0 : Math.floor(((nowMs - startMs) * rate) / 1000) + 1;
}

export function scheduledAt(startMs: number, i: number, rate: number): number {
  return startMs + (i * 1000) / rate;
}

/**
 * GET `url` at a fixed `rate` until stopped, over keep-alive connections (at most `maxSockets`;
 * requests beyond that wait in the agent's queue, and that wait counts in their latency).
 */
export class FixedRateLoad {
  private readonly latencies: number[] = [];
  private readonly firstErrors: string[] = [];
  private sent = 0;
  private ok = 0;
  private errors = 0;
  private timer?: NodeJS.Timeout;
  private startMs = 0;
  private stopMs = 0;
  private inFlight = 0;
  private readonly agent: Agent;

  constructor(
    private readonly url: URL,
    private readonly headers: Record<string, string>,
    private readonly rate: number,
    maxSockets = 64,
  ) {
    this.agent = new Agent({ keepAlive: true, maxSockets });
  }

  start(): void {
    this.startMs = performance.now();
    const tick = () => {
      const due = dueCount(this.startMs, performance.now(), this.rate);
      while (this.sent < due) this.send(scheduledAt(this.startMs, this.sent++, this.rate));
      this.timer = setTimeout(tick, 2);
    };
    tick();
  }

  /** Stops sending; waits (at most `graceMs`) for the answers in flight. */
  async stop(graceMs = 10_000): Promise<RestLoadResult> {
    clearTimeout(this.timer);
    this.stopMs = performance.now();
    const until = Date.now() + graceMs;
    while (this.inFlight > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    this.agent.destroy();
    const seconds = (this.stopMs - this.startMs) / 1000;
    return {
      rate: this.rate,
      sentPerS: seconds > 0 ? this.sent / seconds : 0,
      sent: this.sent,
      ok: this.ok,
      errors: this.errors + this.inFlight,
      firstErrors: this.inFlight ? [...this.firstErrors, `${this.inFlight} requests still unanswered ${graceMs} ms after the load stopped`] : this.firstErrors,
      latency: distribution(this.latencies),
      seconds,
    };
  }

  private send(dueAt: number): void {
    this.inFlight++;
    let done = false;
    const finish = (error?: string) => {
      if (done) return;
      done = true;
      this.inFlight--;
      if (error === undefined) {
        this.ok++;
        this.latencies.push(performance.now() - dueAt);
        return;
      }
      this.errors++;
      if (this.firstErrors.length < 5) this.firstErrors.push(error);
    };
    const req = request(this.url, { agent: this.agent, headers: this.headers, timeout: 30_000 }, (res) => {
      res.on('data', () => {});
      res.on('end', () => finish(res.statusCode === 200 ? undefined : `HTTP ${res.statusCode}`));
      res.on('error', (err) => finish(err.message));
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 30 s')));
    req.on('error', (err) => finish(err.message));
    req.end();
  }
}
