import { z } from 'zod';
import { describeIssues, factsSchema, fieldIssues, formatPath, generationsInventorySchema, type FieldIssue, type GenerationsInventory } from '@ibex/spec';
import { JobOutcome, SectionState } from '@ibex/proto';
import { ValidationFailed } from '../common/errors.js';
import { unstorableText } from '../common/storable-text.js';
import { deviceNameSchema } from './enroll/device-name.js';

// Edge validation of what agents send (ts-proto objects: camelCase, int64 as numbers, proto
// defaults filled in). Errors name the field the way the .proto spells it (snake_case).

const INT32_MAX = 2_147_483_647;
const revision = z.number().int('must be a whole number').min(0, 'must not be negative').max(INT32_MAX, 'is too large');
const nonNegative = z.number().int('must be a whole number').min(0, 'must not be negative');
const required = (max: number) => z.string().min(1, 'is required').max(max, `must be at most ${max} characters`);
const text = (max: number) => z.string().max(max, `must be at most ${max} characters`);
const uuidOf = (what: string) => z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i, `must be ${what} (UUID)`);
const uuid = uuidOf('a job id');
const jsonText = (max: number) =>
  text(max).refine((s) => {
    if (s === '') return true;
    try {
      // An escaped NUL (\u0000) is valid JSON that Postgres cannot store parsed (jsonb).
      return unstorableText(JSON.parse(s)).length === 0;
    } catch {
      return false;
    }
  }, 'must be empty or valid JSON without NUL characters (\\u0000) or unpaired surrogates');

/**
 * `generations_json`: empty (no generations layout) or the JSON of a GenerationsInventory. The
 * inventory's own field paths go into the message (they are JSON keys, not proto fields), so the
 * error names `facts.generations_json` and then what inside it is wrong.
 */
const generationsJson = z
  .string()
  .max(1024 * 1024, 'must be at most 1048576 characters')
  .transform((s, ctx): GenerationsInventory | undefined => {
    if (s === '') return undefined;
    let value: unknown;
    try {
      value = JSON.parse(s);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: `must be empty or valid JSON (${(err as Error).message})` });
      return z.NEVER;
    }
    const r = generationsInventorySchema.safeParse(value);
    if (!r.success) {
      ctx.addIssue({ code: 'custom', message: `is not a generations inventory: ${describeIssues(fieldIssues(r.error))}` });
      return z.NEVER;
    }
    return r.data;
  });

/** Proto `Facts` -> the facts the controller stores (`factsSchema`): `generations_json` parsed into `generations`. */
const protoFactsSchema = factsSchema
  .omit({ generations: true })
  .extend({ generationsJson: generationsJson.optional() })
  .transform(({ generationsJson: generations, ...facts }) => (generations ? { ...facts, generations } : facts));

export const enrollRequestSchema = z.object({
  enrollmentToken: z
    .string()
    .min(1, 'is required')
    .regex(/^ibxe_[A-Za-z0-9]{40}$/, 'must be an enrollment token: ibxe_ followed by 40 letters or digits'),
  name: z.union([z.literal(''), deviceNameSchema]),
  facts: protoFactsSchema.optional(),
  agentVersion: text(64),
  /** PEM PKCS#10; checked (signature, key) by the device CA when present. */
  csrPem: text(16 * 1024),
});
export type EnrollInput = z.output<typeof enrollRequestSchema>;

export const helloSchema = z.object({
  agentVersion: text(64),
  facts: protoFactsSchema.optional(),
  lastAppliedRevision: revision,
  lastReceivedRevision: revision,
  unfinishedJobs: z
    .array(z.object({ jobId: text(64), attempt: nonNegative, phase: z.enum(['accepted', 'running', 'finished'], 'must be accepted, running or finished') }))
    .max(10_000, 'at most 10000 entries'),
  bootId: text(128),
});
export type HelloInput = z.output<typeof helloSchema>;

export const renewCertificateSchema = z.object({ csrPem: text(16 * 1024).refine((v) => v.length > 0, 'is required: a PEM certificate request for the new key pair') });

export const heartbeatSchema = z.object({ seq: nonNegative, sentAtMs: nonNegative });

export const factsReportSchema = z.object({ facts: protoFactsSchema.optional().refine((f) => f !== undefined, 'is required') });

/** Proto section states as the controller stores them (libs/spec sectionStates). */
export const sectionStateNames = {
  [SectionState.SECTION_STATE_IN_SYNC]: 'in_sync',
  [SectionState.SECTION_STATE_APPLYING]: 'applying',
  [SectionState.SECTION_STATE_FAILED]: 'failed',
  [SectionState.SECTION_STATE_DRIFTED]: 'drifted',
  [SectionState.SECTION_STATE_UNSUPPORTED]: 'unsupported',
  [SectionState.SECTION_STATE_REVERTED]: 'reverted',
} as const;

export const stateReportSchema = z.object({
  reportId: required(200),
  revision: revision.min(1, 'must be a desired revision (1 or more)'),
  sections: z
    .array(
      z.object({
        section: required(64),
        state: z
          .number()
          .refine((s): s is keyof typeof sectionStateNames => Object.hasOwn(sectionStateNames, s), 'must be a SectionState other than SECTION_STATE_UNSPECIFIED')
          .transform((s) => sectionStateNames[s as keyof typeof sectionStateNames]),
        error: text(8192),
        detailJson: jsonText(256 * 1024),
        observedAtMs: nonNegative,
      }),
    )
    .max(64, 'at most 64 sections'),
});
export type StateReportInput = z.output<typeof stateReportSchema>;

const outcomes = [JobOutcome.JOB_OUTCOME_SUCCEEDED, JobOutcome.JOB_OUTCOME_FAILED, JobOutcome.JOB_OUTCOME_CANCELLED, JobOutcome.JOB_OUTCOME_REJECTED];

const jobResultSchema = z.object({
  outcome: z.number().refine((o) => outcomes.includes(o), 'must be a JobOutcome other than JOB_OUTCOME_UNSPECIFIED'),
  // Not validated as JSON here: bad output fails the job (protocol.md), it does not end the stream.
  outputJson: text(1024 * 1024),
  error: text(16 * 1024),
  retryable: z.boolean(),
  finishedAtMs: nonNegative,
});

const logLinesSchema = (max: number) =>
  z
    .array(z.object({ tsMs: nonNegative, level: z.enum(['debug', 'info', 'warn', 'error'], 'must be debug, info, warn or error'), text: text(16 * 1024) }))
    .max(max, `at most ${max} lines`);

export const jobUpdateSchema = z.object({
  updateId: required(200),
  jobId: uuid,
  attempt: nonNegative.min(1, 'must be 1 or more').max(INT32_MAX, 'is too large'),
  update: z.discriminatedUnion(
    '$case',
    [
      z.object({ $case: z.literal('started'), value: z.object({ startedAtMs: nonNegative }) }),
      z.object({ $case: z.literal('progress'), value: z.object({ percent: nonNegative.max(100, 'must be 0-100'), message: text(1024) }) }),
      z.object({
        $case: z.literal('log'),
        value: z.object({ lines: logLinesSchema(1000) }),
      }),
      z.object({ $case: z.literal('result'), value: jobResultSchema }),
    ],
    { error: 'is required: one of started, progress, log or result' },
  ),
});
export type JobUpdateInput = z.output<typeof jobUpdateSchema>;

/**
 * A job run at the device's console. The type is not checked against this controller's job
 * types (a newer agent may have more; refusing would end the stream and the agent would re-send
 * it for ever), only its shape; params and output are JSON text the audit entry keeps parsed.
 */
export const localChangeSchema = z.object({
  changeId: uuidOf('a change id'),
  type: required(64).regex(/^[a-z][A-Za-z0-9]*(\.[a-z][A-Za-z0-9]*)*$/, 'must be a job type such as generations.upgrade'),
  paramsJson: jsonText(1024 * 1024),
  startedAtMs: nonNegative,
  result: jobResultSchema.optional().refine((r) => r !== undefined, 'is required'),
  user: text(256),
  log: logLinesSchema(100),
});
export type LocalChangeInput = z.output<typeof localChangeSchema>;

/** `osRelease` -> `os_release`, so errors name fields as agent.proto does. */
export function protoPath(path: string): string {
  return path.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
}

/**
 * Parses an inbound message or throws ValidationFailed naming each bad field. A oneof's
 * `{$case, value}` wrapper is named by its case, as in the .proto (`update.value.percent` ->
 * `progress.percent`).
 */
export function parseAgentInput<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  // A NUL character reached Postgres and ended the stream with INTERNAL (found by the gRPC fuzzer).
  const text = unstorableText(value).map((i) => ({ path: protoPath(oneofPath(formatPath(i.path), value)), message: i.message }));
  if (text.length) throw new ValidationFailed(`invalid ${what}: ${describeIssues(text)}`, text);
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issues: FieldIssue[] = fieldIssues(r.error).map((i) => ({ path: protoPath(oneofPath(i.path, value)), message: i.message }));
  throw new ValidationFailed(`invalid ${what}: ${describeIssues(issues)}`, issues);
}

function oneofPath(path: string, value: unknown): string {
  return path.replace(/^(\w+)\.(value|\$case)\b/, (whole, field: string) => {
    const oneof = (value as Record<string, { $case?: unknown } | undefined> | null)?.[field];
    return typeof oneof?.$case === 'string' ? oneof.$case : field;
  });
}
