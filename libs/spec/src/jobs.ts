import { z } from 'zod';
import { factsSchema } from './facts.js';
import { desiredStateSchema, sectionStates } from './desired-state.js';
import { generationsInventorySchema } from './generations-inventory.js';
import {
  generationsAdoptParamsSchema,
  generationsBootEntriesOutputSchema,
  generationsBootEntriesParamsSchema,
  generationsGcOutputSchema,
  generationsGcParamsSchema,
  generationsInitParamsSchema,
  generationsUpgradeOutputSchema,
  generationsUpgradeParamsSchema,
} from './generations-jobs.js';
import { imageBuildOutputSchema, imageBuildParamsSchema } from './image-spec.js';

/**
 * A step as the agent shows it: `action`, one line of `text`, and capability details. Two
 * details are shared by every capability: `diff`, the unified diff of a file the step writes
 * or removes, and `commands`, the argument vectors of the programs the step runs.
 */
export const stepSummarySchema = z.looseObject({
  action: z.string(),
  text: z.string(),
  diff: z.string().optional(),
  commands: z.array(z.array(z.string())).optional(),
});

const sectionList = z.array(z.string().min(1).max(64)).max(64);

/** What a dry run can say of a section: nothing is applied, so never applying/reverted/drifted. */
export const planSectionStates = ['in_sync', 'pending', 'unsupported', 'failed'] as const;

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
        sections: sectionList.optional(),
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
  'generations.init': {
    description: 'Lay out the btrfs generations layout (the Alpine wiki\'s) on an empty btrfs volume, with a first generation from an image.',
    params: generationsInitParamsSchema,
    output: generationsInventorySchema,
    defaultTimeoutMs: 1_800_000,
    defaultMaxAttempts: 1,
    retrySafe: false,
  },
  'generations.adopt': {
    description: 'Take over a generations layout made by hand the wiki\'s way, without changing it, and report the inventory.',
    params: generationsAdoptParamsSchema,
    output: generationsInventorySchema,
    defaultTimeoutMs: 120_000,
    defaultMaxAttempts: 2,
    retrySafe: true,
  },
  'generations.upgrade': {
    description: 'Make a new generation (commands in a chroot of a snapshot, or a sha256-verified tarball/send stream), set it read-only and switch to it as a trial.',
    params: generationsUpgradeParamsSchema,
    output: generationsUpgradeOutputSchema,
    defaultTimeoutMs: 3_600_000,
    defaultMaxAttempts: 1,
    retrySafe: false,
  },
  'generations.bootEntries': {
    description: 'Render the boot entries for the generations (rEFInd as in the wiki, a GRUB snippet, systemd-boot entries) from the layout; changes nothing.',
    params: generationsBootEntriesParamsSchema,
    output: generationsBootEntriesOutputSchema,
    defaultTimeoutMs: 60_000,
    defaultMaxAttempts: 2,
    retrySafe: true,
  },
  'generations.gc': {
    description: 'Delete generations nothing needs (never the current, booted, last-known-good, trial or a mounted one).',
    params: generationsGcParamsSchema,
    output: generationsGcOutputSchema,
    defaultTimeoutMs: 600_000,
    defaultMaxAttempts: 2,
    retrySafe: true,
  },
  'state.plan': {
    description:
      'Dry run: observe the device and plan it against a proposed desired state (default: its current desired revision); ' +
      'report per section whether it is in sync and the steps that would run, with file diffs and commands. Changes nothing.',
    params: z
      .object({
        /** The desired state to plan for, validated like PUT desired-state (default: the device's current revision). */
        spec: desiredStateSchema.optional(),
        /** Only these sections (default: all in the spec). */
        sections: sectionList.optional(),
      })
      .strict(),
    output: z.object({
      /** The device's current desired revision (what `spec` is compared with when it is proposed). */
      revision: z.number().int().min(0),
      /** True when the plan is for a proposed spec, false for the current desired revision. */
      proposed: z.boolean(),
      sections: z.array(
        z.object({
          section: z.string(),
          state: z.enum(planSectionStates),
          error: z.string().optional(),
          steps: z.array(stepSummarySchema),
        }),
      ),
    }),
    defaultTimeoutMs: 120_000,
    defaultMaxAttempts: 3,
    retrySafe: true,
  },
  'image.build': {
    description:
      'Build a VM initramfs image from an image spec on this host (a hypervisor host): the gzip\'d cpio newc archive is written to `out` ' +
      '(FILE.partial, fsync, rename) with its sha256. Paths in the spec are on this host (under the agent\'s --root). docs/images.md.',
    params: imageBuildParamsSchema,
    output: imageBuildOutputSchema,
    defaultTimeoutMs: 1_800_000,
    defaultMaxAttempts: 2,
    // The same spec and inputs give the same bytes, and the output appears only when complete.
    retrySafe: true,
  },
} as const;

export type JobType = keyof typeof jobTypes;
export const jobTypeNames = Object.keys(jobTypes) as JobType[];

export function isJobType(t: string): t is JobType {
  return Object.hasOwn(jobTypes, t);
}
