import type { z } from 'zod';
import type { JobType, jobTypes } from '@ibex/spec';

export interface JobContext {
  signal: AbortSignal;
  /** Journals and sends a progress update. */
  progress(percent: number, message: string): void;
  /** Journals and sends a log line. */
  log(level: 'debug' | 'info' | 'warn' | 'error', text: string): void;
}

export type JobParams<T extends JobType> = z.output<(typeof jobTypes)[T]['params']>;
export type JobOutput<T extends JobType> = z.input<(typeof jobTypes)[T]['output']>;

/** A failed job that still has output worth reporting (e.g. which sections failed). */
export class JobFailure extends Error {
  override name = 'JobFailure';
  constructor(
    message: string,
    readonly output: unknown,
    readonly retryable = false,
  ) {
    super(message);
  }
}

/** One handler per job type, typed so a job type without a handler does not compile. */
export type JobHandlers = { [T in JobType]: (params: JobParams<T>, ctx: JobContext) => Promise<JobOutput<T>> };
