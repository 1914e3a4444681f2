import type { z } from 'zod';
import type { Logger } from '../common/log.js';
import type { SystemAdapter } from '../system/system-adapter.js';
import type { StepSummary } from './section-result.js';

/** What observe, executors, backup and revert get: the world they may touch and nothing else. */
export interface CapabilityContext {
  /** Host directory that device paths are resolved under (--root). */
  root: string;
  sys: SystemAdapter;
  log: Logger;
  signal: AbortSignal;
  /** Where this section's backup may keep bytes; empty at the start of each apply. */
  backupDir: string;
}

/** A step is a tagged union on `action`. */
export interface Step {
  action: string;
}

/** One executor per action, typed so a capability that forgets one does not compile. */
export type ExecutorMap<S extends Step> = {
  [A in S['action']]: (step: Extract<S, { action: A }>, ctx: CapabilityContext) => Promise<void>;
};

/**
 * A device capability: one section of the desired state.
 * - `observe` reads the actual state of what `spec` mentions;
 * - `plan` is pure: the steps that turn `actual` into `spec` (empty = in sync);
 * - `executors` carry the steps out through `ctx.sys`;
 * - `backup` records (durably, in `ctx.backupDir`) what the steps will change, before they run;
 *   `revert` puts it back. The engine runs the steps as a journaled change whose record (the
 *   section's intent) holds the backup, and whose undo is `revert` (journaled-change.ts).
 */
export interface Capability<Spec, Actual, S extends Step, Backup> {
  readonly section: string;
  readonly schema: z.ZodType<Spec>;
  observe(ctx: CapabilityContext, spec: Spec): Promise<Actual>;
  plan(spec: Spec, actual: Actual): S[];
  readonly executors: ExecutorMap<S>;
  summarize(step: S): StepSummary;
  backup(ctx: CapabilityContext, steps: readonly S[]): Promise<Backup>;
  revert(ctx: CapabilityContext, backup: Backup): Promise<void>;
  /**
   * For a change that can cut the device off (network, a generation switch): after it is
   * applied and verified, the engine keeps the intent (and backup) on disk marked "awaiting
   * confirmation" for `timeoutMs` (confirmations.ts); it is confirmed once the agent proved it
   * still reaches the controller, or reverted (also at the next start, if the agent died meanwhile).
   * Undefined (or no method): the change is final once verified.
   */
  confirmation?(spec: Spec): { timeoutMs: number } | undefined;
}

// The registry holds capabilities of different types; the engine only moves values between
// the methods of the same capability, so their types need not be known there.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyCapability = Capability<any, any, Step, any>;

export class CapabilityRegistry {
  private readonly caps = new Map<string, AnyCapability>();

  register<Spec, Actual, S extends Step, Backup>(cap: Capability<Spec, Actual, S, Backup>): this {
    if (this.caps.has(cap.section)) throw new Error(`a capability for section '${cap.section}' is already registered`);
    this.caps.set(cap.section, cap as unknown as AnyCapability);
    return this;
  }

  get(section: string): AnyCapability | undefined {
    return this.caps.get(section);
  }
}
