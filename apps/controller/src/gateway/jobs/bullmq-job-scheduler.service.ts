import { Inject, Injectable, Logger } from '@nestjs/common';
import { AGENT_DELIVERY, type AgentDelivery, type JobScheduler } from '../../delivery/agent-delivery.port.js';
import { JobTimerQueue } from './job-timer.queue.js';

/** JOB_SCHEDULER: arms a new job's expiry (BullMQ) and kicks the device. */
@Injectable()
export class BullmqJobScheduler implements JobScheduler {
  private readonly log = new Logger('JobScheduler');

  constructor(
    private readonly timers: JobTimerQueue,
    @Inject(AGENT_DELIVERY) private readonly delivery: AgentDelivery,
  ) {}

  async jobCreated(job: { id: string; deviceId: string; expiresAt: Date }): Promise<void> {
    try {
      await this.timers.schedule({ name: 'expire', jobId: job.id }, job.expiresAt);
    } catch (err) {
      this.log.error(`could not schedule the expiry of job ${job.id}: ${(err as Error).message}; the periodic sweep expires it`);
    }
    await this.delivery.kick(job.deviceId);
  }

  /** The holder's delivery pass sends the JobCancellation (it reads cancelRequestedAt). */
  async cancelRequested(job: { id: string; deviceId: string }): Promise<void> {
    await this.delivery.kick(job.deviceId);
  }
}
