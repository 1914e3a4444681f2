import { z } from 'zod';
import { type JobType, jobTypeNames } from '@ibex/spec';
import { JobStatus } from '../../generated/prisma/client.js';
import { pageQueryShape, pageSchema } from '../http/pagination.js';
import { timestamp } from '../http/schemas.js';

const jobType = z.enum(jobTypeNames as [JobType, ...JobType[]], { message: `must be one of ${jobTypeNames.join(', ')} (see GET /api/v1/job-types)` });
const jobStatus = z.enum(JobStatus);
const whole = (min: number, max: number) => z.number().int('must be a whole number').min(min, `must be ${min}-${max}`).max(max, `must be ${min}-${max}`);

export const createJobBody = z
  .object({
    type: jobType,
    params: z.record(z.string(), z.unknown()).default({}).describe('Checked against the parameters of `type` (GET /api/v1/job-types).'),
    timeoutSeconds: whole(1, 86_400).optional().describe('Per attempt, from delivery; default per job type.'),
    expiresInSeconds: whole(1, 30 * 86_400).optional().describe('Not delivered by then (device offline): the job expires. Default IBEX_JOB_DEFAULT_EXPIRY_MS.'),
    maxAttempts: whole(1, 10).optional().describe('Attempts after transient failures or timeouts (retry-safe types only); default per job type.'),
  })
  .strict()
  .meta({ id: 'CreateJob' });
export type CreateJobBody = z.output<typeof createJobBody>;

const statusList = z
  .string()
  .transform((s, ctx) => {
    const out: JobStatus[] = [];
    for (const part of s.split(',').map((p) => p.trim())) {
      const r = jobStatus.safeParse(part);
      if (r.success) out.push(r.data);
      else ctx.addIssue({ code: 'custom', message: `"${part}" is not a job status (${Object.values(JobStatus).join(', ')})` });
    }
    return out;
  })
  .describe('One status or several, comma-separated: `queued,delivered,running`.');

export const listJobsQuery = z
  .object({
    deviceId: z.uuid('must be a device id (uuid)').optional(),
    device: z.string().min(1).max(253).optional().describe('Device id or name.'),
    status: statusList.optional(),
    type: z.string().min(1).max(100).optional(),
    ...pageQueryShape,
  })
  .strict();
export type ListJobsQuery = z.output<typeof listJobsQuery>;

export const jobLogsQuery = z.object({ ...pageQueryShape }).strict();
export type JobLogsQuery = z.output<typeof jobLogsQuery>;

export const jobView = z
  .object({
    id: z.uuid(),
    deviceId: z.uuid(),
    type: z.string(),
    params: z.record(z.string(), z.unknown()),
    status: jobStatus,
    attempt: z.number().int().describe('Current attempt; 0 before the first delivery.'),
    maxAttempts: z.number().int(),
    timeoutSeconds: z.number(),
    progress: z.object({ percent: z.number().int().nullable(), message: z.string().nullable() }),
    result: z.unknown().nullable().describe('Output of a succeeded job (shape per job type).'),
    error: z.string().nullable(),
    cancelRequestedAt: timestamp.nullable(),
    createdBy: z.string().nullable().describe('Id of the API token that created it.'),
    createdAt: timestamp,
    expiresAt: timestamp,
    notBefore: timestamp.nullable().describe('A retry waits until then.'),
    deliveredAt: timestamp.nullable(),
    startedAt: timestamp.nullable(),
    finishedAt: timestamp.nullable(),
  })
  .meta({ id: 'Job' });
export type JobView = z.output<typeof jobView>;

export const logLineView = z
  .object({
    attempt: z.number().int(),
    at: timestamp.describe('When the agent logged it.'),
    level: z.string(),
    text: z.string(),
  })
  .meta({ id: 'JobLogLine' });
export type LogLineView = z.output<typeof logLineView>;

export const jobDetailView = jobView
  .extend({
    logs: z.array(logLineView).describe('The latest log lines (GET .../logs pages through all of them).'),
    logsTruncated: z.boolean().describe('Older lines exist than those in `logs`.'),
  })
  .meta({ id: 'JobDetail' });
export type JobDetailView = z.output<typeof jobDetailView>;

export const jobLogsView = z
  .object({
    lines: z.array(logLineView),
    nextCursor: z.string().nullable().describe('Pass as `cursor` to continue (also to follow new lines later); null when the job has no log yet.'),
    more: z.boolean().describe('More lines exist right now after this page.'),
  })
  .meta({ id: 'JobLogs' });
export type JobLogsView = z.output<typeof jobLogsView>;

export const jobPage = pageSchema(jobView, 'JobPage');

export const jobTypeView = z
  .object({
    type: z.string(),
    description: z.string(),
    retrySafe: z.boolean(),
    defaultTimeoutSeconds: z.number(),
    defaultMaxAttempts: z.number().int(),
    params: z.record(z.string(), z.unknown()).describe('JSON Schema of `params`.'),
  })
  .meta({ id: 'JobType' });
export const jobTypeList = z.object({ items: z.array(jobTypeView) }).meta({ id: 'JobTypeList' });
export type JobTypeListView = z.output<typeof jobTypeList>;
