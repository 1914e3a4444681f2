import { join } from 'node:path';
import { z } from 'zod';
import { argvSchema, generationStatuses, generationsDevicePathSchema, parseOrThrow } from '@ibex/spec';
import { readJsonSync, writeJsonAtomicSync } from '../../journal/atomic-file.js';
import { type ChangeJournal, JsonChangeJournal } from '../../journal/journal-record.js';
import { isValidId } from './layout.js';

/**
 * The agent's own record of the generations: config (which volume), state (statuses, last good,
 * trial) and the journal of an operation in progress, in `<data-dir>/generations` (by default
 * `<root>/var/lib/ibex-agent/generations`; on a device `/var/lib` is a `commons` subvolume,
 * writable while the root is read-only). Nothing is written on the volume itself: adopting a
 * hand-made layout leaves it byte for byte as it was. Agents before 0.2 kept these records at
 * that default place whatever --data-dir said; records-migration.ts moves them.
 */
export const generationsRecordsDir = (dataDir: string) => join(dataDir, 'generations');

export const generationsConfigSchema = z
  .object({
    /** Device path (under --root) where the btrfs top level (subvolid=5) is mounted. */
    volume: generationsDevicePathSchema,
    fallbacks: z.number().int().min(0).max(16),
    health: z
      .object({
        /** The new generation must reach the controller within this long after the switch (or the boot). */
        deadlineSec: z.number().int().min(1).max(86_400),
        /** Boots of a trial generation before the agent gives up on it. */
        boots: z.number().int().min(1).max(10),
        /** Extra checks, each an argv run on the device; exit 0 = healthy. */
        checks: z.array(argvSchema).max(32),
        /** The trial only counts once the device booted it (the deadline runs from that boot). */
        requireBoot: z.boolean().default(false),
      })
      .strict(),
  })
  .strict();
export type GenerationsConfig = z.infer<typeof generationsConfigSchema>;

/**
 * `unknown`: the agent has no verdict on the generation: it was there when the layout was
 * adopted (only `current` counts as good then: it is what runs), or GC forgot it while deleting it.
 */
const statusSchema = z.enum(generationStatuses);

export const trialSchema = z
  .object({
    id: z.string(),
    /** Where a failed trial goes back to. */
    previous: z.string(),
    startedAtMs: z.number(),
    deadlineAtMs: z.number(),
    bootsLeft: z.number().int().min(0),
    /** The kernel boot id the boot counter last counted (one decrement per boot). */
    countedBootId: z.string().nullable(),
    /** requireBoot: waiting for the first boot of the trial generation (no check, no deadline until then). */
    awaitingBoot: z.boolean().default(false),
  })
  .strict();
export type Trial = z.infer<typeof trialSchema>;

export const generationsStateSchema = z
  .object({
    statuses: z.record(z.string(), statusSchema),
    lastGood: z.string().nullable(),
    trial: trialSchema.nullable(),
    lastRollback: z.object({ from: z.string(), to: z.string(), reason: z.string(), atMs: z.number() }).strict().nullable(),
  })
  .strict();
export type GenerationsState = z.infer<typeof generationsStateSchema>;

/** Ids become path components that recovery deletes under: a damaged record must not reach outside the volume. */
const idSchema = z.string().refine(isValidId, 'must be a generation or links id (a plain name)');

/** An operation that changes the volume (init, upgrade, switch), journaled before its first destructive step (generations-journal.ts). */
export const journalSchema = z
  .object({
    /** init: the first generation of a new layout (`from` is `to`: there was none before). */
    op: z.enum(['init', 'upgrade', 'switch']),
    /** The links directory this operation makes; `current` pointing at it means the switch happened. */
    links: idSchema,
    /** The generation an upgrade creates (deleted if the upgrade is rolled back). */
    created: idSchema.nullable(),
    /** The generation `current/0` will be after the switch. */
    to: idSchema,
    from: idSchema,
    /** Start a trial of `to` after the switch. */
    trial: z.boolean(),
    /** Why a switch happens (a rollback's reason); marks `from` bad when `markFromBad`. */
    reason: z.string().nullable(),
    markFromBad: z.boolean(),
    /** A download the upgrade made (removed when the upgrade ends either way). */
    download: z.string().nullable(),
    startedAtMs: z.number(),
  })
  .strict();
export type Journal = z.infer<typeof journalSchema>;

export const emptyState = (): GenerationsState => ({ statuses: {}, lastGood: null, trial: null, lastRollback: null });

export class GenerationsStore {
  readonly dir: string;
  /** The operation in progress (generations-journal.ts). */
  readonly journal: ChangeJournal<Journal>;
  /** `dir`: where the records live (generationsRecordsDir of the data dir). */
  constructor(dir: string) {
    this.dir = dir;
    this.journal = new JsonChangeJournal(join(this.dir, 'journal.json'), journalSchema);
  }

  get configPath() {
    return join(this.dir, 'config.json');
  }
  get statePath() {
    return join(this.dir, 'state.json');
  }
  get downloadsDir() {
    return join(this.dir, 'downloads');
  }

  readConfig(): GenerationsConfig | undefined {
    const v = readJsonSync(this.configPath);
    return v === undefined ? undefined : parseOrThrow(generationsConfigSchema, v, this.configPath);
  }
  writeConfig(c: GenerationsConfig): void {
    writeJsonAtomicSync(this.configPath, c, 0o644);
  }

  readState(): GenerationsState {
    const v = readJsonSync(this.statePath);
    return v === undefined ? emptyState() : parseOrThrow(generationsStateSchema, v, this.statePath);
  }
  writeState(s: GenerationsState): void {
    writeJsonAtomicSync(this.statePath, s, 0o644);
  }
}
