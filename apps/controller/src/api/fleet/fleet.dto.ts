import { z } from 'zod';
import { timestamp } from '../http/schemas.js';

const count = z.number().int();

export const activeJobStatuses = ['queued', 'delivered', 'running'] as const;

export const fleetSummaryView = z
  .object({
    devices: z.object({ total: count, online: count, offline: count, revoked: count }).describe('Devices by status.'),
    sync: z
      .object({ none: count, in_sync: count, pending: count, drifted: count, failed: count, unsupported: count })
      .describe('Devices that are not revoked, by `sync` (GET /api/v1/devices?sync=drifted lists them).'),
    jobs: z.object({ queued: count, delivered: count, running: count }).describe('Unfinished jobs by status.'),
    at: timestamp.describe('When the counts were taken.'),
  })
  .meta({ id: 'FleetSummary' });
export type FleetSummaryView = z.output<typeof fleetSummaryView>;
