import { isDeepStrictEqual } from 'node:util';
import { join } from 'node:path';
import { type GenerationsSection, generationsSectionSchema } from '@ibex/spec';
import { FatalError } from '../../common/errors.js';
import type { Capability, CapabilityContext } from '../../engine/capability.js';
import type { StepSummary } from '../../engine/section-result.js';
import { GenerationsManager, defaultHealth } from './generations-manager.js';
import type { GenerationsConfig } from './generations-store.js';
import { describeLayoutProblem, readLayout } from './layout-read.js';

export interface GenerationsActual {
  config: GenerationsConfig | undefined;
  /** Why the volume cannot be adopted (no btrfs, not the wiki's layout); undefined when it can. */
  layoutProblem: string | undefined;
  /** An operation is journaled (in progress or interrupted): the volume must not change under it. */
  busy: boolean;
}

export type GenerationsStep = { action: 'configure'; config: GenerationsConfig; adopt: boolean } | { action: 'refuse'; reason: string };

// A manager per apply is fine: managers of the same --root share one lock (generations-manager.ts),
// so the section never interleaves with a generations job or the trial monitor.
const manager = (ctx: CapabilityContext) => new GenerationsManager({ root: ctx.root, sys: ctx.sys, log: ctx.log });

export function desiredConfig(spec: GenerationsSection): GenerationsConfig {
  return { volume: spec.volume, fallbacks: spec.fallbacks, health: { ...defaultHealth(), ...spec.health } };
}

/** Pure: what makes the agent's generations config match the section. */
export function planGenerations(spec: GenerationsSection, actual: GenerationsActual): GenerationsStep[] {
  const want = desiredConfig(spec);
  if (actual.config && isDeepStrictEqual(actual.config, want) && !actual.layoutProblem) return [];
  if (actual.layoutProblem) return [{ action: 'refuse', reason: `generations.volume: ${actual.layoutProblem}; run the generations.init job to lay it out (or fix it by hand)` }];
  const adopt = actual.config?.volume !== want.volume;
  if (adopt && actual.busy) return [{ action: 'refuse', reason: `generations.volume: an operation on ${actual.config!.volume} is in progress; change the volume after it ends` }];
  return [{ action: 'configure', config: want, adopt }];
}

export function summarizeGenerationsStep(step: GenerationsStep): StepSummary {
  if (step.action === 'refuse') return { action: step.action, text: `refuse: ${step.reason}` };
  const h = step.config.health;
  return {
    action: step.action,
    volume: step.config.volume,
    text: `${step.adopt ? `adopt the layout on ${step.config.volume} (read only) and ` : ''}set fallbacks ${step.config.fallbacks}, health deadline ${h.deadlineSec} s, ${h.boots} boot(s), ${h.checks.length} check(s)`,
  };
}

/** The previous config, to put back if the apply fails. */
interface GenerationsBackup {
  config: GenerationsConfig | null;
}

export const generationsCapability: Capability<GenerationsSection, GenerationsActual, GenerationsStep, GenerationsBackup> = {
  section: 'generations',
  schema: generationsSectionSchema,

  async observe(ctx, spec) {
    const m = manager(ctx);
    const config = m.store.readConfig();
    const volume = join(ctx.root, spec.volume);
    let layoutProblem: string | undefined;
    if (!(await m.btrfs.isBtrfs(volume))) layoutProblem = `${spec.volume} is not a mounted btrfs filesystem`;
    else layoutProblem = describeLayoutProblem(await readLayout(ctx.sys, m.btrfs, volume), spec.volume);
    return { config, layoutProblem, busy: m.store.readJournal() !== undefined };
  },

  plan: planGenerations,
  summarize: summarizeGenerationsStep,

  executors: {
    async configure(step, ctx) {
      const m = manager(ctx);
      if (step.adopt) await m.adopt({ volume: step.config.volume, fallbacks: step.config.fallbacks, health: step.config.health });
      else await m.setConfig(step.config);
    },
    async refuse(step) {
      throw new FatalError(step.reason);
    },
  },

  async backup(ctx) {
    return { config: manager(ctx).store.readConfig() ?? null };
  },

  async revert(ctx, backup) {
    await manager(ctx).setConfig(backup.config);
  },
};
