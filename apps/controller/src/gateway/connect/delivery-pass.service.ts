import { Injectable } from '@nestjs/common';
import { status } from '@grpc/grpc-js';
import { Clock } from '../../common/clock.js';
import type { Job } from '../../generated/prisma/client.js';
import { MetricsService } from '../../metrics/metrics.service.js';
import { PrismaService } from '../../prisma/prisma.service.js';
import { CLOCK_SLACK_MS, JobTimerHandlers, OPERATOR_CANCEL } from '../jobs/job-timer.handlers.js';
import { JobTimerQueue } from '../jobs/job-timer.queue.js';
import type { AgentSession } from './agent-session.js';
import { CREDENTIAL_REFUSED } from './device-auth.service.js';

/**
 * The delivery pass (protocol.md "Connect" step 4): reads Postgres, never the event that
 * caused it, and sends the device what it is missing: its desired revision, its queued jobs
 * (each becoming the next attempt), the jobs it already has, and cancellations.
 */
@Injectable()
export class DeliveryPass {
  constructor(
    private readonly prisma: PrismaService,
    private readonly clock: Clock,
    private readonly timers: JobTimerQueue,
    private readonly timerHandlers: JobTimerHandlers,
    private readonly metrics: MetricsService,
  ) {}

  async run(session: AgentSession): Promise<void> {
    const end = this.metrics.deliveryPassDuration.startTimer();
    try {
      await this.deliver(session);
    } finally {
      end();
    }
  }

  private async deliver(session: AgentSession): Promise<void> {
    const device = await this.prisma.device.findUnique({ where: { id: session.deviceId }, select: { desiredRevision: true, revokedAt: true } });
    if (!device || device.revokedAt) {
      session.close({ code: status.UNAUTHENTICATED, details: CREDENTIAL_REFUSED });
      return;
    }
    await this.sendDesired(session, device.desiredRevision);
    const jobs = await this.prisma.job.findMany({
      where: { deviceId: session.deviceId, status: { in: ['queued', 'delivered', 'running'] } },
      orderBy: { createdAt: 'asc' },
    });
    for (const job of jobs) {
      if (session.closed) return;
      if (job.status === 'queued') await this.deliverQueued(session, job);
      else if (job.cancelRequestedAt) session.cancel(job.id, OPERATOR_CANCEL);
      else await this.resend(session, job);
    }
  }

  private async sendDesired(session: AgentSession, desiredRevision: number): Promise<void> {
    if (desiredRevision <= session.revisionSent) return;
    const rev = await this.prisma.desiredRevision.findUnique({ where: { deviceId_revision: { deviceId: session.deviceId, revision: desiredRevision } } });
    if (!rev) return;
    session.send({ $case: 'desired', value: { revision: rev.revision, specJson: JSON.stringify(rev.spec), createdAtMs: rev.createdAt.getTime() } });
    session.revisionSent = rev.revision;
  }

  /** A queued job becomes attempt + 1, `delivered`, with its timeout armed, then is sent. */
  private async deliverQueued(session: AgentSession, job: Job): Promise<void> {
    const now = this.clock.now();
    if (job.cancelRequestedAt) return this.timerHandlers.cancelUndelivered(job);
    if (job.attempt === 0 && job.expiresAt <= now) return this.timerHandlers.expire(job.id);
    if (job.notBefore && job.notBefore.getTime() > now.getTime() + CLOCK_SLACK_MS) return; // a retry's kick comes later
    const attempt = job.attempt + 1;
    const claimed = await this.prisma.job.updateMany({
      where: { id: job.id, status: 'queued', attempt: job.attempt },
      data: { status: 'delivered', attempt, deliveredAt: now, notBefore: null },
    });
    if (!claimed.count) return; // changed meanwhile (cancelled, or another replica got it): the next pass sees it
    await this.resend(session, { ...job, attempt, deliveredAt: now });
  }

  /** Sends the current attempt (once per stream) and makes sure its timeout is armed. */
  private async resend(session: AgentSession, job: Job): Promise<void> {
    const sent = session.assign({
      jobId: job.id,
      attempt: job.attempt,
      type: job.type,
      paramsJson: JSON.stringify(job.params),
      timeoutMs: job.timeoutMs,
      createdAtMs: job.createdAt.getTime(),
    });
    // Idempotent (deterministic id); re-arming on a new stream heals a timer lost with Redis.
    if (sent && job.deliveredAt) await this.timers.schedule({ name: 'timeout', jobId: job.id, attempt: job.attempt }, new Date(job.deliveredAt.getTime() + job.timeoutMs));
  }
}
