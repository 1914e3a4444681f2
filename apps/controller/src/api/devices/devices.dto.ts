import { z } from 'zod';
import { factsSchema, labelKeySchema, labelValueSchema, parseSelector, type SelectorTerm } from '@ibex/spec';
import { pageQueryShape, pageSchema } from '../http/pagination.js';
import { timestamp } from '../http/schemas.js';
import { generationsSummary } from '../generations/generations.dto.js';

export const deviceStatuses = ['online', 'offline', 'revoked'] as const;
export type DeviceStatus = (typeof deviceStatuses)[number];

/** How far a device is from its desired state, worst first wins (device-filter.ts deviceSyncSql). */
export const deviceSyncs = ['none', 'in_sync', 'pending', 'drifted', 'failed', 'unsupported'] as const;
export type DeviceSync = (typeof deviceSyncs)[number];
const syncDescription =
  'none: no desired state; failed: a section failed or was reverted; drifted: a section was changed on the device; ' +
  'unsupported: the agent cannot manage a section; pending: not applied yet; in_sync: applied and every section in sync.';

const selector = z
  .string()
  .max(4096, 'at most 4096 characters')
  .transform((text, ctx): SelectorTerm[] => {
    try {
      return parseSelector(text);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
  })
  .describe('Label selector: comma-separated `key=value`, `key!=value`, `key` (has the label), `!key` (does not). All terms must match.');

export const listDevicesQuery = z
  .object({
    selector: selector.optional(),
    status: z.enum(deviceStatuses, { message: 'must be online, offline or revoked' }).optional(),
    sync: z.enum(deviceSyncs, { message: `must be one of ${deviceSyncs.join(', ')}` }).optional().describe(syncDescription),
    ...pageQueryShape,
  })
  .strict();
export type ListDevicesQuery = z.output<typeof listDevicesQuery>;

export const patchDeviceBody = z
  .object({
    labels: z
      .record(labelKeySchema, labelValueSchema.nullable())
      .describe('Merged into the device labels: a string sets the label, null removes it; labels not named stay.'),
  })
  .strict()
  .meta({ id: 'PatchDevice' });
export type PatchDeviceBody = z.output<typeof patchDeviceBody>;

export const deviceView = z
  .object({
    id: z.uuid(),
    name: z.string(),
    labels: z.record(z.string(), z.string()),
    status: z.enum(deviceStatuses).describe('online: stream open and seen within IBEX_OFFLINE_AFTER_MS; revoked wins over both.'),
    sync: z.enum(deviceSyncs).describe(syncDescription),
    lastSeenAt: timestamp.nullable(),
    connectedAt: timestamp.nullable().describe('When the current stream opened; null when none is open.'),
    enrolledAt: timestamp,
    revokedAt: timestamp.nullable(),
    agentVersion: z.string().nullable(),
    facts: factsSchema
      .omit({ generations: true })
      .meta({ id: 'DeviceFacts' })
      .nullable()
      .describe('Last facts the agent reported (null before it did). The generations inventory is summarised in `generations`.'),
    generations: generationsSummary
      .nullable()
      .describe('Summary of the btrfs generations the agent last reported (null when none); GET /api/v1/devices/{device}/generations has them all.'),
    desiredRevision: z.number().int().describe('Latest desired-state revision (0: none yet).'),
    receivedRevision: z.number().int().describe('Highest revision the agent said it received.'),
    appliedRevision: z.number().int().describe('Highest revision the agent applied in full.'),
  })
  .meta({ id: 'Device' });
export type DeviceView = z.output<typeof deviceView>;

export const devicePage = pageSchema(deviceView, 'DevicePage');
