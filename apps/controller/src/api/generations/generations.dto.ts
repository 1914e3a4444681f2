import { z } from 'zod';
import { generationStatuses } from '@ibex/spec';
import { timestamp } from '../http/schemas.js';

const generationId = z.string().describe('Generation id (the snapshot directory name on the device).');

export const generationView = z
  .object({
    id: generationId.meta({ example: '20260131-120000' }),
    createdAt: timestamp.nullable().describe('When the generation was made; null when the device does not know.'),
    status: z.enum(generationStatuses).describe('trial until its health check passes, then good; bad after it failed one.'),
    booted: z.boolean().describe('The running system booted from it.'),
    current: z.boolean().describe('The next boot uses it (`current/0` points at it).'),
    slot: z.number().int().nullable().describe('Its slot in the current links directory (0 newest .. 3); null when not linked.'),
    readOnly: z.boolean(),
    complete: z.boolean().describe('False for a half-made generation left by a crash (garbage collection removes it).'),
  })
  .meta({ id: 'Generation' });
export type GenerationView = z.output<typeof generationView>;

export const generationsView = z
  .object({
    deviceId: z.uuid(),
    deviceName: z.string(),
    supported: z
      .boolean()
      .describe('False when the device has reported no generations inventory (no btrfs generations layout, or an agent without the capability): then every other field is empty.'),
    volume: z.string().nullable().describe('The btrfs volume as the agent sees it.'),
    current: generationId.nullable().describe('What the next boot uses.'),
    booted: generationId.nullable().describe('What the running system booted from.'),
    lastGood: generationId.nullable().describe('The newest generation whose health check passed.'),
    trial: z
      .object({
        id: generationId,
        deadlineAt: timestamp.describe('If not confirmed healthy by then, the agent switches back.'),
        bootsLeft: z.number().int().describe('Boots it may still take before it counts as failed.'),
      })
      .nullable()
      .describe('The generation on trial, if any.'),
    generations: z.array(generationView).describe('Newest first as the device lists them.'),
    collectedAt: timestamp.nullable().describe('When the agent read this inventory (it reports after every change and at each connection).'),
  })
  .meta({
    id: 'DeviceGenerations',
    example: {
      deviceId: '0f8e7c1a-5b7e-4c2a-9a53-2d1b6f0e4c11',
      deviceName: 'edge-1',
      supported: true,
      volume: '/mnt/btrfs',
      current: '20260131-120000',
      booted: '20260131-120000',
      lastGood: '20260131-120000',
      trial: null,
      generations: [
        { id: '20260131-120000', createdAt: '2026-01-31T12:00:00.000Z', status: 'good', booted: true, current: true, slot: 0, readOnly: true, complete: true },
        { id: '20260115-080000', createdAt: '2026-01-15T08:00:00.000Z', status: 'good', booted: false, current: false, slot: 1, readOnly: true, complete: true },
      ],
      collectedAt: '2026-01-31T12:05:00.000Z',
    },
  });
export type GenerationsView = z.output<typeof generationsView>;

export const rollbackBody = z
  .object({
    to: z
      .string()
      .min(1, 'must not be empty')
      .max(128, 'must be at most 128 characters')
      .optional()
      .describe('Generation to switch to; default: the previous one (after a failed trial, the one it came from; otherwise the first fallback, current/1, that is not bad).'),
    reason: z.string().max(1000, 'must be at most 1000 characters').optional().describe('Why; kept in the job and the audit log.'),
  })
  .strict()
  .meta({ id: 'GenerationsRollback', example: { to: '20260115-080000', reason: 'new kernel drops the Wi-Fi card' } });
export type RollbackBody = z.output<typeof rollbackBody>;

/** The summary on the device view (lists stay small: the full inventory is at .../generations). */
export const generationsSummary = z
  .object({
    current: z.string().nullable(),
    booted: z.string().nullable(),
    lastGood: z.string().nullable(),
    trial: z.string().nullable().describe('Id of the generation on trial.'),
    count: z.number().int().describe('Generations on the device (GET /api/v1/devices/{device}/generations lists them).'),
  })
  .meta({ id: 'DeviceGenerationsSummary' });
export type GenerationsSummary = z.output<typeof generationsSummary>;
