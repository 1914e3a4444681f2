import { type JobAssignment, type JobCancellation, JobOutcome, type JobResult, type JobUpdate } from '@ibex/proto';
import { type JobType, describeIssues, fieldIssues, isJobType, jobTypeNames, jobTypes } from '@ibex/spec';
import { UsageError, errorMessage, isTransient } from '../common/errors.js';
import { failpoint } from '../common/failpoints.js';
import type { Logger } from '../common/log.js';
import { type JobStore, type UpdateBody, toJobUpdate } from '../journal/job-store.js';
import { type JobContext, JobFailure, type JobHandlers } from './job-handlers.js';

/**
 * What the controller accepts in one JobUpdate (docs/protocol.md, agent-messages.schema.ts): an
 * update over these would end the stream, and a journaled result would be re-sent and refused
 * forever. Longer texts are cut; an output over the bound fails the job instead.
 */
export const MAX_OUTPUT_JSON_CHARS = 1024 * 1024;
export const MAX_TEXT_CHARS = 16 * 1024;
export const MAX_PROGRESS_MESSAGE_CHARS = 1024;

function clip(raw: string, max = MAX_TEXT_CHARS): string {
  // The controller refuses a NUL character (Postgres cannot store it): a command's output may have one.
  const text = raw.replaceAll('\u0000', '\ufffd');
  return text.length <= max ? text : `${text.slice(0, max - 40)}... (cut: ${text.length} characters)`;
}

export const INTERRUPTED_ERROR = 'interrupted: the agent restarted while the job was running';

/**
 * A job's type and params, validated as every job is (an assignment from the controller, a job
 * run at the console): the error is what a REJECTED result says, naming the field.
 */
export function parseJob(type: string, paramsJson: string, agentVersion: string): { ok: true; type: JobType; params: unknown } | { ok: false; error: string } {
  if (!isJobType(type)) return { ok: false, error: `unknown job type "${type}"; this agent (ibex-agent ${agentVersion}) runs: ${jobTypeNames.join(', ')}` };
  let raw: unknown;
  try {
    raw = paramsJson.trim() === '' ? {} : JSON.parse(paramsJson);
  } catch (err) {
    return { ok: false, error: `params: not valid JSON (${errorMessage(err)})` };
  }
  const parsed = jobTypes[type].params.safeParse(raw);
  if (!parsed.success) return { ok: false, error: `invalid params: ${describeIssues(fieldIssues(parsed.error, 'params'))}` };
  return { ok: true, type, params: parsed.data };
}

export interface JobRunnerDeps {
  store: JobStore;
  handlers: JobHandlers;
  bootId: string;
  agentVersion: string;
  /** Sends an update if connected; the journal keeps it either way. */
  send: (u: JobUpdate) => void;
  /** The updates of a job run at the console (runLocal), for the terminal. */
  onLocalUpdate?: (u: JobUpdate) => void;
  log: Logger;
  now?: () => number;
}

type AbortReason = { kind: 'cancel'; reason: string } | { kind: 'timeout'; ms: number } | { kind: 'shutdown' };

interface Running {
  attempt: number;
  abort: AbortController;
  done: Promise<void>;
}

/**
 * Runs job assignments exactly once per (job_id, attempt), as protocol.md says: the journal
 * decides between running, re-sending a stored result and ignoring a duplicate.
 */
export class JobRunner {
  private readonly running = new Map<string, Running>();
  /** Cancellations for jobs not (yet) seen in this process: their assignment finishes CANCELLED unrun. */
  private readonly cancelledEarly = new Map<string, string>();
  private readonly now: () => number;

  constructor(private readonly deps: JobRunnerDeps) {
    this.now = deps.now ?? Date.now;
  }

  /** Finishes, without running them again, the jobs a previous process accepted and never finished. */
  finishInterrupted(): number {
    const list = this.deps.store.interrupted(this.deps.bootId);
    for (const { jobId, attempt } of list) {
      this.deps.log.warn('job was interrupted by an agent restart; reporting it failed, not running it again', { jobId, attempt: attempt.attempt });
      this.finish(jobId, attempt.attempt, { outcome: JobOutcome.JOB_OUTCOME_FAILED, error: INTERRUPTED_ERROR, retryable: true });
    }
    return list.length;
  }

  assign(a: JobAssignment): void {
    const { store, log } = this.deps;
    if (store.isLocal(a.jobId)) {
      // Job ids are random UUIDs on both sides; a clash would be a bug worth seeing, not a job to run.
      log.error('an assignment carries the id of a job run at the console; ignored', { jobId: a.jobId, type: a.type });
      return;
    }
    const known = store.get(a.jobId, a.attempt);
    if (known) {
      if (this.running.get(a.jobId)?.attempt === a.attempt) {
        log.debug('duplicate assignment of a running job ignored', { jobId: a.jobId, attempt: a.attempt });
      } else if (known.phase === 'finished') {
        const result = store.requeueResult(a.jobId, a.attempt);
        log.info('job already finished: result re-sent, not run again', { jobId: a.jobId, attempt: a.attempt });
        if (result) this.deps.send(toJobUpdate(a.jobId, a.attempt, result));
      } else {
        // Accepted by an earlier process (finishInterrupted normally got it first).
        this.finish(a.jobId, a.attempt, { outcome: JobOutcome.JOB_OUTCOME_FAILED, error: INTERRUPTED_ERROR, retryable: true });
      }
      return;
    }

    const reject = (error: string) => {
      log.warn('job rejected', { jobId: a.jobId, attempt: a.attempt, type: a.type, error });
      store.accept(a.jobId, a.attempt, a.type, this.deps.bootId);
      this.finish(a.jobId, a.attempt, { outcome: JobOutcome.JOB_OUTCOME_REJECTED, error, retryable: false });
    };
    const highest = store.highestAttempt(a.jobId);
    if (a.attempt < highest) return reject(`attempt ${a.attempt} is older than attempt ${highest} this agent already has`);
    const parsed = parseJob(a.type, a.paramsJson, this.deps.agentVersion);
    if (!parsed.ok) return reject(parsed.error);
    store.accept(a.jobId, a.attempt, a.type, this.deps.bootId);
    this.start(a, parsed.type, parsed.params);
  }

  /**
   * A job run at the console (`ibex-agent job`): validated, journaled and run exactly as an
   * assignment is (timeout, cancel, result bounds, an interruption finished as such at the next
   * start), but its updates go to `onLocalUpdate` only, never to the controller: the journal
   * reports its result once as a LocalChange (JobStore.localChanges). Bad params throw a
   * UsageError naming the field, and nothing is journaled. Resolves with the journaled result.
   */
  async runLocal(job: { jobId: string; type: string; paramsJson: string; timeoutMs: number; user: string }): Promise<JobResult> {
    const parsed = parseJob(job.type, job.paramsJson, this.deps.agentVersion);
    if (!parsed.ok) throw new UsageError(parsed.error);
    const a: JobAssignment = { jobId: job.jobId, attempt: 1, type: job.type, paramsJson: job.paramsJson, timeoutMs: job.timeoutMs, createdAtMs: this.now() };
    this.deps.store.accept(a.jobId, 1, a.type, this.deps.bootId, { params: parsed.params, user: job.user });
    this.start(a, parsed.type, parsed.params);
    await this.running.get(a.jobId)?.done;
    const r = this.deps.store.get(a.jobId, 1)?.result?.update;
    if (r?.$case !== 'result') throw new Error(`job ${a.jobId} ended without a journaled result`);
    return r.value;
  }

  private start(a: JobAssignment, type: JobType, params: unknown): void {
    failpoint('job-accepted');
    const early = this.cancelledEarly.get(a.jobId);
    if (early !== undefined) {
      this.cancelledEarly.delete(a.jobId);
      this.finish(a.jobId, a.attempt, { outcome: JobOutcome.JOB_OUTCOME_CANCELLED, error: `cancelled before it started: ${early}`, retryable: false });
      return;
    }
    this.update(a.jobId, a.attempt, { $case: 'started', value: { startedAtMs: this.now() } }, 'running');
    const abort = new AbortController();
    const run: Running = { attempt: a.attempt, abort, done: Promise.resolve() };
    this.running.set(a.jobId, run);
    run.done = this.execute(a, type, params, abort).finally(() => {
      if (this.running.get(a.jobId) === run) this.running.delete(a.jobId);
    });
  }

  cancel(c: JobCancellation): void {
    const r = this.running.get(c.jobId);
    if (r) {
      this.deps.log.info('cancelling job', { jobId: c.jobId, reason: c.reason });
      r.abort.abort({ kind: 'cancel', reason: c.reason || 'cancelled by the controller' } satisfies AbortReason);
      return;
    }
    if (this.deps.store.highestAttempt(c.jobId) > 0) return; // already finished: the result stands
    this.cancelledEarly.set(c.jobId, c.reason || 'cancelled by the controller');
  }

  get runningCount(): number {
    return this.running.size;
  }

  /** Waits up to `graceMs` for running jobs, then aborts them; returns when all are journaled. */
  async stop(graceMs: number): Promise<void> {
    if (!this.running.size) return;
    const all = () => Promise.all([...this.running.values()].map((r) => r.done));
    const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), graceMs).unref());
    if ((await Promise.race([all(), timer])) === 'timeout') {
      for (const r of this.running.values()) r.abort.abort({ kind: 'shutdown' } satisfies AbortReason);
      await Promise.race([all(), new Promise((r) => setTimeout(r, 5000).unref())]);
    }
  }

  private async execute(a: JobAssignment, type: JobType, params: unknown, abort: AbortController): Promise<void> {
    const { log } = this.deps;
    const timeout = a.timeoutMs > 0 ? setTimeout(() => abort.abort({ kind: 'timeout', ms: a.timeoutMs } satisfies AbortReason), a.timeoutMs) : undefined;
    const ctx: JobContext = {
      signal: abort.signal,
      progress: (percent, message) =>
        this.update(a.jobId, a.attempt, { $case: 'progress', value: { percent: Math.max(0, Math.min(100, Math.round(percent))), message: clip(message, MAX_PROGRESS_MESSAGE_CHARS) } }),
      log: (level, text) => this.update(a.jobId, a.attempt, { $case: 'log', value: { lines: [{ tsMs: this.now(), level, text: clip(text) }] } }),
    };
    // At the console the terminal shows the job itself: the agent's own lines about it are debug there.
    const level = this.deps.store.isLocal(a.jobId) ? 'debug' : 'info';
    log[level]('job running', { jobId: a.jobId, attempt: a.attempt, type });
    let result: Partial<JobResult>;
    try {
      const handler = this.deps.handlers[type] as (p: unknown, c: JobContext) => Promise<unknown>;
      const output = await handler(params, ctx);
      abort.signal.throwIfAborted();
      result = { outcome: JobOutcome.JOB_OUTCOME_SUCCEEDED, outputJson: JSON.stringify(output) };
    } catch (err) {
      result = this.failureResult(err, abort.signal);
    } finally {
      clearTimeout(timeout);
    }
    this.finish(a.jobId, a.attempt, result);
  }

  private failureResult(err: unknown, signal: AbortSignal): Partial<JobResult> {
    const output = err instanceof JobFailure ? JSON.stringify(err.output) : '';
    if (signal.aborted) {
      const reason = signal.reason as AbortReason;
      if (reason.kind === 'cancel') return { outcome: JobOutcome.JOB_OUTCOME_CANCELLED, error: `cancelled: ${reason.reason}`, outputJson: output };
      if (reason.kind === 'timeout') return { outcome: JobOutcome.JOB_OUTCOME_FAILED, error: `timed out after ${reason.ms} ms`, retryable: true, outputJson: output };
      return { outcome: JobOutcome.JOB_OUTCOME_FAILED, error: 'interrupted: the agent was stopped while the job was running', retryable: true, outputJson: output };
    }
    const retryable = err instanceof JobFailure ? err.retryable : isTransient(err);
    return { outcome: JobOutcome.JOB_OUTCOME_FAILED, error: errorMessage(err), retryable, outputJson: output };
  }

  /** Journals the result (fsync), then sends it. */
  private finish(jobId: string, attempt: number, r: Partial<JobResult>): void {
    let { outcome = JobOutcome.JOB_OUTCOME_FAILED, outputJson = '', error = '', retryable = false } = r;
    if (outputJson.length > MAX_OUTPUT_JSON_CHARS) {
      // Running it again would make the same output: not retryable.
      error = `the job's output is ${outputJson.length} characters of JSON, over the ${MAX_OUTPUT_JSON_CHARS} the controller accepts; it was dropped${error ? ` (${error})` : ''}`;
      if (outcome === JobOutcome.JOB_OUTCOME_SUCCEEDED) outcome = JobOutcome.JOB_OUTCOME_FAILED;
      outputJson = '';
      retryable = false;
    }
    const value: JobResult = { outcome, outputJson, error: clip(error), retryable, finishedAtMs: this.now() };
    const u = this.deps.store.addUpdate(jobId, attempt, { $case: 'result', value });
    this.deps.log[this.deps.store.isLocal(jobId) ? 'debug' : 'info']('job finished', { jobId, attempt, outcome: JobOutcome[value.outcome], error: value.error || undefined });
    failpoint('job-result-journaled');
    this.out(jobId, toJobUpdate(jobId, attempt, u));
  }

  private update(jobId: string, attempt: number, body: UpdateBody, phase?: 'running'): void {
    // A handler that logs after it was cancelled must not add updates after the result.
    if (this.deps.store.get(jobId, attempt)?.phase === 'finished') return;
    const u = this.deps.store.addUpdate(jobId, attempt, body, phase);
    this.out(jobId, toJobUpdate(jobId, attempt, u));
  }

  /** A job run at the console shows its updates locally; the controller has no such job. */
  private out(jobId: string, u: JobUpdate): void {
    if (this.deps.store.isLocal(jobId)) this.deps.onLocalUpdate?.(u);
    else this.deps.send(u);
  }
}
