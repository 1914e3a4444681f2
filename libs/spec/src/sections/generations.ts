import { z } from 'zod';
import { generationsDevicePathSchema, healthSettingsSchema } from '../generations-jobs.js';

/**
 * `generations`: the device's btrfs generations volume (the Alpine wiki's layout) and how the
 * agent treats it. Applying it adopts the layout on `volume` (read only, nothing on the volume
 * changes) and sets the fallbacks and health settings; making generations (init, upgrade),
 * rolling back and GC are jobs. A volume without the layout is refused with the job to run
 * (`generations.init`).
 */
export const generationsSectionSchema = z
  .object({
    volume: generationsDevicePathSchema,
    fallbacks: z.number().int().min(0).max(16).default(3),
    health: healthSettingsSchema.default({}),
  })
  .strict();
export type GenerationsSection = z.infer<typeof generationsSectionSchema>;
