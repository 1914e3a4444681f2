import type { DesiredState, StateReport } from '@ibex/proto';
import { errorMessage } from '../common/errors.js';
import { failpoint } from '../common/failpoints.js';
import type { Logger } from '../common/log.js';
import { Mutex } from '../common/mutex.js';
import type { Engine } from '../engine/engine.js';
import type { RecoveredChange } from '../engine/journaled-change.js';
import type { SectionResult } from '../engine/section-result.js';
import type { DataDir } from '../journal/data-dir.js';
import { type StoredDesired, readDesired, writeDesired } from '../journal/desired-store.js';
import type { StateStore } from '../journal/state-store.js';

export interface DesiredStateDeps {
  engine: Engine;
  dataDir: DataDir;
  state: StateStore;
  /** Sends a report if connected; the journal keeps it either way. */
  send: (r: StateReport) => void;
  log: Logger;
  healDrift: boolean;
  driftCheckIntervalMs: number;
  /** No controller to acknowledge the report (a job run at the console): a change that must be confirmed is confirmed at once. */
  confirmAtOnce?: boolean;
  /** After the Ack, a new connection to the controller must work too (connection/fresh-connection-probe.ts). */
  freshConnection?: () => Promise<void>;
  now?: () => number;
}

export interface PassResult {
  revision: number;
  sections: SectionResult[];
}

/**
 * Holds the desired state and reconciles the device to it: when a revision arrives, at start,
 * every drift-check interval, and when a state.apply job asks. One pass at a time; passes
 * asked for while one runs are coalesced into one more.
 */
export class DesiredStateManager {
  private desired?: StoredDesired;
  private readonly mutex = new Mutex();
  private applyQueued = false;
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private readonly stopCtl = new AbortController();
  private readonly now: () => number;

  constructor(private readonly deps: DesiredStateDeps) {
    this.now = deps.now ?? Date.now;
    this.desired = readDesired(deps.dataDir.desired);
  }

  get receivedRevision(): number {
    return this.desired?.revision ?? 0;
  }

  /** Reconciles what is already on disk (an earlier run may have died before applying it), then checks for drift periodically. */
  start(): void {
    if (this.desired) this.scheduleApply('start');
    this.timer = setInterval(() => void this.driftCheck(), this.deps.driftCheckIntervalMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.stopCtl.abort();
    clearInterval(this.timer);
    await this.mutex.idle();
  }

  /**
   * At start, before connecting: sections the engine reverted because their change was never
   * confirmed (the agent died or the device rebooted inside the window) are reported `reverted`.
   */
  reportRecovered(recovered: readonly RecoveredChange[]): void {
    const d = this.desired;
    const unconfirmed = recovered.flatMap((r) => (r.section !== undefined && r.unconfirmed ? [{ section: r.section, reason: r.reason }] : []));
    if (!d || !unconfirmed.length) return;
    const results: SectionResult[] = unconfirmed.map((r) => ({ section: r.section, state: 'reverted', error: r.reason, steps: [], observedAtMs: this.now(), unconfirmed: true }));
    for (const r of results) this.deps.log.warn('section not applied', { section: r.section, revision: d.revision, state: r.state, error: r.error });
    this.report(d.revision, results, true);
  }

  /** Sections reverted for want of confirmation in this revision: only a new revision or a state.apply job tries them again. */
  private heldSections(revision: number): Set<string> {
    if (this.deps.state.revision !== revision) return new Set();
    return new Set(this.deps.state.sections.filter((s) => s.unconfirmed && s.state !== 'in_sync').map((s) => s.section));
  }

  private automaticSections(spec: Record<string, unknown>, revision: number): string[] | undefined {
    const held = this.heldSections(revision);
    if (!held.size) return undefined;
    return Object.keys(spec).filter((n) => !held.has(n));
  }

  /** A DesiredState from the controller: journaled before anything acts on it. */
  receive(d: DesiredState): void {
    if (d.revision <= this.receivedRevision) {
      this.deps.log.debug('desired state revision already received', { revision: d.revision, have: this.receivedRevision });
      return;
    }
    const stored: StoredDesired = { revision: d.revision, specJson: d.specJson, receivedAtMs: this.now() };
    writeDesired(this.deps.dataDir.desired, stored);
    failpoint('desired-written');
    this.desired = stored;
    this.deps.log.info('desired state received', { revision: d.revision });
    this.scheduleApply('received');
  }

  /**
   * For state.apply: a pass now (after the one running), returning its results. Cancelled or
   * timed out while it waits for the running pass, it rejects at once and never runs its pass.
   */
  runNow(opts: { sections?: string[]; dryRun: boolean; signal: AbortSignal }): Promise<PassResult> {
    return this.mutex.run(async () => {
      const d = this.desired;
      if (!d) return { revision: 0, sections: [] };
      const spec = this.parseSpec(d);
      if (!spec.ok) return { revision: d.revision, sections: [spec.failure] };
      if (opts.dryRun) return { revision: d.revision, sections: await this.deps.engine.plan(spec.value, opts) };
      return { revision: d.revision, sections: await this.applyPass(d, spec.value, opts) };
    }, opts.signal);
  }

  /**
   * For state.plan: observe and plan, changing nothing; against `spec` when given (a proposed
   * desired state), else the current desired revision. Waits for a running apply, so it never
   * observes a half-applied section (and, like runNow, stops waiting when its job is cancelled).
   */
  planNow(opts: { spec?: Record<string, unknown>; sections?: string[]; signal: AbortSignal }): Promise<PassResult & { proposed: boolean }> {
    return this.mutex.run(async () => {
      const revision = this.receivedRevision;
      if (opts.spec) return { revision, proposed: true, sections: await this.deps.engine.plan(opts.spec, opts) };
      const d = this.desired;
      if (!d) return { revision, proposed: false, sections: [] };
      const spec = this.parseSpec(d);
      if (!spec.ok) return { revision, proposed: false, sections: [spec.failure] };
      return { revision, proposed: false, sections: await this.deps.engine.plan(spec.value, opts) };
    }, opts.signal);
  }

  private scheduleApply(why: string): void {
    if (this.applyQueued || this.stopped) return;
    this.applyQueued = true;
    void this.mutex.run(async () => {
      this.applyQueued = false;
      const d = this.desired;
      if (!d || this.stopped) return;
      this.deps.log.debug('reconciling', { revision: d.revision, why });
      const spec = this.parseSpec(d);
      if (!spec.ok) return void this.report(d.revision, [spec.failure], true);
      await this.applyPass(d, spec.value, { sections: this.automaticSections(spec.value, d.revision) }).catch((err) => this.deps.log.error('reconcile pass failed', { error: errorMessage(err) }));
    });
  }

  private async applyPass(d: StoredDesired, spec: Record<string, unknown>, opts: { sections?: string[]; signal?: AbortSignal }): Promise<SectionResult[]> {
    let results = await this.deps.engine.apply(spec, { ...opts, onApplying: (applying) => this.report(d.revision, applying, false) });
    const sent = this.report(d.revision, results, true);
    this.logResults(d.revision, results);
    const awaiting = results.filter((r) => r.awaitingConfirmationUntilMs !== undefined);
    if (awaiting.length) {
      // The Ack of the report just sent (on this stream, or re-sent after a reconnection), then a
      // brand-new connection, prove the agent still reaches the controller. The pass is held
      // meanwhile: nothing else changes the device.
      const settled = this.deps.confirmAtOnce
        ? await this.deps.engine.confirmations.settle(awaiting, { confirmed: true, detail: 'confirmed at once: a job run at the console has no controller to reach' })
        : await this.deps.engine.confirmations.confirmByAck(awaiting, sent.reportId, this.stopCtl.signal, this.deps.freshConnection);
      results = results.map((r) => settled.get(r.section) ?? r);
      this.report(d.revision, [...settled.values()], true);
      this.logResults(d.revision, [...settled.values()]);
    }
    return results;
  }

  private logResults(revision: number, results: readonly SectionResult[]): void {
    for (const r of results) {
      const fields = { section: r.section, revision, state: r.state, steps: r.steps.length, error: r.error ?? r.detail };
      if (r.state === 'failed' || r.state === 'reverted') this.deps.log.warn('section not applied', fields);
      else this.deps.log.info('section reconciled', fields);
    }
  }

  /**
   * Observes again: a section that was in sync and no longer is has drifted. It is reported
   * DRIFTED and, with healDrift, applied again (which also retries failed sections).
   */
  async driftCheck(): Promise<void> {
    await this.mutex.run(async () => {
      const d = this.desired;
      if (!d || this.stopped) return;
      const spec = this.parseSpec(d);
      if (!spec.ok) return;
      const sections = this.automaticSections(spec.value, d.revision);
      const planned = await this.deps.engine.plan(spec.value, { sections });
      const last = new Map(this.deps.state.revision === d.revision ? this.deps.state.sections.map((s) => [s.section, s.state]) : []);
      const drifted = planned.filter((p) => p.state === 'pending' && last.get(p.section) === 'in_sync').map((p) => ({ ...p, state: 'drifted' as const }));
      this.deps.log.debug('drift check', { revision: d.revision, drifted: drifted.length, outOfSync: planned.filter((p) => p.state === 'pending').length });
      for (const p of drifted) this.deps.log.warn('drift detected', { section: p.section, steps: p.steps.map((s) => s.text).join('; ') });
      if (this.deps.healDrift) {
        if (!planned.some((p) => p.state === 'pending')) return;
        if (drifted.length) this.report(d.revision, drifted, false);
        await this.applyPass(d, spec.value, { sections });
        return;
      }
      if (!drifted.length) return;
      const byName = new Map(drifted.map((p) => [p.section, p]));
      this.report(d.revision, this.deps.state.sections.map((s) => byName.get(s.section) ?? s), true);
    });
  }

  private parseSpec(d: StoredDesired): { ok: true; value: Record<string, unknown> } | { ok: false; failure: SectionResult } {
    let value: unknown;
    try {
      value = JSON.parse(d.specJson);
    } catch (err) {
      value = err;
    }
    if (typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Error)) return { ok: true, value: value as Record<string, unknown> };
    const error = `the desired state of revision ${d.revision} is not a JSON object of sections${value instanceof Error ? ` (${value.message})` : ''}`;
    return { ok: false, failure: { section: 'spec', state: 'failed', error, steps: [], observedAtMs: this.now() } };
  }

  private report(revision: number, sections: SectionResult[], final: boolean): StateReport {
    const r = this.deps.state.report(revision, sections, final);
    failpoint('state-report-journaled');
    this.deps.send(r);
    return r;
  }
}
