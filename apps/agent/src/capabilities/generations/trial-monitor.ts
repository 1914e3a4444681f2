import { errorMessage } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import type { SystemAdapter } from '../../system/system-adapter.js';
import type { GenerationsRoot } from './generations-root.js';
import { rollback } from './rollback.js';
import { countBoot, markGood } from './trial-state.js';

export interface TrialOutcome {
  id: string;
  outcome: 'good' | 'rolled-back';
  reason: string;
}

/**
 * Commits or rejects a trial generation. It passes when the agent reaches the controller after
 * the switch (a Welcome or an acknowledgement; after a reboot into it, the first connection)
 * within the deadline and every configured check exits 0: then it is `good` and last-known-good.
 * A failed check, a missed deadline or too many boots switch back to where the trial came from,
 * mark it `bad` and report `rolled-back` with the reason. The state lives on disk, so an agent
 * restart (or a reboot) carries on where it was.
 */
export class TrialMonitor {
  private timer?: NodeJS.Timeout;
  private busy?: Promise<void>;
  private stopped = false;
  /** Aborted by stop(): kills a running check and makes a queued verdict a no-op. */
  private readonly abort = new AbortController();
  readonly outcomes: TrialOutcome[] = [];

  constructor(
    private readonly g: GenerationsRoot,
    private readonly deps: { sys: SystemAdapter; log: Logger; onChanged?: (o: TrialOutcome) => void; now?: () => number },
  ) {}

  private now(): number {
    return (this.deps.now ?? Date.now)();
  }

  /**
   * At agent start, after recovery (generations-journal.ts: an interrupted switch is finished or
   * undone first): counts this boot of a trial generation, arms its deadline.
   */
  async start(): Promise<void> {
    if (!this.g.config()) return;
    const reason = await countBoot(this.g);
    if (reason) await this.fail(reason);
    this.arm();
  }

  /**
   * Stops judging: the deadline timer is cleared and a running check is killed (its result is
   * ignored, no verdict is recorded after this call). The trial stays pending on disk, so the
   * next start re-arms it and checks again. Aborts at once; the promise resolves when what was
   * running has let go (a switch back already under way is finished, not cut short).
   */
  stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.abort.abort(new Error('the agent is stopping'));
    return (this.busy ?? Promise.resolve()).then(() => {});
  }

  /** (Re)schedules the deadline of the current trial, if there is one (call after a switch). */
  arm(): void {
    clearTimeout(this.timer);
    if (this.stopped) return;
    const t = this.g.config() ? this.g.store.readState().trial : null;
    // A trial waiting for its boot has no deadline yet: it starts at that boot.
    if (!t || t.awaitingBoot) return;
    // setTimeout holds at most ~24.8 days; a longer deadline is looked at again then.
    const ms = Math.min(Math.max(0, t.deadlineAtMs - this.now()), 2 ** 31 - 1);
    this.timer = setTimeout(() => void this.serial(() => this.expire()), ms);
    this.timer.unref();
  }

  /** The controller was reached (Welcome, acknowledgement): run the checks of a pending trial. */
  controllerReached(): Promise<void> {
    return this.serial(() => this.check());
  }

  private serial(fn: () => Promise<void>): Promise<void> {
    const run = (this.busy ?? Promise.resolve()).then(() => (this.stopped ? undefined : fn())).catch((err: unknown) => this.deps.log.error('generations trial handling failed', { error: errorMessage(err) }));
    this.busy = run;
    return run;
  }

  private async check(): Promise<void> {
    const cfg = this.g.config();
    const t = cfg ? this.g.store.readState().trial : null;
    // Before the reboot into it the running system is still the old root: nothing to judge yet.
    if (!cfg || !t || t.awaitingBoot) return;
    if (this.now() > t.deadlineAtMs) return this.expire();
    const signal = this.abort.signal;
    for (const argv of cfg.health.checks) {
      // SIGKILL on stop or timeout: a check only reads, and the agent must not wait on one that ignores SIGTERM.
      const r = await this.deps.sys.exec(argv as [string, ...string[]], { timeoutMs: 120_000, signal, killSignal: 'SIGKILL' }).catch((err: unknown) => ({ code: null, signal: null, stdout: '', stderr: errorMessage(err) }));
      // Killed by stop(): no verdict, the trial stays pending for the next start.
      if (signal.aborted) return;
      if (r.code !== 0) {
        const tail = (r.stderr || r.stdout).trim().split('\n').slice(-3).join(' | ');
        return this.fail(`health check ${argv.join(' ')} failed (${r.code === null ? 'did not run or was killed' : `exit ${r.code}`})${tail ? `: ${tail}` : ''}`);
      }
    }
    // markGood looks at the signal again under the generations lock: a stop() while it waited records nothing.
    if (!(await markGood(this.g, t.id, signal))) return;
    clearTimeout(this.timer);
    this.report({ id: t.id, outcome: 'good', reason: `reached the controller${cfg.health.checks.length ? ` and passed ${cfg.health.checks.length} check(s)` : ''}` });
  }

  private async expire(): Promise<void> {
    const cfg = this.g.config();
    const t = cfg ? this.g.store.readState().trial : null;
    if (!cfg || !t || t.awaitingBoot) return;
    if (this.now() < t.deadlineAtMs) return this.arm();
    await this.fail(`generation ${t.id} did not reach the controller within ${cfg.health.deadlineSec} s of its switch or boot`);
  }

  private async fail(reason: string): Promise<void> {
    const t = this.g.store.readState().trial;
    if (!t) return;
    this.deps.log.error('generations: trial failed, rolling back', { generation: t.id, to: t.previous, reason });
    try {
      await rollback(this.g, { to: t.previous, reason, markFromBad: true, signal: this.abort.signal });
    } catch (err) {
      if (this.abort.signal.aborted) return;
      // Not a tight loop on a volume that refuses: look again in a minute.
      this.deps.log.error('generations: switching back failed; retrying in 60 s', { generation: t.id, error: errorMessage(err) });
      clearTimeout(this.timer);
      if (!this.stopped) (this.timer = setTimeout(() => void this.serial(() => this.fail(reason)), 60_000)).unref();
      return;
    }
    this.report({ id: t.id, outcome: 'rolled-back', reason });
    this.arm();
  }

  private report(o: TrialOutcome): void {
    this.outcomes.push(o);
    this.deps.log[o.outcome === 'good' ? 'info' : 'error'](`generations: ${o.outcome}`, { generation: o.id, reason: o.reason });
    this.deps.onChanged?.(o);
  }
}
