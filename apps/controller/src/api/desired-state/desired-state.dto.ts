import { z } from 'zod';
import { desiredStateSchema, sectionStates } from '@ibex/spec';
import { pageQueryShape, pageSchema } from '../http/pagination.js';
import { timestamp } from '../http/schemas.js';

export const putDesiredStateBody = z
  .object({
    spec: desiredStateSchema.meta({ id: 'DesiredStateSpecInput' }).describe('The whole desired state, one key per section; sections left out are no longer managed.'),
    message: z.string().trim().max(500, 'at most 500 characters').default('').describe('Why, for the revision history.'),
    ifMatchRevision: z
      .number()
      .int('must be a whole number')
      .min(0, 'must be 0 or more')
      .optional()
      .describe('Write only if the current revision is this one, else 409 (0: only if there is none yet). Same as the If-Match header.'),
  })
  .strict()
  .meta({ id: 'PutDesiredState' });
export type PutDesiredStateBody = z.output<typeof putDesiredStateBody>;

export const revisionParam = z.coerce.number({ message: 'must be a revision number' }).int('must be a whole number').min(1, 'must be 1 or more');

export const listRevisionsQuery = z.object({ ...pageQueryShape }).strict();
export type ListRevisionsQuery = z.output<typeof listRevisionsQuery>;

const revisionFields = {
  deviceId: z.uuid(),
  revision: z.number().int().describe('1, 2, ...; 0 means no desired state yet.'),
  message: z.string(),
  createdBy: z.string().nullable().describe('Id of the API token that wrote it.'),
  createdAt: timestamp.nullable(),
};

export const desiredRevisionView = z
  .object({ ...revisionFields, spec: desiredStateSchema.meta({ id: 'DesiredStateSpec' }).nullable().describe('As stored, defaults filled in; null at revision 0.') })
  .meta({ id: 'DesiredRevision' });
export type DesiredRevisionView = z.output<typeof desiredRevisionView>;

export const revisionSummaryView = z.object(revisionFields).meta({ id: 'DesiredRevisionSummary' });
export type RevisionSummaryView = z.output<typeof revisionSummaryView>;
export const revisionPage = pageSchema(revisionSummaryView, 'DesiredRevisionPage');

export const sectionStateView = z
  .object({
    section: z.string(),
    state: z.enum(sectionStates).describe('pending: not reported for this revision yet; unsupported: the agent has no capability for it.'),
    revision: z.number().int().describe('The revision this report is about.'),
    error: z.string().nullable().describe('Why it failed or was reverted.'),
    detail: z.unknown().nullable(),
    observedAt: timestamp,
  })
  .meta({ id: 'SectionState' });

export const deviceStateView = z
  .object({
    deviceId: z.uuid(),
    deviceName: z.string(),
    desiredRevision: z.number().int(),
    receivedRevision: z.number().int(),
    appliedRevision: z.number().int(),
    inSync: z.boolean().describe('The agent applied the latest revision and every section is in_sync (unsupported, drifted, failed... are not).'),
    sections: z.array(sectionStateView),
  })
  .meta({ id: 'DeviceState' });
export type DeviceStateView = z.output<typeof deviceStateView>;
