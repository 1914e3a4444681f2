import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describeIssues, fieldIssues, sectionNames } from '@ibex/spec';
import { errorMessage } from '../common/errors.js';
import { failpoint } from '../common/failpoints.js';
import type { Logger } from '../common/log.js';
import type { DataDir } from '../journal/data-dir.js';
import { ensureDirSync, readJsonSync, removeDurableSync, writeJsonAtomicSync } from '../journal/atomic-file.js';
import type { SystemAdapter } from '../system/system-adapter.js';
import type { AnyCapability, CapabilityContext, CapabilityRegistry, Step } from './capability.js';
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

interface Intent {
  section: string;
  startedAtMs: number;
  backup: unknown;
  /** Set once the change is applied and verified but must still be confirmed (Capability.confirmation). */
  awaitingConfirmationUntilMs?: number;
}

/** A section `recoverSections` reverted at start, and why. */
export interface RecoveredSection {
  section: string;
  /** The change had been applied and was awaiting confirmation (rather than interrupted mid-apply). */
  unconfirmed: boolean;
  reason: string;
}

/** A section whose applied change waits for confirmation. */
export interface AwaitingSection {
  section: string;
  untilMs: number;
}

/** Sections in a fixed order: the ones the spec library knows, in its order, then the rest by name. */
export function orderSections(names: readonly string[]): string[] {
  const known = sectionNames.filter((n) => names.includes(n));
  const other = names.filter((n) => !(sectionNames as readonly string[]).includes(n)).sort();
  return [...known, ...other];
}

/**
 * The reconcile engine: for each section, observe -> plan -> (backup, journal the intent,
 * execute, verify, revert on failure). Applying a spec that already holds runs no step.
 */
export class Engine {
  private readonly now: () => number;

  constructor(private readonly deps: EngineDeps) {
    this.now = deps.now ?? Date.now;
  }

  /** Observe and plan only: changes nothing. Sections with steps come back `pending`. */
  async plan(spec: Readonly<Record<string, unknown>>, opts: PassOptions = {}): Promise<SectionResult[]> {
    const planned = await this.planAll(spec, opts);
    return planned.map((p) => p.result);
  }

  async apply(spec: Readonly<Record<string, unknown>>, opts: ApplyOptions = {}): Promise<SectionResult[]> {
    const planned = await this.planAll(spec, opts);
    const changing = planned.filter((p) => p.steps.length > 0);
    if (changing.length) opts.onApplying?.(changing.map((p) => ({ ...p.result, state: 'applying' })));
    const results: SectionResult[] = [];
    for (const p of planned) {
      results.push(p.steps.length && p.cap ? await this.applySection(p.cap, p.spec, p.steps, opts.signal ?? new AbortController().signal) : p.result);
    }
    return results;
  }

  /**
   * Reverts every section whose apply was interrupted (its intent is still on disk): the agent
   * died between backing up and verifying, so the section may be half changed.
   */
  async recover(): Promise<string[]> {
    return (await this.recoverSections()).map((r) => r.section);
  }

  /**
   * Like `recover`, with the reason per section. An intent awaiting confirmation means the
   * agent died (or the device rebooted) inside the confirmation window: nothing confirmed the
   * change, so it is reverted like an interrupted one, before the agent connects.
   */
  async recoverSections(): Promise<RecoveredSection[]> {
    const dir = this.deps.dataDir.intents;
    let names: string[];
    try {
      names = readdirSync(dir).filter((n) => n.endsWith('.json') && !n.startsWith('.'));
    } catch {
      return [];
    }
    const recovered: RecoveredSection[] = [];
    for (const name of names) {
      const intent = readJsonSync(join(dir, name)) as Intent | undefined;
      if (!intent) continue;
      const cap = this.deps.registry.get(intent.section);
      if (!cap) {
        this.deps.log.error('interrupted apply of a section this agent has no capability for; left as is', { section: intent.section });
        continue;
      }
      const unconfirmed = intent.awaitingConfirmationUntilMs !== undefined;
      this.deps.log.warn(unconfirmed ? 'reverting a change that was never confirmed' : 'reverting an apply that was interrupted', { section: intent.section, startedAtMs: intent.startedAtMs });
      await cap.revert(this.ctx(intent.section, new AbortController().signal), intent.backup);
      this.clearIntent(intent.section);
      recovered.push({
        section: intent.section,
        unconfirmed,
        reason: unconfirmed
          ? `not confirmed: the agent restarted while the change awaited confirmation (deadline ${new Date(intent.awaitingConfirmationUntilMs!).toISOString()}); the previous state was restored`
          : 'the agent restarted while the change was being applied; the previous state was restored',
      });
    }
    return recovered;
  }

  /** Sections applied and verified whose change still waits for confirmation (their intent is on disk). */
  awaitingConfirmation(): AwaitingSection[] {
    let names: string[];
    try {
      names = readdirSync(this.deps.dataDir.intents).filter((n) => n.endsWith('.json') && !n.startsWith('.'));
    } catch {
      return [];
    }
    return names.flatMap((n) => {
      const i = readJsonSync(join(this.deps.dataDir.intents, n)) as Intent | undefined;
      return i?.awaitingConfirmationUntilMs !== undefined ? [{ section: i.section, untilMs: i.awaitingConfirmationUntilMs }] : [];
    });
  }

  /** The change reached the controller: it is final; the backup goes. */
  confirm(section: string): void {
    const i = readJsonSync(this.intentPath(section)) as Intent | undefined;
    if (i?.awaitingConfirmationUntilMs === undefined) return;
    this.clearIntent(section);
    this.deps.log.info('change confirmed', { section });
  }

  /** Not confirmed in time: restores the backup. Returns the section's result (`reverted`, or `failed` when the revert failed). */
  async revertUnconfirmed(section: string, reason: string): Promise<SectionResult> {
    const i = readJsonSync(this.intentPath(section)) as Intent | undefined;
    const cap = this.deps.registry.get(section);
    const base = { section, steps: [] as StepSummary[], observedAtMs: this.now(), unconfirmed: true };
    if (!i || !cap) return { ...base, state: 'failed', error: `${reason}; but no backup was found to revert` };
    this.deps.log.warn('change not confirmed, reverting', { section, reason });
    try {
      await cap.revert(this.ctx(section, new AbortController().signal), i.backup);
    } catch (err) {
      return { ...base, state: 'failed', error: `${reason}; reverting failed, the section may be half applied (the next start retries): ${errorMessage(err)}` };
    }
    this.clearIntent(section);
    return { ...base, state: 'reverted', error: `${reason}; the previous state was restored` };
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
    const ctx = this.ctx(section, signal);
    const summaries = steps.map((s) => cap.summarize(s));
    const result = (state: SectionResult['state'], error?: string): SectionResult => ({ section, state, error, steps: summaries, observedAtMs: this.now() });
    this.resetBackupDir(section);
    let backup: unknown;
    try {
      backup = await cap.backup(ctx, steps);
    } catch (err) {
      return result('failed', `backing up before the change failed, nothing was changed: ${errorMessage(err)}`);
    }
    writeJsonAtomicSync(this.intentPath(section), { section, startedAtMs: this.now(), backup } satisfies Intent);
    failpoint('intent-written');

    let failure: string | undefined;
    const executors = cap.executors as unknown as Record<string, (s: Step, c: CapabilityContext) => Promise<void>>;
    for (const [i, step] of steps.entries()) {
      try {
        signal.throwIfAborted();
        this.deps.log.info('step', { section, step: summaries[i]!.text });
        await executors[step.action]!(step, ctx);
      } catch (err) {
        failure = `step ${i + 1} of ${steps.length} (${summaries[i]!.text}) failed: ${signal.aborted ? 'cancelled' : errorMessage(err)}`;
        break;
      }
    }
    if (!failure) {
      try {
        const again = cap.plan(spec, await cap.observe(ctx, spec));
        if (again.length) failure = `verify failed: after applying, ${again.length} step(s) would still run: ${again.map((s) => cap.summarize(s).text).join('; ')}`;
      } catch (err) {
        failure = `verify failed: observing the result failed: ${errorMessage(err)}`;
      }
    }
    if (!failure) {
      const confirm = cap.confirmation?.(spec);
      if (confirm) {
        // Applied and verified, but it may have cut the device off: keep the backup until the
        // caller proves the controller is still reachable (or the deadline reverts it).
        const untilMs = this.now() + confirm.timeoutMs;
        writeJsonAtomicSync(this.intentPath(section), { section, startedAtMs: this.now(), backup, awaitingConfirmationUntilMs: untilMs } satisfies Intent);
        failpoint('awaiting-confirmation');
        return { ...result('applying'), detail: `awaiting confirmation until ${new Date(untilMs).toISOString()}: the agent must reach the controller again or the change is reverted`, awaitingConfirmationUntilMs: untilMs };
      }
      this.clearIntent(section);
      return result('in_sync');
    }
    this.deps.log.warn('section failed, reverting', { section, error: failure });
    try {
      await cap.revert(this.ctx(section, new AbortController().signal), backup);
    } catch (err) {
      // The intent stays: the next start tries the revert again.
      return result('failed', `${failure}; reverting failed too, the section may be half applied: ${errorMessage(err)}`);
    }
    this.clearIntent(section);
    return result('reverted', `${failure}; the previous state was restored`);
  }

  private ctx(section: string, signal: AbortSignal): CapabilityContext {
    return { root: this.deps.root, sys: this.deps.sys, log: this.deps.log, signal, backupDir: this.deps.dataDir.backupOf(section) };
  }

  private intentPath(section: string): string {
    return join(this.deps.dataDir.intents, `${section}.json`);
  }

  private resetBackupDir(section: string): void {
    const dir = this.deps.dataDir.backupOf(section);
    rmSync(dir, { recursive: true, force: true });
    ensureDirSync(this.deps.dataDir.path);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  private clearIntent(section: string): void {
    removeDurableSync(this.intentPath(section));
    rmSync(this.deps.dataDir.backupOf(section), { recursive: true, force: true });
  }
}
