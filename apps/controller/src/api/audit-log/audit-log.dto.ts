import { z } from 'zod';
import { pageQueryShape, pageSchema } from '../http/pagination.js';
import { timeQuery, timestamp } from '../http/schemas.js';

export const listAuditQuery = z
  .object({
    action: z
      .string()
      .regex(/^[a-z_.]+(\.\*)?$/, 'must be an action such as device.revoke, or a prefix such as device.*')
      .optional()
      .describe('Exact action (`device.revoke`) or a prefix (`device.*`).'),
    targetType: z.string().min(1).max(64).optional(),
    targetId: z.string().min(1).max(128).optional(),
    actorId: z.string().min(1).max(128).optional(),
    since: timeQuery.optional().describe('At or after this time (ISO 8601).'),
    until: timeQuery.optional().describe('Before this time (ISO 8601).'),
    ...pageQueryShape,
  })
  .strict();
export type ListAuditQuery = z.output<typeof listAuditQuery>;

export const auditEventView = z
  .object({
    id: z.string().describe('Increasing; newer events have larger ids.'),
    at: timestamp,
    actor: z.object({
      type: z.string().describe('api_token | device | system'),
      id: z.string().nullable(),
      name: z.string().nullable(),
    }),
    action: z.string().describe('Dotted verb: api_token.create, device.revoke, job.cancel, ...'),
    target: z.object({ type: z.string(), id: z.string() }).nullable(),
    data: z.record(z.string(), z.unknown()),
    requestId: z.string().nullable(),
  })
  .meta({ id: 'AuditEvent' });
export type AuditEventView = z.output<typeof auditEventView>;

export const auditPage = pageSchema(auditEventView, 'AuditEventPage');
