import { Injectable, Logger } from '@nestjs/common';
import { Queue, Worker } from 'bullmq';
import { within } from '../common/bounded.js';
import { bullConnection } from '../gateway/queues.js';
import { RedisService } from '../redis/redis.service.js';

export const ROLLOUT_QUEUE = 'rollouts';

/** Ids only: the handler re-reads Postgres (a rollout's tick, a schedule's occurrence). */
export type RolloutQueueData = { name: 'wake'; rolloutId: string } | { name: 'schedule'; scheduleId: string };

/** BullMQ for rollouts: delayed wake-ups (start time, window, deadline) and job schedulers (recurring schedules, cron + time zone). */
@Injectable()
export class RolloutQueue {
  private readonly log = new Logger('RolloutQueue');
  readonly queue: Queue<RolloutQueueData>;
  private worker?: Worker<RolloutQueueData>;

  constructor(private readonly redis: RedisService) {
    this.queue = new Queue<RolloutQueueData>(ROLLOUT_QUEUE, {
      connection: bullConnection(redis),
      prefix: redis.prefix,
      defaultJobOptions: { removeOnComplete: true, removeOnFail: { age: 7 * 24 * 3600, count: 1000 }, attempts: 8, backoff: { type: 'exponential', delay: 1000 } },
    });
    this.queue.on('error', (err) => this.log.error(`rollout queue: ${err.message}`));
  }

  /** Ticks the rollout at `at`; one delayed job per rollout and time (BullMQ refuses ":" in ids). */
  async wakeAt(rolloutId: string, at: Date, now: Date): Promise<void> {
    await this.queue.add('wake', { name: 'wake', rolloutId }, { jobId: `wake-${rolloutId}-${at.getTime()}`, delay: Math.max(0, at.getTime() - now.getTime()) });
  }

  /** A recurring schedule: BullMQ's job scheduler adds one job per cron occurrence in `timeZone`. */
  async upsertSchedule(scheduleId: string, cron: string, timeZone: string): Promise<void> {
    await this.queue.upsertJobScheduler(`schedule-${scheduleId}`, { pattern: cron, tz: timeZone }, { name: 'schedule', data: { name: 'schedule', scheduleId } });
  }

  async removeSchedule(scheduleId: string): Promise<void> {
    await this.queue.removeJobScheduler(`schedule-${scheduleId}`);
  }

  start(handle: (d: RolloutQueueData, jobId: string) => Promise<void>): void {
    if (this.worker) return;
    const w = new Worker<RolloutQueueData>(ROLLOUT_QUEUE, (job) => handle(job.data, job.id ?? ''), { connection: bullConnection(this.redis), prefix: this.redis.prefix, concurrency: 4 });
    w.on('error', (err) => this.log.error(`rollout worker: ${err.message}`));
    w.on('failed', (job, err) => this.log.warn(`rollout queue job ${job?.id ?? '?'} failed: ${err.message}`));
    this.worker = w;
  }

  async close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    if (w) await within(w.close(), 3000, () => w.disconnect());
    await within(this.queue.close(), 3000, () => this.queue.disconnect());
  }
}
