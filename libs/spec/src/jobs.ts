import { z } from 'zod';
import { factsSchema } from './facts.js';
import { sectionStates } from './desired-state.js';
import { generationsInventorySchema } from './generations-inventory.js';

/**
 * Job types, their parameters and defaults. `retrySafe` says whether the controller may run
 * a job again after a transient failure or a timeout without asking anyone.
 */
export const jobTypes = {
  'facts.collect': {
    description: 'Collect and report the device facts (hostname, OS, kernel, interfaces, filesystems).',
    params: z.object({}).strict(),
    output: factsSchema,
    defaultTimeoutMs: 60_000,
    defaultMaxAttempts: 3,
    retrySafe: true,
  },
  'state.apply': {
    description: 'Reconcile the device to its current desired revision now and report each section.',
    params: z
      .object({
        /** Only these sections (default: all in the desired state). */
        sections: z.array(z.string().min(1).max(64)).max(64).optional(),
        /** Plan only: report what would change without changing anything. */
        dryRun: z.boolean().default(false),
      })
      .strict(),
    output: z.object({
      revision: z.number().int().min(0),
      sections: z.array(
        z.object({
          section: z.string(),
          state: z.enum(sectionStates),
          error: z.string().optional(),
          steps: z.array(z.unknown()).optional(),
        }),
      ),
    }),
    defaultTimeoutMs: 600_000,
    defaultMaxAttempts: 2,
    retrySafe: true,
  },
  'generations.rollback': {
    description: 'Switch the device back to the previous generation, or to the named one, and report the inventory.',
    params: z.object({ to: z.string().min(1).max(128).optional(), reason: z.string().max(1000).optional() }).strict(),
    output: generationsInventorySchema,
    defaultTimeoutMs: 300_000,
    defaultMaxAttempts: 1,
    retrySafe: false,
  },
} as const;

export type JobType = keyof typeof jobTypes;
export const jobTypeNames = Object.keys(jobTypes) as JobType[];

export function isJobType(t: string): t is JobType {
  return Object.hasOwn(jobTypes, t);
}
