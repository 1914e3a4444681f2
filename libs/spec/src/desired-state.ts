import { z } from 'zod';
import { chrootsSectionSchema } from './sections/chroots.js';
import { filesSectionSchema } from './sections/files.js';
import { generationsSectionSchema } from './sections/generations.js';
import { networkSectionSchema } from './sections/network.js';
import { openwrtSectionSchema } from './sections/openwrt.js';

/**
 * Every section the desired state can hold, with its schema. A capability library adds its
 * section here; the controller refuses sections it does not know, and an agent that lacks a
 * capability reports the section as `unsupported` (never as applied).
 */
export const sectionSchemas = {
  files: filesSectionSchema,
  network: networkSectionSchema,
  generations: generationsSectionSchema,
  openwrt: openwrtSectionSchema,
  chroots: chrootsSectionSchema,
} as const;

export type SectionName = keyof typeof sectionSchemas;
export const sectionNames = Object.keys(sectionSchemas) as SectionName[];

export const desiredStateSchema = z
  .object(Object.fromEntries(sectionNames.map((n) => [n, sectionSchemas[n].optional()])) as { [K in SectionName]: z.ZodOptional<(typeof sectionSchemas)[K]> })
  .strict();
export type DesiredStateSpec = z.infer<typeof desiredStateSchema>;

/** Section states as stored and shown by the controller (proto SectionState without prefix). */
export const sectionStates = ['pending', 'in_sync', 'applying', 'failed', 'drifted', 'unsupported', 'reverted'] as const;
export type SectionStateName = (typeof sectionStates)[number];
