import { Inject, Injectable, Logger } from '@nestjs/common';
import type { GenerationsInventory } from '@ibex/spec';
import { Clock } from '../../common/clock.js';
import { Limiter } from '../../common/limiter.js';
import { failpoint } from '../../common/failpoints.js';
import { CONFIG, type Config } from '../../config/config.js';
import type { Prisma } from '../../generated/prisma/client.js';
import { MetricsService } from '../../metrics/metrics.service.js';
import { PrismaService } from '../../prisma/prisma.service.js';
import type { JobUpdateInput } from '../agent-messages.schema.js';
import { JobTimerQueue } from './job-timer.queue.js';
import { ACTIVE_STATUSES, applyJobUpdate, eventData } from './job-transitions.js';

/** What happened to a JobUpdate; every outcome is acknowledged to the agent. */
export type JobUpdateOutcome = 'applied' | 'duplicate' | 'stale' | 'unknown_job';

/** Stores and applies the JobUpdates agents send (protocol.md "Jobs", controller side). */
@Injectable()
export class JobUpdates {
  private readonly log = new Logger('JobUpdates');
  /** Leaves connections of the pool (10) for everything else, however many agents report at once. */
  private readonly limiter = new Limiter(6);

  constructor(
    @Inject(CONFIG) private readonly config: Config,
    private readonly prisma: PrismaService,
    private readonly clock: Clock,
    private readonly timers: JobTimerQueue,
    private readonly metrics: MetricsService,
  ) {}

  /**
   * One transaction: the job_event row keyed by update_id (a repeat is only acknowledged
   * again), then the transition, applied only to the job's current attempt while it is with
   * the agent. A retry's kick is scheduled after commit.
   */
  async apply(deviceId: string, u: JobUpdateInput): Promise<JobUpdateOutcome> {
    const now = this.clock.now();
    const { outcome, retryAt, finished } = await this.limiter.run(() => this.prisma.$transaction(async (tx) => {
      // Scoped to the device: an agent cannot touch another device's jobs.
      const job = await tx.job.findFirst({ where: { id: u.jobId, deviceId } });
      if (!job) return { outcome: 'unknown_job' as const };
      const inserted = await tx.jobEvent.createMany({
        data: [{ updateId: u.updateId, jobId: job.id, attempt: u.attempt, kind: u.update.$case, data: eventData(u.update) }],
        skipDuplicates: true,
      });
      if (!inserted.count) return { outcome: 'duplicate' as const };
      if (u.attempt !== job.attempt || !ACTIVE_STATUSES.includes(job.status)) return { outcome: 'stale' as const };
      const change = applyJobUpdate(job, u.update, now, this.config.jobRetryBackoffMs);
      if (!change) return { outcome: 'applied' as const };
      const r = await tx.job.updateMany({ where: { id: job.id, attempt: job.attempt, status: { in: ACTIVE_STATUSES } }, data: change.data });
      if (!r.count) return { outcome: 'stale' as const };
      if (change.facts) await tx.device.update({ where: { id: deviceId }, data: { facts: change.facts as Prisma.InputJsonValue } });
      if (change.generations) await this.storeGenerations(tx, deviceId, change.generations);
      if (u.update.$case === 'result') failpoint('job-result-before-commit');
      const finished = change.data.finishedAt ? { type: job.type, status: String(change.data.status), createdAt: job.createdAt } : undefined;
      return { outcome: 'applied' as const, retryAt: change.retryAt, finished };
    }));
    if (finished) this.metrics.jobFinished(finished.type, finished.status, finished.createdAt, now);
    if (outcome === 'applied' && u.update.$case === 'result') failpoint('job-result-before-ack');
    if (outcome === 'unknown_job') this.log.warn(`device ${deviceId} sent update ${u.updateId} for job ${u.jobId}, which it does not have; acknowledged and dropped`);
    if (retryAt) await this.timers.schedule({ name: 'retry', jobId: u.jobId, attempt: u.attempt }, retryAt);
    return outcome;
  }

  /**
   * A rollback's output is the inventory after the switch: it replaces the stored one unless a
   * FactsReport collected later already did (the agent also reports facts after the change).
   * Facts never reported: nothing to attach it to, the next Hello brings both.
   * Read with the row locked (FOR UPDATE): a FactsReport committing between the read and the
   * write would otherwise be overwritten by this older inventory.
   */
  private async storeGenerations(tx: Prisma.TransactionClient, deviceId: string, inv: GenerationsInventory): Promise<void> {
    const [d] = await tx.$queryRaw<Array<{ facts: Prisma.JsonValue }>>`SELECT facts FROM device WHERE id = ${deviceId}::uuid FOR UPDATE`;
    const facts = d?.facts;
    if (!facts || typeof facts !== 'object' || Array.isArray(facts)) return;
    const stored = facts.generations as { collectedAtMs?: unknown } | null | undefined;
    if (stored && typeof stored.collectedAtMs === 'number' && stored.collectedAtMs > inv.collectedAtMs) return;
    await tx.device.update({ where: { id: deviceId }, data: { facts: { ...facts, generations: inv } as Prisma.InputJsonValue } });
  }
}
