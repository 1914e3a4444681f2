import { describeIssues, fieldIssues, sectionNames } from '@ibex/spec';
import { errorMessage } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import type { DataDir } from '../journal/data-dir.js';
import type { SystemAdapter } from '../system/system-adapter.js';
import type { AnyCapability, CapabilityContext, CapabilityRegistry, Step } from './capability.js';
import { Confirmations } from './confirmations.js';
import { ChangeFailed, type Recoverable, type RecoveredChange, runJournaled } from './journaled-change.js';
import { type Intent, SectionIntents } from './section-intents.js';
import type { SectionResult, StepSummary } from './section-result.js';

export interface EngineDeps {
  registry: CapabilityRegistry;
  sys: SystemAdapter;
  log: Logger;
  root: string;
  dataDir: DataDir;
  agentVersion: string;
  now?: () => number;
}

/** A section after observe + plan: either settled (in sync, unsupported, invalid) or with steps to run. */
interface PlannedSection {
  result: SectionResult;
  cap?: AnyCapability;
  spec?: unknown;
  steps: Step[];
}

export interface PassOptions {
  /** Only these sections (default: every section of the spec). */
  sections?: readonly string[];
  signal?: AbortSignal;
}

export interface ApplyOptions extends PassOptions {
  /** Called once with the sections about to change, before the first step runs. */
  onApplying?: (sections: SectionResult[]) => void;
}

/** Sections in a fixed order: the ones the spec library knows, in its order, then the rest by name. */
export function orderSections(names: readonly string[]): string[] {
  const known = sectionNames.filter((n) => names.includes(n));
  const other = names.filter((n) => !(sectionNames as readonly string[]).includes(n)).sort();
  return [...known, ...other];
}

/**
 * The reconcile engine: for each section, observe -> plan -> (backup, then the steps as a
 * journaled change: intent, execute, verify by planning again, revert on failure). Applying a
 * spec that already holds runs no step. A change that must be confirmed is held by
 * `confirmations` after it verified.
 */
export class Engine implements Recoverable {
  readonly name = 'sections';
  readonly confirmations: Confirmations;
  private readonly now: () => number;
  private readonly intents: SectionIntents;

  constructor(private readonly deps: EngineDeps) {
    this.now = deps.now ?? Date.now;
    this.intents = new SectionIntents(deps.dataDir);
    this.confirmations = new Confirmations({ intents: this.intents, revert: (intent) => this.revert(intent), log: deps.log, now: this.now });
  }

  /** Observe and plan only: changes nothing. Sections with steps come back `pending`. */
  async plan(spec: Readonly<Record<string, unknown>>, opts: PassOptions = {}): Promise<SectionResult[]> {
    const planned = await this.planAll(spec, opts);
    return planned.map((p) => p.result);
  }

  async apply(spec: Readonly<Record<string, unknown>>, opts: ApplyOptions = {}): Promise<SectionResult[]> {
    const unfinished = await this.finishReverts(Object.keys(spec).filter((n) => !opts.sections || opts.sections.includes(n)));
    const planned = (await this.planAll(spec, opts)).map((p) => {
      const stuck = unfinished.get(p.result.section);
      return stuck ? { steps: [], result: { ...p.result, state: 'failed' as const, error: stuck } } : p;
    });
    const changing = planned.filter((p) => p.steps.length > 0);
    if (changing.length) opts.onApplying?.(changing.map((p) => ({ ...p.result, state: 'applying' })));
    const results: SectionResult[] = [];
    for (const p of planned) {
      results.push(p.steps.length && p.cap ? await this.applySection(p.cap, p.spec, p.steps, opts.signal ?? new AbortController().signal) : p.result);
    }
    return results;
  }

  /**
   * At start: reverts every section whose intent is still on disk. Either the agent died between
   * backing up and verifying (the section may be half changed), or inside the confirmation
   * window (nothing confirmed the change): both are reverted before the agent connects.
   */
  async recover(): Promise<RecoveredChange[]> {
    const recovered: RecoveredChange[] = [];
    for (const intent of this.intents.list()) {
      const undone = (r: NonNullable<Intent['reverted']>): RecoveredChange => ({ what: `section ${intent.section}`, outcome: 'undone', section: intent.section, unconfirmed: r.unconfirmed, reason: r.reason });
      // Reverted by an earlier start that died before its report was journaled: reported again, not re-applied.
      if (intent.reverted) {
        recovered.push(undone(intent.reverted));
        continue;
      }
      const unconfirmed = intent.awaitingConfirmationUntilMs !== undefined;
      if (!this.deps.registry.get(intent.section)) {
        this.deps.log.error('interrupted apply of a section this agent has no capability for; left as is', { section: intent.section });
        continue;
      }
      this.deps.log.warn(unconfirmed ? 'reverting a change that was never confirmed' : 'reverting an apply that was interrupted', { section: intent.section, startedAtMs: intent.startedAtMs });
      await this.revert(intent);
      const reverted = {
        atMs: this.now(),
        unconfirmed,
        reason: unconfirmed
          ? `not confirmed: the agent restarted while the change awaited confirmation (deadline ${new Date(intent.awaitingConfirmationUntilMs!).toISOString()}); the previous state was restored`
          : 'the agent restarted while the change was being applied; the previous state was restored',
      };
      // Kept (flagged) until recoveredReported: the record is what remembers the revert across a crash.
      this.intents.journal(intent.section).write({ ...intent, reverted });
      this.intents.removeBackupDir(intent);
      recovered.push(undone(reverted));
    }
    return recovered;
  }

  /** The results of `recover` are journaled as state reports: the reverted records can go. */
  recoveredReported(recovered: readonly RecoveredChange[]): void {
    for (const r of recovered) {
      if (r.section === undefined) continue;
      const journal = this.intents.journal(r.section);
      if (journal.read()?.reverted) journal.clear();
    }
  }

  /**
   * Before an apply: a section whose earlier change is still on disk unreverted (its revert
   * failed, and no restart retried it yet) is reverted first from that change's own backup, so
   * the new apply starts from (and backs up) the original state, never the half-applied one.
   * Returns the sections whose revert still fails, with the error to report (nothing new is applied to them).
   */
  private async finishReverts(sections: readonly string[]): Promise<Map<string, string>> {
    const stuck = new Map<string, string>();
    for (const section of sections) {
      const journal = this.intents.journal(section);
      const leftover = journal.read();
      if (!leftover) {
        this.intents.removeOrphans(section);
        continue;
      }
      // Reverted at start and reported since (recoveredReported runs before any pass): done.
      if (leftover.reverted) {
        journal.clear();
        continue;
      }
      // Anything else is a change whose revert failed: after a verify, or after it was not
      // confirmed (no pass runs while a change is held: the pass that made it settles it first).
      this.deps.log.warn('an earlier change of this section was not fully reverted; finishing the revert before applying', { section, startedAtMs: leftover.startedAtMs });
      try {
        if (!(await this.revert(leftover))) continue;
      } catch (err) {
        stuck.set(section, `an earlier change of this section is still half reverted and reverting it failed again, so nothing new was applied (the next start retries the revert): ${errorMessage(err)}`);
        continue;
      }
      journal.clear();
    }
    return stuck;
  }

  private async planAll(spec: Readonly<Record<string, unknown>>, opts: PassOptions): Promise<PlannedSection[]> {
    const names = orderSections(Object.keys(spec).filter((n) => !opts.sections || opts.sections.includes(n)));
    const out: PlannedSection[] = [];
    for (const section of names) out.push(await this.planSection(section, spec[section], opts.signal ?? new AbortController().signal));
    return out;
  }

  private async planSection(section: string, raw: unknown, signal: AbortSignal): Promise<PlannedSection> {
    const base = { section, steps: [] as StepSummary[], observedAtMs: this.now() };
    const cap = this.deps.registry.get(section);
    if (!cap) {
      return { steps: [], result: { ...base, state: 'unsupported', error: `this agent (ibex-agent ${this.deps.agentVersion}) has no capability for section '${section}'` } };
    }
    const parsed = cap.schema.safeParse(raw);
    if (!parsed.success) {
      return { steps: [], result: { ...base, state: 'failed', error: `invalid section: ${describeIssues(fieldIssues(parsed.error, section))}` } };
    }
    try {
      const actual = await cap.observe(this.ctx(section, signal), parsed.data);
      const steps = cap.plan(parsed.data, actual);
      const summaries = steps.map((s) => cap.summarize(s));
      return { cap, spec: parsed.data, steps, result: { ...base, observedAtMs: this.now(), steps: summaries, state: steps.length ? 'pending' : 'in_sync' } };
    } catch (err) {
      return { steps: [], result: { ...base, state: 'failed', error: `observing the actual state failed: ${errorMessage(err)}` } };
    }
  }

  private async applySection(cap: AnyCapability, spec: unknown, steps: Step[], signal: AbortSignal): Promise<SectionResult> {
    const section = cap.section;
    const summaries = steps.map((s) => cap.summarize(s));
    const result = (state: SectionResult['state'], error?: string): SectionResult => ({ section, state, error, steps: summaries, observedAtMs: this.now() });
    const change = this.intents.newChange(section, this.now());
    const ctx = this.ctx(section, signal, change.backupDir);
    let backup: unknown;
    try {
      backup = await cap.backup(ctx, steps);
    } catch (err) {
      this.intents.removeBackupDir({ section, changeId: change.changeId });
      return result('failed', `backing up before the change failed, nothing was changed: ${errorMessage(err)}`);
    }
    const journal = this.intents.journal(section);
    const intent: Intent = { section, startedAtMs: this.now(), backup, changeId: change.changeId };
    const executors = cap.executors as unknown as Record<string, (s: Step, c: CapabilityContext) => Promise<void>>;
    try {
      await runJournaled(
        {
          what: `section ${section}`,
          journal,
          record: intent,
          journaled: 'intent-written',
          steps: steps.map((step, i) => ({
            text: summaries[i]!.text,
            run: () => {
              this.deps.log.info('step', { section, step: summaries[i]!.text });
              return executors[step.action]!(step, ctx);
            },
          })),
          verify: async () => {
            try {
              const again = cap.plan(spec, await cap.observe(ctx, spec));
              return again.length ? `after applying, ${again.length} step(s) would still run: ${again.map((s) => cap.summarize(s).text).join('; ')}` : undefined;
            } catch (err) {
              return `observing the result failed: ${errorMessage(err)}`;
            }
          },
          undo: () => this.revert(intent).then(() => {}),
        },
        { log: this.deps.log, signal },
      );
    } catch (err) {
      if (!(err instanceof ChangeFailed)) throw err;
      // A failed revert leaves the intent: the next start tries the revert again.
      if (err.undoError !== undefined) return result('failed', `${err.message}; reverting failed too, so the change is kept on disk and its revert is retried at the next apply of this section or the next start: ${errorMessage(err.undoError)}`);
      return result('reverted', `${err.message}; the previous state was restored`);
    }
    const confirm = cap.confirmation?.(spec);
    if (confirm) {
      // Applied and verified, but it may have cut the device off: held until the caller proves
      // the controller is still reachable (or the deadline reverts it).
      const untilMs = this.confirmations.hold(intent, confirm.timeoutMs);
      return { ...result('applying'), detail: `awaiting confirmation until ${new Date(untilMs).toISOString()}: the agent must reach the controller again or the change is reverted`, awaitingConfirmationUntilMs: untilMs };
    }
    journal.clear();
    return result('in_sync');
  }

  /** Restores a section from the backup of one change (with a signal of its own: a cancelled apply still reverts). */
  private async revert(intent: Intent): Promise<boolean> {
    const cap = this.deps.registry.get(intent.section);
    if (!cap) return false;
    await cap.revert(this.ctx(intent.section, new AbortController().signal, this.intents.backupDirOf(intent)), intent.backup);
    return true;
  }

  private ctx(section: string, signal: AbortSignal, backupDir = this.intents.backupDirOf({ section })): CapabilityContext {
    return { root: this.deps.root, sys: this.deps.sys, log: this.deps.log, signal, backupDir };
  }
}
