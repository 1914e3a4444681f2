import { JobOutcome } from '@ibex/proto';
import { describeIssues, fieldIssues, formatPath, isJobType, jobTypes, type Facts, type GenerationsInventory } from '@ibex/spec';
import type { Job, JobStatus, Prisma } from '../../generated/prisma/client.js';
import type { JobUpdateInput } from '../agent-messages.schema.js';
import { unstorableText } from '../../common/storable-text.js';

// What a job update or a timer does to a job row, as pure functions of (row, event, now).
// Callers apply the change with a conditional UPDATE on (id, attempt, status), so a change
// computed from a row that has moved on since is simply not applied.

/** The statuses in which an attempt is with the agent. */
export const ACTIVE_STATUSES: JobStatus[] = ['delivered', 'running'];
export const MAX_BACKOFF_MS = 5 * 60_000;

export interface JobChange {
  data: Prisma.JobUpdateManyMutationInput;
  /** A retry was scheduled: kick the device at this time. */
  retryAt?: Date;
  /** facts.collect succeeded: the device's facts. */
  facts?: Facts;
  /** generations.rollback succeeded: the device's generations inventory after the switch. */
  generations?: GenerationsInventory;
}

type JobRow = Pick<Job, 'type' | 'status' | 'attempt' | 'maxAttempts' | 'cancelRequestedAt'>;

/** 5 s * 2^(attempt-1), at most 5 min (the base is IBEX_JOB_RETRY_BACKOFF_MS). */
export function retryBackoffMs(attempt: number, baseMs: number): number {
  return Math.min(baseMs * 2 ** Math.max(0, attempt - 1), MAX_BACKOFF_MS);
}

/** A failed attempt is retried only when transient, safe for its type, wanted and allowed. */
export function mayRetry(job: JobRow, retryable: boolean): boolean {
  return retryable && !job.cancelRequestedAt && isJobType(job.type) && jobTypes[job.type].retrySafe && job.attempt < job.maxAttempts;
}

/** The attempt failed (agent result or timeout): back to `queued` after a backoff, or `terminal`. */
export function failAttempt(job: JobRow, error: string, retryable: boolean, terminal: 'failed' | 'timed_out', now: Date, backoffBaseMs: number): JobChange {
  if (mayRetry(job, retryable)) {
    const retryAt = new Date(now.getTime() + retryBackoffMs(job.attempt, backoffBaseMs));
    return { data: { status: 'queued', notBefore: retryAt, error, progressPercent: null, progressMessage: null }, retryAt };
  }
  return { data: { status: terminal, finishedAt: now, error } };
}

/** The change a JobUpdate for the job's current attempt makes, or null for none. */
export function applyJobUpdate(job: JobRow, update: JobUpdateInput['update'], now: Date, backoffBaseMs: number): JobChange | null {
  const startNow = job.status === 'delivered' ? { status: 'running' as const, startedAt: now } : {};
  switch (update.$case) {
    case 'started':
      return job.status === 'delivered' ? { data: startNow } : null;
    case 'progress':
      return { data: { ...startNow, progressPercent: update.value.percent, progressMessage: update.value.message || null } };
    case 'log':
      return null;
    case 'result':
      return applyResult(job, update.value, now, backoffBaseMs);
  }
}

function applyResult(job: JobRow, result: Extract<JobUpdateInput['update'], { $case: 'result' }>['value'], now: Date, backoffBaseMs: number): JobChange {
  switch (result.outcome) {
    case JobOutcome.JOB_OUTCOME_SUCCEEDED: {
      const output = checkOutput(job.type, result.outputJson);
      if (!output.ok) return { data: { status: 'failed', finishedAt: now, error: output.error } };
      // Done is 100 %, whatever the agent last reported (it may never send a final progress);
      // a failure or a cancellation keeps the last value, which shows how far it got.
      const change: JobChange = { data: { status: 'succeeded', finishedAt: now, error: null, progressPercent: 100, result: output.value as Prisma.InputJsonValue } };
      if (job.type === 'facts.collect') change.facts = output.value as Facts;
      if (job.type === 'generations.rollback') change.generations = output.value as GenerationsInventory;
      return change;
    }
    case JobOutcome.JOB_OUTCOME_CANCELLED:
      return { data: { status: 'cancelled', finishedAt: now, error: result.error || null } };
    case JobOutcome.JOB_OUTCOME_REJECTED:
      return { data: { status: 'rejected', finishedAt: now, error: result.error || 'rejected by the agent' } };
    default:
      return failAttempt(job, result.error || 'the agent reported a failure without a message', result.retryable, 'failed', now, backoffBaseMs);
  }
}

/** Parses and validates a job's output with its type's schema (any JSON for unknown types). */
export function checkOutput(type: string, outputJson: string): { ok: true; value: unknown } | { ok: false; error: string } {
  let value: unknown;
  try {
    value = outputJson === '' ? null : JSON.parse(outputJson);
  } catch (err) {
    return { ok: false, error: `invalid output: output_json is not valid JSON (${(err as Error).message})` };
  }
  const [bad] = unstorableText(value);
  if (bad) return { ok: false, error: `invalid output: output_json${bad.path.length ? ` at ${formatPath(bad.path)}` : ''} ${bad.message}` };
  if (!isJobType(type)) return { ok: true, value };
  const r = jobTypes[type].output.safeParse(value);
  if (!r.success) return { ok: false, error: `invalid output for ${type}: ${describeIssues(fieldIssues(r.error, 'output'))}` };
  return { ok: true, value: r.data };
}

export const outcomeNames: Record<number, string> = {
  [JobOutcome.JOB_OUTCOME_SUCCEEDED]: 'succeeded',
  [JobOutcome.JOB_OUTCOME_FAILED]: 'failed',
  [JobOutcome.JOB_OUTCOME_CANCELLED]: 'cancelled',
  [JobOutcome.JOB_OUTCOME_REJECTED]: 'rejected',
};

/** What the job_event row keeps of an update (the output parsed when it is JSON). */
export function eventData(update: JobUpdateInput['update']): Prisma.InputJsonValue {
  if (update.$case !== 'result') return update.value as Prisma.InputJsonValue;
  const { outputJson, ...rest } = update.value;
  let output: unknown = null;
  if (outputJson) {
    try {
      output = JSON.parse(outputJson);
    } catch {
      output = { invalidJson: outputJson.slice(0, 4096) };
    }
    // Kept as the text (its escapes are storable) when the parsed value is not (an escaped NUL).
    if (unstorableText(output).length) output = { invalidJson: outputJson.slice(0, 4096) };
  }
  return { ...rest, outcome: outcomeNames[rest.outcome] ?? String(rest.outcome), output } as Prisma.InputJsonValue;
}
