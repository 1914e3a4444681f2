import { isDeepStrictEqual } from 'node:util';
import { type GenerationsSection, generationsSectionSchema } from '@ibex/spec';
import { FatalError } from '../../common/errors.js';
import type { Capability } from '../../engine/capability.js';
import type { StepSummary } from '../../engine/section-result.js';
import { type GenerationsRoot, defaultHealth } from './generations-root.js';
import type { GenerationsConfig } from './generations-store.js';
import { adopt, setConfig } from './init-adopt.js';
import { describeLayoutProblem, readLayout } from './layout-read.js';

export interface GenerationsActual {
  config: GenerationsConfig | undefined;
  /** Why the volume cannot be adopted (no btrfs, not the wiki's layout); undefined when it can. */
  layoutProblem: string | undefined;
  /** An operation is journaled (in progress or interrupted): the volume must not change under it. */
  busy: boolean;
}

export type GenerationsStep = { action: 'configure'; config: GenerationsConfig; adopt: boolean } | { action: 'refuse'; reason: string };

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

/**
 * The `generations` section of the --root that `g` manages: the same GenerationsRoot as the
 * generations jobs and the trial monitor (agent/registry.ts), so its configure and revert run
 * under their lock and never interleave with an upgrade.
 */
export function generationsCapability(g: GenerationsRoot): Capability<GenerationsSection, GenerationsActual, GenerationsStep, GenerationsBackup> {
  return {
    section: 'generations',
    schema: generationsSectionSchema,

    async observe(_ctx, spec) {
      const volume = g.volumeHost(spec);
      let layoutProblem: string | undefined;
      if (!(await g.btrfs.isBtrfs(volume))) layoutProblem = `${spec.volume} is not a mounted btrfs filesystem`;
      else layoutProblem = describeLayoutProblem(await readLayout(g.sys, g.btrfs, volume), spec.volume);
      return { config: g.config(), layoutProblem, busy: g.store.journal.read() !== undefined };
    },

    plan: planGenerations,
    summarize: summarizeGenerationsStep,

    executors: {
      async configure(step) {
        if (step.adopt) await adopt(g, { volume: step.config.volume, fallbacks: step.config.fallbacks, health: step.config.health });
        else await setConfig(g, step.config);
      },
      async refuse(step) {
        throw new FatalError(step.reason);
      },
    },

    async backup() {
      return { config: g.config() ?? null };
    },

    async revert(_ctx, backup) {
      await setConfig(g, backup.config);
    },
  };
}
