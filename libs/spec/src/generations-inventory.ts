import { z } from 'zod';

/** How a generation stands: `trial` until its health check passes, then `good`; `bad` after it failed one. */
export const generationStatuses = ['trial', 'good', 'bad', 'unknown'] as const;
export type GenerationStatus = (typeof generationStatuses)[number];

export const generationInfoSchema = z
  .object({
    id: z.string().min(1).max(128),
    createdAtMs: z.number().int().min(0).nullable(),
    status: z.enum(generationStatuses),
    /** The running system's root is this generation (from /proc/self/mountinfo). */
    booted: z.boolean(),
    /** `current/0` points at it: the next boot uses it. */
    current: z.boolean(),
    /** Its slot in the current links directory (0 newest .. 3), null when not linked. */
    slot: z.number().int().min(0).max(64).nullable(),
    readOnly: z.boolean(),
    /** False for a half-made generation left by a crash (GC removes it). */
    complete: z.boolean(),
  })
  .strict();
export type GenerationInfo = z.infer<typeof generationInfoSchema>;

/** What the agent reports about the generations on its btrfs volume (facts `generations`). */
export const generationsInventorySchema = z
  .object({
    /** The btrfs volume's top level as seen by the agent (a path under --root). */
    volume: z.string().max(4096),
    current: z.string().max(128).nullable(),
    booted: z.string().max(128).nullable(),
    lastGood: z.string().max(128).nullable(),
    trial: z
      .object({ id: z.string().max(128), deadlineAtMs: z.number().int().min(0), bootsLeft: z.number().int().min(0) })
      .strict()
      .nullable(),
    generations: z.array(generationInfoSchema).max(256),
    collectedAtMs: z.number().int().min(0),
  })
  .strict();
export type GenerationsInventory = z.infer<typeof generationsInventorySchema>;
