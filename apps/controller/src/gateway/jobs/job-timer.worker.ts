import { Injectable, Logger } from '@nestjs/common';
import { Worker } from 'bullmq';
import { within } from '../../common/bounded.js';
import { RedisService } from '../../redis/redis.service.js';
import { bullConnection, QUEUES, type JobTimerData } from '../queues.js';
import { JobTimerHandlers } from './job-timer.handlers.js';

/** Runs the job timers; every replica runs one, BullMQ gives each timer to one of them. */
@Injectable()
export class JobTimerWorker {
  private readonly log = new Logger('JobTimers');
  private worker?: Worker<JobTimerData>;

  constructor(
    private readonly redis: RedisService,
    private readonly handlers: JobTimerHandlers,
  ) {}

  start(): void {
    if (this.worker) return;
    const worker = new Worker<JobTimerData>(QUEUES.jobTimers, (job) => this.handlers.handle(job.data), {
      connection: bullConnection(this.redis),
      prefix: this.redis.prefix,
      concurrency: 8,
    });
    worker.on('error', (err) => this.log.error(`job timer worker: ${err.message}`));
    worker.on('failed', (job, err) => this.log.warn(`job timer ${job?.id ?? '?'} failed (attempt ${job?.attemptsMade ?? '?'}): ${err.message}`));
    this.worker = worker;
  }

  async close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    if (w) await within(w.close(), 3000, () => w.disconnect());
  }
}
