import { z } from 'zod';
import { desiredStateSchema, generationsUpgradeParamsSchema } from '@ibex/spec';
import { pageQueryShape, pageSchema } from '../api/http/pagination.js';
import { timestamp } from '../api/http/schemas.js';

const whole = (min: number, max: number) => z.number().int('must be a whole number').min(min, `must be ${min}-${max}`).max(max, `must be ${min}-${max}`);
const isoTime = z.iso.datetime({ offset: true, message: 'must be an ISO 8601 timestamp such as 2026-12-06T02:00:00Z' });

export const rolloutTarget = z
  .discriminatedUnion('kind', [
    z.object({ kind: z.literal('selector'), selector: z.string().min(1).max(2000).describe('Label selector: `site=lab,tier!=core`.') }).strict(),
    z.object({ kind: z.literal('devices'), devices: z.array(z.string().min(1).max(253)).min(1).max(100_000).describe('Device ids or names.') }).strict(),
    z.object({ kind: z.literal('all') }).strict(),
  ])
  .meta({ id: 'RolloutTarget' });

/**
 * What each device gets. A generation upgrade takes the image the generations.upgrade job
 * takes today (path or url + sha256); once the artifact store lands, `upgrade.from` gains an
 * artifact reference and rollouts resolve it per device.
 */
export const rolloutPayload = z
  .discriminatedUnion('kind', [
    z
      .object({
        kind: z.literal('desired_state'),
        spec: desiredStateSchema.describe('The new desired state, written as the next revision of every targeted device.'),
        message: z.string().max(1000).default(''),
      })
      .strict(),
    z.object({ kind: z.literal('generation_upgrade'), upgrade: generationsUpgradeParamsSchema.describe('Parameters of the generations.upgrade job.') }).strict(),
    z
      .object({
        kind: z.literal('generation_rollback'),
        toDate: isoTime.optional().describe('Back to the newest complete, not-bad generation created at or before this time.'),
        toGeneration: z.string().min(1).max(128).optional().describe('Back to the generation with this id.'),
      })
      .strict()
      .superRefine((v, ctx) => {
        if ((v.toDate === undefined) === (v.toGeneration === undefined)) ctx.addIssue({ code: 'custom', path: ['toDate'], message: 'give exactly one of toDate or toGeneration' });
      }),
  ])
  .meta({ id: 'RolloutPayload' });
export type RolloutPayload = z.output<typeof rolloutPayload>;

const groupSize = z.union([z.object({ count: whole(1, 1_000_000) }).strict(), z.object({ percent: z.number().gt(0, 'must be more than 0').max(100, 'must be at most 100') }).strict()], {
  error: 'must be {count: N} or {percent: P}',
});

export const rolloutStrategy = z
  .object({
    canary: groupSize.optional().describe('A first group that must succeed before the waves.'),
    waves: z
      .discriminatedUnion('kind', [
        z.object({ kind: z.literal('none') }).strict(),
        z.object({ kind: z.literal('fixed'), sizes: z.array(groupSize).min(1).max(100) }).strict(),
        z.object({ kind: z.literal('equal'), count: whole(1, 100) }).strict(),
        z.object({ kind: z.literal('exponential'), first: whole(1, 1_000_000), factor: z.number().min(1.1, 'must be at least 1.1').max(100) }).strict(),
      ])
      .default({ kind: 'none' }),
    maxInProgress: whole(1, 1_000_000).nullable().default(null).describe('Devices with a job under way at once; null: no limit.'),
    successThresholdPercent: z.number().min(0).max(100).default(100).describe('Share of a wave that must succeed before the next starts.'),
    errorThreshold: z
      .object({ percent: z.number().gt(0).max(100), minFinished: whole(1, 1_000_000).default(1) })
      .strict()
      .optional()
      .describe('Abort once this share of the finished devices failed (counted from minFinished finished devices on).'),
    approval: z.enum(['none', 'after_canary', 'every_wave']).default('none'),
  })
  .strict()
  .meta({ id: 'RolloutStrategy' });
export type RolloutStrategyBody = z.output<typeof rolloutStrategy>;

export const rolloutStart = z
  .discriminatedUnion('kind', [
    z.object({ kind: z.literal('now') }).strict(),
    z.object({ kind: z.literal('at'), at: isoTime }).strict(),
    z
      .object({
        kind: z.literal('window'),
        cron: z.string().min(1).max(200).describe('When the maintenance window opens: `0 2 * * 0` (Sundays 02:00).'),
        timeZone: z.string().min(1).max(100).default('UTC').describe('IANA time zone of `cron`: `Europe/Berlin`.'),
        durationMinutes: whole(1, 7 * 24 * 60),
      })
      .strict(),
  ])
  .meta({ id: 'RolloutStart' });
export type RolloutStart = z.output<typeof rolloutStart>;

const rolloutFields = {
  name: z.string().min(1).max(200),
  target: rolloutTarget,
  payload: rolloutPayload,
  strategy: rolloutStrategy.default({ waves: { kind: 'none' }, maxInProgress: null, successThresholdPercent: 100, approval: 'none' }),
  deadline: isoTime.optional().describe('Devices without their job by then are skipped.'),
  includeNewDevices: z.boolean().default(false).describe('Devices that join the selector while the rollout runs get it too (in the last wave).'),
  autoRollback: z.boolean().default(false).describe('On abort, roll back the devices already changed.'),
};

export const createRolloutBody = z
  .object({ ...rolloutFields, start: rolloutStart.default({ kind: 'now' }) })
  .strict()
  .meta({ id: 'CreateRollout' });
export type CreateRolloutBody = z.output<typeof createRolloutBody>;

export const createRolloutQuery = z
  .object({
    dryRun: z.enum(['true', 'false'], { message: 'must be true or false' }).default('false').transform((v) => v === 'true'),
    wait: z.coerce.number().int().min(0).max(120).default(30).describe('Dry run: seconds to wait for the online devices to answer their plan.'),
  })
  .strict();
export type CreateRolloutQuery = z.output<typeof createRolloutQuery>;

export const listRolloutsQuery = z.object({ ...pageQueryShape }).strict();
export type ListRolloutsQuery = z.output<typeof listRolloutsQuery>;

export const rolloutStatus = z.enum(['scheduled', 'running', 'paused', 'waiting_approval', 'rolling_back', 'succeeded', 'failed', 'aborted']);
export const targetState = z.enum(['pending', 'in_progress', 'succeeded', 'failed', 'rolled_back', 'skipped']);
const counts = z.object(Object.fromEntries(targetState.options.map((s) => [s, z.number().int()])) as Record<z.infer<typeof targetState>, z.ZodNumber>);

export const waveView = z
  .object({
    index: z.number().int(),
    name: z.string(),
    requiresApproval: z.boolean(),
    startedAt: timestamp.nullable(),
    finishedAt: timestamp.nullable(),
    total: z.number().int(),
    counts,
  })
  .meta({ id: 'RolloutWave' });

export const rolloutView = z
  .object({
    id: z.uuid(),
    name: z.string(),
    status: rolloutStatus,
    reason: z.string().nullable().describe('Why it stands where it stands (waiting for approval, aborted by a threshold...).'),
    target: rolloutTarget,
    payload: z.record(z.string(), z.unknown()),
    strategy: z.record(z.string(), z.unknown()),
    start: z.record(z.string(), z.unknown()),
    deadline: timestamp.nullable(),
    includeNewDevices: z.boolean(),
    autoRollback: z.boolean(),
    approvedThrough: z.number().int(),
    scheduleId: z.uuid().nullable(),
    createdBy: z.string().nullable(),
    createdAt: timestamp,
    startedAt: timestamp.nullable(),
    finishedAt: timestamp.nullable(),
    total: z.number().int(),
    counts,
    waves: z.array(waveView),
  })
  .meta({ id: 'Rollout' });
export type RolloutView = z.output<typeof rolloutView>;
export const rolloutPage = pageSchema(rolloutView, 'RolloutPage');

export const rolloutTargetView = z
  .object({
    deviceId: z.uuid(),
    deviceName: z.string(),
    wave: z.number().int(),
    state: targetState,
    reason: z.string().nullable(),
    attempts: z.number().int(),
    jobId: z.uuid().nullable(),
    rollbackJobId: z.uuid().nullable(),
    startedAt: timestamp.nullable(),
    finishedAt: timestamp.nullable(),
  })
  .meta({ id: 'RolloutDevice' });
export const listTargetsQuery = z.object({ state: targetState.optional(), wave: z.coerce.number().int().min(0).optional(), ...pageQueryShape }).strict();
export type ListTargetsQuery = z.output<typeof listTargetsQuery>;
export const rolloutTargetPage = pageSchema(rolloutTargetView, 'RolloutDevicePage');

/** What a device would do, from the existing per-device plan job (state.plan) or its generations inventory. */
export const devicePlanSummary = z
  .object({
    deviceId: z.uuid(),
    deviceName: z.string(),
    online: z.boolean(),
    /** skipped: the rollout would skip it (reason says why); planned: the plan came back; no_answer: no plan within `wait`; offline: not asked. */
    outcome: z.enum(['planned', 'skipped', 'refused', 'no_answer', 'offline']),
    reason: z.string().nullable(),
    /** Per section (desired state) or the generation switch: what would change. */
    changes: z.array(z.object({ section: z.string(), state: z.string(), steps: z.array(z.string()), error: z.string().nullable() })),
    planJobId: z.uuid().nullable(),
  })
  .meta({ id: 'RolloutDevicePlan' });
export type DevicePlanSummary = z.output<typeof devicePlanSummary>;

export const rolloutPreview = z
  .object({
    dryRun: z.literal(true),
    total: z.number().int(),
    skipped: z.number().int(),
    waves: z.array(z.object({ index: z.number().int(), name: z.string(), requiresApproval: z.boolean(), devices: z.array(devicePlanSummary) })),
  })
  .meta({ id: 'RolloutPreview' });
export type RolloutPreview = z.output<typeof rolloutPreview>;

export const createScheduleBody = z
  .object({
    name: z.string().min(1).max(200),
    cron: z.string().min(1).max(200).describe('When a rollout starts: `0 2 * * 0` = Sundays 02:00.'),
    timeZone: z.string().min(1).max(100).default('UTC'),
    rollout: z.object(rolloutFields).strict().describe('The rollout started at each occurrence (as POST /rollouts, without `start`).'),
  })
  .strict()
  .meta({ id: 'CreateSchedule' });
export type CreateScheduleBody = z.output<typeof createScheduleBody>;

export const scheduleView = z
  .object({
    id: z.uuid(),
    name: z.string(),
    cron: z.string(),
    timeZone: z.string(),
    paused: z.boolean(),
    rollout: z.record(z.string(), z.unknown()),
    lastRunAt: timestamp.nullable(),
    nextRunAt: timestamp.nullable(),
    createdAt: timestamp,
  })
  .meta({ id: 'Schedule' });
export type ScheduleView = z.output<typeof scheduleView>;
export const scheduleList = z.object({ items: z.array(scheduleView) }).meta({ id: 'ScheduleList' });
