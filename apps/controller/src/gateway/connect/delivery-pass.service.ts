import { Injectable } from '@nestjs/common';
import { status } from '@grpc/grpc-js';
import { Clock } from '../../common/clock.js';
import { type Job, Prisma } from '../../generated/prisma/client.js';
import { MetricsService } from '../../metrics/metrics.service.js';
import { PrismaService } from '../../prisma/prisma.service.js';
import { isUnavailable } from '../grpc-status.js';
import { CLOCK_SLACK_MS, JobTimerHandlers, OPERATOR_CANCEL } from '../jobs/job-timer.handlers.js';
import { JobTimerQueue } from '../jobs/job-timer.queue.js';
import { jobTimerId } from '../queues.js';
import type { AgentSession } from './agent-session.js';
import { CREDENTIAL_REFUSED } from './device-auth.service.js';

/** Sessions served by one batch of queries at most. */
export const DELIVERY_BATCH_MAX = 1000;
/** Batches at once: each is a few queries, so the pool keeps connections for everything else. */
const MAX_BATCHES = 2;

interface Waiting {
  session: AgentSession;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/**
 * The delivery pass (protocol.md "Connect" step 4): reads Postgres, never the event that
 * caused it, and sends the device what it is missing: its desired revision, its queued jobs
 * (each becoming the next attempt), the jobs it already has, and cancellations.
 *
 * Passes requested together (a rollout kicks 10,000 devices at once; a reconnect storm) run as
 * one batch: a query for the devices, one for their revisions, one for their jobs, one UPDATE
 * claiming every queued job, and the timeouts armed in one BullMQ call. One pass per device
 * was 4-5 queries and a Redis call each, so 10,000 of them queued for the pool in lockstep and
 * the first device got its job only when nearly all did (bench/README.md, "bench:rollout").
 * A session's passes still run one at a time (AgentSession), each reading fresh state.
 */
@Injectable()
export class DeliveryPass {
  private readonly queue: Waiting[] = [];
  private running = 0;
  private pumpSoon?: NodeJS.Immediate;

  constructor(
    private readonly prisma: PrismaService,
    private readonly clock: Clock,
    private readonly timers: JobTimerQueue,
    private readonly timerHandlers: JobTimerHandlers,
    private readonly metrics: MetricsService,
  ) {}

  /** One pass for the session, in the next batch; settles when it is done. */
  run(session: AgentSession): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ session, resolve, reject });
      this.pumpSoon ??= setImmediate(() => {
        this.pumpSoon = undefined;
        this.pump();
      });
    });
  }

  private pump(): void {
    while (this.running < MAX_BATCHES && this.queue.length) {
      const batch = this.queue.splice(0, DELIVERY_BATCH_MAX);
      this.running++;
      void this.serve(batch).finally(() => {
        this.running--;
        this.pump();
      });
    }
  }

  /**
   * A batch that fails because Postgres or Redis is unreachable fails every pass in it (each
   * session retries). Any other failure may be one device's: its sessions are served one by one,
   * so the others do not wait for its retries.
   */
  private async serve(batch: Waiting[]): Promise<void> {
    const end = this.metrics.deliveryPassDuration.startTimer();
    try {
      await this.deliver(batch.map((w) => w.session));
      for (const w of batch) w.resolve();
    } catch (err) {
      if (batch.length === 1 || isUnavailable(err)) for (const w of batch) w.reject(err);
      else for (const w of batch) await this.serve([w]);
    } finally {
      end();
    }
  }

  private async deliver(all: AgentSession[]): Promise<void> {
    const ids = [...new Set(all.map((s) => s.deviceId))];
    const devices = new Map(
      (await this.prisma.device.findMany({ where: { id: { in: ids } }, select: { id: true, desiredRevision: true, revokedAt: true } })).map((d) => [d.id, d]),
    );
    const sessions: AgentSession[] = [];
    for (const s of all) {
      const d = devices.get(s.deviceId);
      if (!d || d.revokedAt) s.close({ code: status.UNAUTHENTICATED, details: CREDENTIAL_REFUSED });
      else if (!s.closed) sessions.push(s);
    }
    if (!sessions.length) return;
    await this.sendDesired(sessions, (s) => devices.get(s.deviceId)!.desiredRevision);

    const jobs = await this.prisma.job.findMany({
      where: { deviceId: { in: [...new Set(sessions.map((s) => s.deviceId))] }, status: { in: ['queued', 'delivered', 'running'] } },
      orderBy: { createdAt: 'asc' },
    });
    const now = this.clock.now();
    // Queued jobs become attempt + 1, `delivered`, in one statement; the rare ones that end
    // instead (cancelled before delivery, expired) or wait (a retry's backoff) are left out.
    const claimable: Job[] = [];
    for (const job of jobs) {
      if (job.status !== 'queued') continue;
      if (job.cancelRequestedAt) await this.timerHandlers.cancelUndelivered(job);
      else if (job.attempt === 0 && job.expiresAt <= now) await this.timerHandlers.expire(job.id);
      else if (!(job.notBefore && job.notBefore.getTime() > now.getTime() + CLOCK_SLACK_MS)) claimable.push(job);
    }
    const claimed = await this.claim(claimable, now);

    const byDevice = new Map<string, Job[]>();
    for (const job of jobs) {
      const mine = job.status === 'queued' ? (claimed.has(job.id) ? { ...job, status: 'delivered' as const, attempt: job.attempt + 1, deliveredAt: now, notBefore: null } : null) : job;
      if (mine) byDevice.set(job.deviceId, [...(byDevice.get(job.deviceId) ?? []), mine]);
    }
    const timeouts: Job[] = [];
    for (const s of sessions) {
      for (const job of byDevice.get(s.deviceId) ?? []) {
        if (s.closed) break; // a claimed job not sent is sent again on the next stream
        if (job.cancelRequestedAt) s.cancel(job.id, OPERATOR_CANCEL);
        else if (this.assign(s, job) && job.deliveredAt) timeouts.push(job);
      }
    }
    // Idempotent (deterministic ids); re-arming on a new stream heals a timer lost with Redis.
    if (timeouts.length) {
      const at = now.getTime();
      await this.timers.queue.addBulk(
        timeouts.map((j) => {
          const t = { name: 'timeout' as const, jobId: j.id, attempt: j.attempt };
          return { name: t.name, data: t, opts: { jobId: jobTimerId(t), delay: Math.max(0, j.deliveredAt!.getTime() + j.timeoutMs - at) } };
        }),
      );
    }
  }

  /** The sessions' devices' desired revisions they do not have yet, in one query. */
  private async sendDesired(sessions: AgentSession[], desiredOf: (s: AgentSession) => number): Promise<void> {
    const behind = sessions.filter((s) => desiredOf(s) > s.revisionSent);
    if (!behind.length) return;
    const pairs = [...new Map(behind.map((s) => [s.deviceId, desiredOf(s)])).entries()];
    const rows = await this.prisma.$queryRaw<Array<{ deviceId: string; revision: number; spec: Prisma.JsonValue; createdAtMs: number }>>`
      SELECT r."deviceId", r.revision, r.spec, (extract(epoch FROM r."createdAt") * 1000)::float8 AS "createdAtMs" FROM desired_revision r
        JOIN (VALUES ${Prisma.join(pairs.map(([d, rev]) => Prisma.sql`(${d}::uuid, ${rev}::int)`))}) AS v(device, revision)
          ON r."deviceId" = v.device AND r.revision = v.revision`;
    const revs = new Map(rows.map((r) => [r.deviceId, r]));
    for (const s of behind) {
      const rev = revs.get(s.deviceId);
      if (!rev || rev.revision <= s.revisionSent) continue;
      s.send({ $case: 'desired', value: { revision: rev.revision, specJson: JSON.stringify(rev.spec), createdAtMs: Math.round(rev.createdAtMs) } });
      s.revisionSent = rev.revision;
    }
  }

  /** Claims the queued jobs still on the attempt read; returns the ids claimed (a job changed meanwhile is seen by the next pass). */
  private async claim(jobs: Job[], now: Date): Promise<Set<string>> {
    const claimed = new Set<string>();
    for (let i = 0; i < jobs.length; i += 5000) {
      const part = jobs.slice(i, i + 5000);
      const rows = await this.prisma.$queryRaw<Array<{ id: string }>>`
        UPDATE job j SET status = 'delivered', attempt = v.attempt + 1, "deliveredAt" = ${now.toISOString()}::timestamp(3), "notBefore" = NULL, "updatedAt" = ${now.toISOString()}::timestamp(3)
          FROM (VALUES ${Prisma.join(part.map((x) => Prisma.sql`(${x.id}::uuid, ${x.attempt}::int)`))}) AS v(id, attempt)
         WHERE j.id = v.id AND j.status = 'queued' AND j.attempt = v.attempt
        RETURNING j.id`;
      for (const r of rows) claimed.add(r.id);
    }
    return claimed;
  }

  /** Sends the current attempt (once per stream); true when it was sent now. */
  private assign(session: AgentSession, job: Job): boolean {
    return session.assign({
      jobId: job.id,
      attempt: job.attempt,
      type: job.type,
      paramsJson: JSON.stringify(job.params),
      timeoutMs: job.timeoutMs,
      createdAtMs: job.createdAt.getTime(),
    });
  }
}
