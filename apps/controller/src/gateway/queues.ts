import type { RedisOptions as BullRedisOptions } from 'bullmq';
import type { RedisService } from '../redis/redis.service.js';

/**
 * BullMQ queues and job names, defined once. Queue keys live under the controller's Redis
 * prefix (`<prefix>:<queue>:...`), so controllers and test runs sharing one Redis stay apart.
 * Jobs carry ids only; each handler re-reads the row in Postgres.
 */
export const QUEUES = {
  /** Time-driven steps of the job lifecycle (protocol.md "Jobs", "Time"). */
  jobTimers: 'job-timers',
  /** VM image builds (docs/images.md): `{ buildId }`, one BullMQ job per attempt. */
  imageBuilds: 'image-builds',
} as const;

export interface ImageBuildData {
  buildId: string;
}

/** One BullMQ job per build attempt: adding the same attempt twice adds it once. */
export const imageBuildJobId = (buildId: string, attempt: number) => `build-${buildId}-${attempt}`;

export type JobTimerData =
  /** A still-queued, never-delivered job becomes `expired` (at `expiresAt`). */
  | { name: 'expire'; jobId: string }
  /** Attempt `attempt` ran out of time (at delivery + `timeoutMs`). */
  | { name: 'timeout'; jobId: string; attempt: number }
  /** A retry's backoff is over (at `notBefore`): kick the device so it is delivered. */
  | { name: 'retry'; jobId: string; attempt: number };

export type JobTimerName = JobTimerData['name'];

/**
 * Deterministic BullMQ job ids, so scheduling the same thing twice adds it once. (BullMQ
 * refuses ":" in custom ids.)
 */
export function jobTimerId(t: JobTimerData): string {
  return t.name === 'expire' ? `expire-${t.jobId}` : `${t.name}-${t.jobId}-${t.attempt}`;
}

/**
 * Connection options for a queue or worker. The retry strategy stops re-dialling once the
 * controller shuts down (ioredis accepts null; BullMQ's copy of the type does not say so).
 */
export function bullConnection(redis: RedisService): BullRedisOptions {
  return redis.bullConnectionOptions() as BullRedisOptions;
}
