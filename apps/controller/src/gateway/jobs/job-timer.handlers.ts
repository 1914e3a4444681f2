import { Inject, Injectable } from '@nestjs/common';
import { Clock } from '../../common/clock.js';
import { CONFIG, type Config } from '../../config/config.js';
import { AGENT_DELIVERY, type AgentDelivery } from '../../delivery/agent-delivery.port.js';
import type { Job, Prisma } from '../../generated/prisma/client.js';
import { MetricsService } from '../../metrics/metrics.service.js';
import { PrismaService } from '../../prisma/prisma.service.js';
import type { JobTimerData } from '../queues.js';
import { DeviceRouting } from '../routing/device-routing.service.js';
import { JobTimerQueue } from './job-timer.queue.js';
import { ACTIVE_STATUSES, failAttempt, type JobChange } from './job-transitions.js';

export const OPERATOR_CANCEL = 'cancelled by an operator';

/** Replica clocks differ a little; a timer this early still counts as due. */
export const CLOCK_SLACK_MS = 1000;

/** Thrown when a timer fires before its time (clock skew): BullMQ runs it again shortly. */
class NotDueYet extends Error {}

/**
 * What the job timers do when they fire. Each re-reads the job and changes it only with a
 * conditional UPDATE, so a timer that fires late, twice, or after the job moved on is harmless.
 */
@Injectable()
export class JobTimerHandlers {
  constructor(
    @Inject(CONFIG) private readonly config: Config,
    private readonly prisma: PrismaService,
    private readonly clock: Clock,
    private readonly timers: JobTimerQueue,
    private readonly routing: DeviceRouting,
    @Inject(AGENT_DELIVERY) private readonly delivery: AgentDelivery,
    private readonly metrics: MetricsService,
  ) {}

  async handle(timer: JobTimerData): Promise<void> {
    switch (timer.name) {
      case 'expire':
        await this.expire(timer.jobId);
        return;
      case 'timeout':
        await this.timeout(timer.jobId, timer.attempt);
        return;
      case 'retry':
        await this.retry(timer.jobId, timer.attempt);
        return;
    }
  }

  /** A job still queued and never delivered at `expiresAt` becomes `expired`. */
  async expire(jobId: string): Promise<void> {
    const job = await this.prisma.job.findUnique({ where: { id: jobId } });
    if (!job || job.status !== 'queued' || job.attempt !== 0) return;
    if (job.cancelRequestedAt) return this.cancelUndelivered(job);
    const now = this.due(job.expiresAt);
    const error = `not delivered before it expired at ${job.expiresAt.toISOString()} (the device did not connect in time)`;
    await this.change(job, { data: { status: 'expired', finishedAt: now, error } }, ['queued'], 'expired');
  }

  /**
   * Attempt N ran out of time: cancel it on the agent, and retry the job (when its type is
   * retry-safe and attempts remain) or mark it `timed_out`.
   */
  async timeout(jobId: string, attempt: number): Promise<void> {
    const job = await this.prisma.job.findUnique({ where: { id: jobId } });
    if (!job || job.attempt !== attempt || !ACTIVE_STATUSES.includes(job.status) || !job.deliveredAt) return;
    const now = this.due(new Date(job.deliveredAt.getTime() + job.timeoutMs));
    const reason = `timed out after ${job.timeoutMs} ms (attempt ${attempt} of ${job.maxAttempts})`;
    const change: JobChange = job.cancelRequestedAt
      ? { data: { status: 'cancelled', finishedAt: now, error: 'cancelled by an operator; the agent did not confirm before the timeout' } }
      : failAttempt(job, reason, true, 'timed_out', now, this.config.jobRetryBackoffMs);
    if (!(await this.change(job, change, ACTIVE_STATUSES, 'timeout'))) return;
    await this.routing.publish(job.deviceId, { t: 'cancel', job: job.id, reason });
    if (change.retryAt) await this.timers.schedule({ name: 'retry', jobId, attempt }, change.retryAt);
  }

  /** A retry's backoff is over: the holder of the device's stream delivers the next attempt. */
  async retry(jobId: string, attempt: number): Promise<void> {
    const job = await this.prisma.job.findUnique({ where: { id: jobId } });
    if (job?.status !== 'queued' || job.attempt !== attempt) return;
    if (job.cancelRequestedAt) return this.cancelUndelivered(job);
    await this.delivery.kick(job.deviceId);
  }

  /** A queued job whose cancellation was requested: the agent does not have it, so it just ends. */
  async cancelUndelivered(job: Job): Promise<void> {
    await this.change(job, { data: { status: 'cancelled', finishedAt: this.clock.now(), error: OPERATOR_CANCEL } }, ['queued'], 'cancelled');
  }

  /** Now, or NotDueYet when `dueAt` is still ahead by more than the clock slack. */
  private due(dueAt: Date): Date {
    const now = this.clock.now();
    if (dueAt.getTime() > now.getTime() + CLOCK_SLACK_MS) throw new NotDueYet(`not due until ${dueAt.toISOString()}`);
    return now;
  }

  /** Applies `change` if the job is still on the same attempt and status; records why. */
  private async change(job: Job, change: JobChange, from: Job['status'][], event: string): Promise<boolean> {
    const changed = await this.prisma.$transaction(async (tx) => {
      const r = await tx.job.updateMany({ where: { id: job.id, attempt: job.attempt, status: { in: from } }, data: change.data });
      if (!r.count) return false;
      await recordControllerEvent(tx, job.id, job.attempt, event, { status: change.data.status, error: change.data.error, retryAt: change.retryAt?.toISOString() });
      return true;
    });
    const finishedAt = change.data.finishedAt;
    if (changed && finishedAt instanceof Date) this.metrics.jobFinished(job.type, String(change.data.status), job.createdAt, finishedAt);
    return changed;
  }
}

/** A job_event written by the controller itself (kind `controller`), once per (job, attempt, event). */
export async function recordControllerEvent(tx: Prisma.TransactionClient, jobId: string, attempt: number, event: string, data: Record<string, unknown>): Promise<void> {
  await tx.jobEvent.createMany({
    data: [{ updateId: `controller:${jobId}:${attempt}:${event}`, jobId, attempt, kind: 'controller', data: { event, ...data } as Prisma.InputJsonValue }],
    skipDuplicates: true,
  });
}
