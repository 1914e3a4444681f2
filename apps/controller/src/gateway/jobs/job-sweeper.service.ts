import { Injectable, Logger } from '@nestjs/common';
import { Clock } from '../../common/clock.js';
import { PrismaService } from '../../prisma/prisma.service.js';
import { JobTimerHandlers } from './job-timer.handlers.js';

/** How often each replica sweeps. */
export const SWEEP_INTERVAL_MS = 30_000;
/** A timer is only swept once it is this overdue: normally BullMQ has long handled it. */
const OVERDUE_MS = 10_000;
/** Rows per kind per sweep; the next sweep takes the rest. */
const BATCH = 500;

export interface SweepResult {
  expired: number;
  timedOut: number;
  /** Retries whose backoff is over (kicked, or cancelled when that was requested). */
  retried: number;
}

/**
 * The safety net under the BullMQ timers. Redis may lose them (it may run without
 * persistence, or a schedule call may fail after a commit); Postgres still says what is
 * overdue. Every replica sweeps; the handlers' conditional updates make that harmless.
 */
@Injectable()
export class JobSweeper {
  private readonly log = new Logger('JobSweeper');
  private timer?: NodeJS.Timeout;
  private running?: Promise<unknown>;

  constructor(
    private readonly prisma: PrismaService,
    private readonly clock: Clock,
    private readonly handlers: JobTimerHandlers,
  ) {}

  start(): void {
    this.timer ??= setInterval(() => {
      this.running ??= this.sweep()
        .catch((err: Error) => this.log.error(`sweep failed: ${err.message}`))
        .finally(() => (this.running = undefined));
    }, SWEEP_INTERVAL_MS);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** Fires every timer that is overdue according to Postgres. */
  async sweep(): Promise<SweepResult> {
    const cutoff = new Date(this.clock.now().getTime() - OVERDUE_MS).toISOString();
    const expiring = await this.prisma.$queryRaw<{ id: string }[]>`
      SELECT id FROM job WHERE status = 'queued' AND attempt = 0
        AND "expiresAt" < (${cutoff}::timestamptz AT TIME ZONE 'UTC') LIMIT ${BATCH}`;
    for (const j of expiring) await this.handlers.expire(j.id);

    const overdue = await this.prisma.$queryRaw<{ id: string; attempt: number }[]>`
      SELECT id, attempt FROM job WHERE status IN ('delivered', 'running')
        AND "deliveredAt" + "timeoutMs" * interval '1 millisecond' < (${cutoff}::timestamptz AT TIME ZONE 'UTC') LIMIT ${BATCH}`;
    for (const j of overdue) await this.handlers.timeout(j.id, j.attempt);

    const retries = await this.prisma.$queryRaw<{ id: string; attempt: number }[]>`
      SELECT id, attempt FROM job WHERE status = 'queued' AND attempt > 0
        AND "notBefore" < (${cutoff}::timestamptz AT TIME ZONE 'UTC') LIMIT ${BATCH}`;
    for (const j of retries) await this.handlers.retry(j.id, j.attempt);

    const result = { expired: expiring.length, timedOut: overdue.length, retried: retries.length };
    if (result.expired || result.timedOut || result.retried) this.log.warn(`swept overdue job timers: ${JSON.stringify(result)}`);
    return result;
  }
}
