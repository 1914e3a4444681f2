import { z } from 'zod';
import { pageQueryShape, pageSchema } from '../http/pagination.js';
import { timestamp } from '../http/schemas.js';

export const tokenRoles = ['admin', 'operator', 'viewer'] as const;
const role = z.enum(tokenRoles, { message: 'must be admin, operator or viewer' });

export const createApiTokenBody = z
  .object({
    name: z.string().trim().min(1, 'must not be empty').max(100, 'at most 100 characters').describe('What the token is for, e.g. "ci-deploy".'),
    role: role.describe('admin: everything; operator: everything but API tokens; viewer: GET only.'),
    expiresInDays: z.number().int('must be a whole number').min(1, 'must be 1-3650').max(3650, 'must be 1-3650').optional().describe('Omit for a token that never expires.'),
  })
  .strict()
  .meta({ id: 'CreateApiToken' });
export type CreateApiTokenBody = z.output<typeof createApiTokenBody>;

export const listApiTokensQuery = z.object({ ...pageQueryShape }).strict();
export type ListApiTokensQuery = z.output<typeof listApiTokensQuery>;

export const apiTokenView = z
  .object({
    id: z.uuid(),
    name: z.string(),
    role,
    prefix: z.string().describe('First characters of the secret, to tell tokens apart.'),
    status: z.enum(['active', 'expired', 'revoked']),
    createdAt: timestamp,
    createdById: z.string().nullable().describe('The API token that created this one (null: created at startup).'),
    expiresAt: timestamp.nullable(),
    lastUsedAt: timestamp.nullable().describe('Updated at most once a minute.'),
    revokedAt: timestamp.nullable(),
  })
  .meta({ id: 'ApiToken' });
export type ApiTokenView = z.output<typeof apiTokenView>;

export const createdApiTokenView = apiTokenView
  .extend({ token: z.string().describe('The secret. Shown only in this response: store it now.') })
  .meta({ id: 'CreatedApiToken' });
export type CreatedApiTokenView = z.output<typeof createdApiTokenView>;

export const apiTokenPage = pageSchema(apiTokenView, 'ApiTokenPage');
