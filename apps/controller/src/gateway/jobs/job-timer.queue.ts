import { Injectable, Logger } from '@nestjs/common';
import { Queue } from 'bullmq';
import { Clock } from '../../common/clock.js';
import { within } from '../../common/bounded.js';
import { RedisService } from '../../redis/redis.service.js';
import { bullConnection, jobTimerId, QUEUES, type JobTimerData } from '../queues.js';

/** Schedules the time-driven steps of the job lifecycle (BullMQ delayed jobs, ids only). */
@Injectable()
export class JobTimerQueue {
  private readonly log = new Logger('JobTimers');
  readonly queue: Queue<JobTimerData, unknown, JobTimerData['name']>;

  constructor(
    redis: RedisService,
    private readonly clock: Clock,
  ) {
    this.queue = new Queue<JobTimerData, unknown, JobTimerData['name']>(QUEUES.jobTimers, {
      connection: bullConnection(redis),
      prefix: redis.prefix,
      defaultJobOptions: {
        // Completed timers are removed so the deterministic id can be used again (a timeout
        // re-armed on a new stream); a handler that failed (Postgres down) is retried.
        removeOnComplete: true,
        removeOnFail: { age: 7 * 24 * 3600, count: 1000 },
        attempts: 8,
        backoff: { type: 'exponential', delay: 1000 },
      },
    });
    this.queue.on('error', (err) => this.log.error(`job timer queue: ${err.message}`));
  }

  /** Runs `timer` at `at` (at once when that has passed); adding the same timer twice adds it once. */
  async schedule(timer: JobTimerData, at: Date): Promise<void> {
    const delay = Math.max(0, at.getTime() - this.clock.now().getTime());
    await this.queue.add(timer.name, timer, { jobId: jobTimerId(timer), delay });
  }

  async close(): Promise<void> {
    await within(this.queue.close(), 3000, () => this.queue.disconnect());
  }
}
