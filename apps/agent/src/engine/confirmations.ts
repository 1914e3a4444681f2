import { errorMessage } from '../common/errors.js';
import { failpoint } from '../common/failpoints.js';
import type { Logger } from '../common/log.js';
import type { SectionResult, StepSummary } from './section-result.js';
import type { Intent, SectionIntents } from './section-intents.js';

export interface ConfirmationsDeps {
  intents: SectionIntents;
  /** Restores a section from the backup of `intent`; false when no capability can (nothing was done). */
  revert(intent: Intent): Promise<boolean>;
  log: Logger;
  now: () => number;
}

type Outcome = 'confirmed' | 'timeout' | 'stopped';

/** Between two fresh-connection attempts while a change awaits confirmation. */
const PROBE_RETRY_MS = 1000;

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/**
 * Changes that can cut the device off (Capability.confirmation), from the moment they are
 * applied and verified until they are final or undone. This object owns all of it:
 * - `hold`: the section's intent (and backup) stays on disk, flagged "awaiting confirmation
 *   until T";
 * - `confirmByAck`: under `ibex-agent run`, the wait for the controller to acknowledge the state
 *   report sent after the change (`acked` is called with every Ack id), then for a brand-new
 *   connection to it to work (name resolved, TCP and TLS handshake: `freshConnection`), which
 *   proves the device still reaches it, until the earliest deadline or the agent stopping;
 * - `settle`: confirmed, the intents go and the sections are in sync; not confirmed, every held
 *   change is reverted (nobody can tell which one cut the device off).
 * `ibex-agent apply` finds its own proof (an operator's "yes") and calls `settle`. An agent that
 * dies while a change is held finds the flagged intent at start: recovery reverts it and reports
 * it `unconfirmed` (Engine.recover).
 */
export class Confirmations {
  private waiter?: { ids: Set<string>; resolve: () => void };

  constructor(private readonly deps: ConfirmationsDeps) {}

  /** Flags an applied, verified change as awaiting confirmation; returns its deadline. */
  hold(intent: Intent, timeoutMs: number): number {
    const untilMs = this.deps.now() + timeoutMs;
    this.deps.intents.journal(intent.section).write({ ...intent, startedAtMs: this.deps.now(), awaitingConfirmationUntilMs: untilMs });
    failpoint('awaiting-confirmation');
    return untilMs;
  }

  /** An Ack from the controller. */
  acked(id: string): void {
    if (this.waiter?.ids.has(id)) this.waiter.resolve();
  }

  /**
   * Waits (the caller holds its pass, so nothing else changes the device meanwhile) until the
   * controller acknowledges `reportId`, the earliest deadline of `awaiting` passes or `stop`
   * aborts, then settles them all.
   */
  async confirmByAck(awaiting: readonly SectionResult[], reportId: string, stop: AbortSignal, freshConnection?: () => Promise<void>): Promise<Map<string, SectionResult>> {
    const untilMs = Math.min(...awaiting.map((r) => r.awaitingConfirmationUntilMs!));
    this.deps.log.info('awaiting confirmation: the controller must acknowledge the report sent after the change', { sections: awaiting.map((r) => r.section).join(', '), untilMs, reportId });
    let outcome = await new Promise<Outcome>((resolve) => {
      const timer = setTimeout(() => done('timeout'), Math.max(0, untilMs - this.deps.now()));
      const onStop = () => done('stopped');
      const done = (o: Outcome) => {
        clearTimeout(timer);
        stop.removeEventListener('abort', onStop);
        this.waiter = undefined;
        resolve(o);
      };
      if (stop.aborted) return done('stopped');
      stop.addEventListener('abort', onStop, { once: true });
      this.waiter = { ids: new Set([reportId]), resolve: () => done('confirmed') };
    });
    // The Ack came over the stream that was open before the change; only a new connection proves
    // the device can still reach the controller after a restart or a reconnection.
    let probeError: string | undefined;
    if (outcome === 'confirmed' && freshConnection) ({ outcome, error: probeError } = await this.probeUntil(freshConnection, untilMs, stop));
    if (outcome === 'confirmed') return this.settle(awaiting, { confirmed: true });
    const seconds = Math.round((untilMs - (awaiting[0]!.observedAtMs || untilMs)) / 1000);
    const reason =
      outcome === 'stopped'
        ? 'not confirmed: the agent was stopped while the change awaited confirmation'
        : probeError !== undefined
          ? `not confirmed: the controller acknowledged the report over the stream opened before the change, but a new connection to it failed until the deadline (${seconds} s): ${probeError}`
          : `not confirmed: the controller was not reachable within ${seconds} s after the change`;
    return this.settle(awaiting, { confirmed: false, reason });
  }

  /** Runs the fresh-connection probe until it succeeds, the deadline passes or the agent stops. */
  private async probeUntil(probe: () => Promise<void>, untilMs: number, stop: AbortSignal): Promise<{ outcome: Outcome; error?: string }> {
    let error: string | undefined;
    for (;;) {
      if (stop.aborted) return { outcome: 'stopped', error };
      try {
        await probe();
        this.deps.log.info('a new connection to the controller works: the change is confirmed');
        return { outcome: 'confirmed' };
      } catch (err) {
        error = errorMessage(err);
        this.deps.log.warn('the controller acknowledged over the open stream, but a new connection failed; trying again until the deadline', { error });
      }
      const left = untilMs - this.deps.now();
      if (left <= 0) return { outcome: 'timeout', error };
      await abortableSleep(Math.min(PROBE_RETRY_MS, left), stop);
    }
  }

  /**
   * Makes the held changes final (`detail` goes into their results) or reverts them all with
   * `reason`. Returns the settled result per section (a failed revert is `failed`; the next start
   * retries it).
   */
  async settle(awaiting: readonly SectionResult[], how: { confirmed: true; detail?: string } | { confirmed: false; reason: string }): Promise<Map<string, SectionResult>> {
    const settled = new Map<string, SectionResult>();
    for (const r of awaiting) {
      if (how.confirmed) {
        this.confirm(r.section);
        settled.set(r.section, { ...r, state: 'in_sync', detail: how.detail, awaitingConfirmationUntilMs: undefined, observedAtMs: this.deps.now() });
      } else {
        settled.set(r.section, { ...(await this.revert(r.section, how.reason)), steps: r.steps });
      }
    }
    return settled;
  }

  /** The change is final: its intent and backup go. */
  private confirm(section: string): void {
    const journal = this.deps.intents.journal(section);
    if (journal.read()?.awaitingConfirmationUntilMs === undefined) return;
    journal.clear();
    this.deps.log.info('change confirmed', { section });
  }

  /** Restores the backup. The section's result: `reverted`, or `failed` when the revert failed. */
  private async revert(section: string, reason: string): Promise<SectionResult> {
    const journal = this.deps.intents.journal(section);
    const i = journal.read();
    const base = { section, steps: [] as StepSummary[], observedAtMs: this.deps.now(), unconfirmed: true };
    const noBackup = { ...base, state: 'failed' as const, error: `${reason}; but no backup was found to revert` };
    if (!i) return noBackup;
    this.deps.log.warn('change not confirmed, reverting', { section, reason });
    try {
      if (!(await this.deps.revert(i))) return noBackup;
    } catch (err) {
      return { ...base, state: 'failed', error: `${reason}; reverting failed, so the change is kept on disk and its revert is retried at the next start: ${errorMessage(err)}` };
    }
    journal.clear();
    return { ...base, state: 'reverted', error: `${reason}; the previous state was restored` };
  }
}
