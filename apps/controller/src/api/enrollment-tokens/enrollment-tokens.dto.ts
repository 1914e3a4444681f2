import { z } from 'zod';
import { labelsSchema } from '@ibex/spec';
import { pageQueryShape, pageSchema } from '../http/pagination.js';
import { timestamp } from '../http/schemas.js';

export const createEnrollmentTokenBody = z
  .object({
    description: z.string().trim().max(200, 'at most 200 characters').default('').describe('What or where it is for, e.g. "lab routers".'),
    expiresInHours: z.number().int('must be a whole number').min(1, 'must be 1-8760').max(8760, 'must be 1-8760').default(24),
    maxUses: z
      .number()
      .int('must be a whole number')
      .min(1, 'must be at least 1')
      .max(1_000_000, 'at most 1000000')
      .nullable()
      .default(1)
      .describe('How many devices may enroll with it; null = unlimited until it expires.'),
    labels: labelsSchema.default({}).describe('Labels every device enrolled with this token gets.'),
  })
  .strict()
  .meta({ id: 'CreateEnrollmentToken' });
export type CreateEnrollmentTokenBody = z.output<typeof createEnrollmentTokenBody>;

export const listEnrollmentTokensQuery = z.object({ ...pageQueryShape }).strict();
export type ListEnrollmentTokensQuery = z.output<typeof listEnrollmentTokensQuery>;

export const enrollmentTokenStatuses = ['active', 'expired', 'revoked', 'exhausted'] as const;

export const enrollmentTokenView = z
  .object({
    id: z.uuid(),
    description: z.string(),
    prefix: z.string().describe('First characters of the secret, to tell tokens apart.'),
    labels: z.record(z.string(), z.string()),
    status: z.enum(enrollmentTokenStatuses).describe('revoked, else exhausted (used maxUses times), else expired, else active.'),
    uses: z.number().int(),
    maxUses: z.number().int().nullable().describe('null = unlimited'),
    expiresAt: timestamp,
    createdAt: timestamp,
    createdById: z.string().nullable(),
    revokedAt: timestamp.nullable(),
  })
  .meta({ id: 'EnrollmentToken' });
export type EnrollmentTokenView = z.output<typeof enrollmentTokenView>;

export const createdEnrollmentTokenView = enrollmentTokenView
  .extend({
    token: z.string().describe('The secret. Shown only in this response.'),
    enrollCommand: z.string().describe('Run on the device: `ibex-agent enroll --controller grpc://HOST:PORT --token ...`'),
  })
  .meta({ id: 'CreatedEnrollmentToken' });
export type CreatedEnrollmentTokenView = z.output<typeof createdEnrollmentTokenView>;

export const enrollmentTokenPage = pageSchema(enrollmentTokenView, 'EnrollmentTokenPage');
