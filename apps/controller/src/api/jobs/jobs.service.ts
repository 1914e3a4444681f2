import { Inject, Injectable } from '@nestjs/common';
import { z } from 'zod';
import { describeIssues, type JobType, jobTypeNames, jobTypes } from '@ibex/spec';
import { ArtifactRefs } from '../../artifacts/artifact-refs.service.js';
import { AuditService } from '../../audit/audit.service.js';
import { Clock } from '../../common/clock.js';
import { Conflict, NotFound, ValidationFailed } from '../../common/errors.js';
import { CONFIG, type Config } from '../../config/config.js';
import { JOB_SCHEDULER, type JobScheduler } from '../../delivery/agent-delivery.port.js';
import type { Device, Job, JobEvent, JobStatus, Prisma } from '../../generated/prisma/client.js';
import { MetricsService } from '../../metrics/metrics.service.js';
import { PrismaService } from '../../prisma/prisma.service.js';
import { DevicesService } from '../devices/devices.service.js';
import { decodeCursor, encodeCursor, newestFirstKey, newestFirstOrder, olderThan, type Page, toPage } from '../http/pagination.js';
import type { Caller } from '../http/request-context.js';
import { iso, isUuid } from '../http/schemas.js';
import { schemaIssues } from '../http/schema-validation.pipe.js';
import type { CreateJobBody, JobDetailView, JobLogsQuery, JobLogsView, JobTypeListView, JobView, ListJobsQuery, LogLineView } from './jobs.dto.js';

/** What a caller may override of a job type's defaults. */
export type JobOverrides = Pick<CreateJobBody, 'timeoutSeconds' | 'expiresInSeconds' | 'maxAttempts'>;

export const FINISHED: readonly JobStatus[] = ['succeeded', 'failed', 'cancelled', 'expired', 'timed_out', 'rejected'];
/** Log events shown inline by GET /jobs/:id; the rest through /logs. */
export const INLINE_LOG_EVENTS = 200;

// What the gateway stores for a `log` event (docs/protocol.md); read defensively.
const logEventData = z.object({
  lines: z.array(z.object({ tsMs: z.number(), level: z.string().default('info'), text: z.string() })),
});
const eventCursor = z.object({ e: z.string().regex(/^\d{1,19}$/) });

export function toJobView(j: Job): JobView {
  return {
    id: j.id,
    deviceId: j.deviceId,
    type: j.type,
    params: (j.params ?? {}) as Record<string, unknown>,
    status: j.status,
    attempt: j.attempt,
    maxAttempts: j.maxAttempts,
    timeoutSeconds: j.timeoutMs / 1000,
    progress: { percent: j.progressPercent, message: j.progressMessage },
    result: j.result,
    error: j.error,
    cancelRequestedAt: iso(j.cancelRequestedAt),
    createdBy: j.createdBy,
    createdAt: iso(j.createdAt),
    expiresAt: iso(j.expiresAt),
    notBefore: iso(j.notBefore),
    deliveredAt: iso(j.deliveredAt),
    startedAt: iso(j.startedAt),
    finishedAt: iso(j.finishedAt),
  };
}

function logLines(events: JobEvent[]): LogLineView[] {
  return events.flatMap((e) => {
    const data = logEventData.safeParse(e.data);
    if (!data.success) return [];
    return data.data.lines.map((l) => ({ attempt: e.attempt, at: new Date(l.tsMs).toISOString(), level: l.level, text: l.text }));
  });
}

/** Jobs: one-off work for one device. Delivery, retries and timeouts are the gateway's (JOB_SCHEDULER). */
@Injectable()
export class JobsService {
  constructor(
    private readonly prisma: PrismaService,
    private readonly audit: AuditService,
    private readonly clock: Clock,
    private readonly devices: DevicesService,
    @Inject(CONFIG) private readonly config: Config,
    @Inject(JOB_SCHEDULER) private readonly scheduler: JobScheduler,
    private readonly metrics: MetricsService,
    private readonly artifactRefs: ArtifactRefs,
  ) {}

  types(): JobTypeListView {
    return {
      items: jobTypeNames.map((type) => {
        const t = jobTypes[type];
        return {
          type,
          description: t.description,
          retrySafe: t.retrySafe,
          defaultTimeoutSeconds: t.defaultTimeoutMs / 1000,
          defaultMaxAttempts: t.defaultMaxAttempts,
          params: z.toJSONSchema(t.params, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>,
        };
      }),
    };
  }

  /** Queues a job (params checked by its type's schema), audits, then tells the scheduler. */
  async create(caller: Caller, ref: string, body: CreateJobBody): Promise<JobView> {
    const def = jobTypes[body.type];
    const params = def.params.safeParse(body.params);
    if (!params.success) {
      const issues = schemaIssues(params.error.issues, 'params');
      throw new ValidationFailed(`invalid params for job type ${body.type}: ${describeIssues(issues)}`, issues);
    }
    // Artifact references (`artifact: "name@version"`) become id + sha256 + size now, so the job
    // downloads exactly these bytes even if a new version is uploaded before it runs.
    const resolved = await this.artifactRefs.resolve(params.data as Record<string, unknown>, 'params');
    const job = await this.prisma.$transaction(async (tx) => this.insert(tx, caller, await this.devices.find(ref, tx), body.type, resolved, body));
    await this.announce(job);
    return toJobView(job);
  }

  /**
   * Inserts a queued job for `d` and its `job.create` audit row inside the caller's transaction
   * (params already validated). Call `announce` after the transaction committed.
   */
  async insert(tx: Prisma.TransactionClient, caller: Caller, d: Device, type: JobType, params: Record<string, unknown>, opts: JobOverrides = {}): Promise<Job> {
    const def = jobTypes[type];
    const now = this.clock.now();
    if (d.revokedAt) throw new Conflict(`device "${d.name}" is revoked and will not connect again; it cannot run jobs`);
    const j = await tx.job.create({
      data: {
        deviceId: d.id,
        type,
        params: params as Prisma.InputJsonObject,
        status: 'queued',
        maxAttempts: opts.maxAttempts ?? def.defaultMaxAttempts,
        timeoutMs: opts.timeoutSeconds !== undefined ? opts.timeoutSeconds * 1000 : def.defaultTimeoutMs,
        expiresAt: new Date(now.getTime() + (opts.expiresInSeconds !== undefined ? opts.expiresInSeconds * 1000 : this.config.jobDefaultExpiryMs)),
        createdBy: caller.actor.id,
      },
    });
    await this.audit.record(
      { actor: caller.actor, action: 'job.create', target: { type: 'job', id: j.id }, data: { deviceId: d.id, deviceName: d.name, type: j.type }, requestId: caller.requestId },
      tx,
    );
    return j;
  }

  /** Tells the scheduler about a committed job (a hint: the gateway also finds it on reconnect). */
  async announce(job: Job): Promise<void> {
    await this.scheduler.jobCreated({ id: job.id, deviceId: job.deviceId, expiresAt: job.expiresAt });
  }

  /** Newest first. */
  async list(q: ListJobsQuery): Promise<Page<JobView>> {
    const where: Prisma.JobWhereInput[] = [olderThan(q.cursor)];
    if (q.device !== undefined) where.push({ deviceId: (await this.devices.find(q.device)).id });
    if (q.deviceId !== undefined) where.push({ deviceId: q.deviceId });
    if (q.status !== undefined) where.push({ status: { in: q.status } });
    if (q.type !== undefined) where.push({ type: q.type });
    const rows = await this.prisma.job.findMany({ where: { AND: where }, orderBy: newestFirstOrder, take: q.limit + 1 });
    return toPage(rows, q.limit, newestFirstKey, toJobView);
  }

  private async find(id: string): Promise<Job> {
    const j = isUuid(id) ? await this.prisma.job.findUnique({ where: { id } }) : null;
    if (!j) throw new NotFound(`job ${id} not found; list jobs with GET /api/v1/jobs`);
    return j;
  }

  async get(id: string): Promise<JobDetailView> {
    const j = await this.find(id);
    const events = await this.prisma.jobEvent.findMany({ where: { jobId: j.id, kind: 'log' }, orderBy: { id: 'desc' }, take: INLINE_LOG_EVENTS + 1 });
    const shown = events.slice(0, INLINE_LOG_EVENTS).reverse();
    return { ...toJobView(j), logs: logLines(shown), logsTruncated: events.length > INLINE_LOG_EVENTS };
  }

  /** Log lines oldest first, `limit` log events a page; the cursor also serves to follow new lines. */
  async logs(id: string, q: JobLogsQuery): Promise<JobLogsView> {
    const j = await this.find(id);
    const after = q.cursor ? BigInt(decodeCursor(eventCursor, q.cursor).e) : undefined;
    const events = await this.prisma.jobEvent.findMany({
      where: { jobId: j.id, kind: 'log', ...(after !== undefined ? { id: { gt: after } } : {}) },
      orderBy: { id: 'asc' },
      take: q.limit + 1,
    });
    const page = events.slice(0, q.limit);
    const last = page[page.length - 1];
    return { lines: logLines(page), nextCursor: last ? encodeCursor({ e: last.id.toString() }) : (q.cursor ?? null), more: events.length > q.limit };
  }

  /**
   * queued: cancelled at once. delivered/running: cancellation requested, the agent is told
   * (the job ends `cancelled` when it confirms). Finished: 409.
   */
  async cancel(caller: Caller, id: string): Promise<JobView> {
    const now = this.clock.now();
    const { job, tellAgent } = await this.prisma.$transaction(async (tx) => {
      const found = isUuid(id) ? await tx.job.findUnique({ where: { id } }) : null;
      if (!found) throw new NotFound(`job ${id} not found; list jobs with GET /api/v1/jobs`);
      // Lock the row: the gateway may be delivering or finishing it right now.
      await tx.$queryRaw`SELECT id FROM job WHERE id = ${found.id}::uuid FOR UPDATE`;
      const j = (await tx.job.findUnique({ where: { id: found.id } }))!;
      if (FINISHED.includes(j.status)) throw new Conflict(`job ${j.id} already finished with status ${j.status}; there is nothing to cancel`);
      const queued = j.status === 'queued';
      const updated = await tx.job.update({
        where: { id: j.id },
        data: queued ? { status: 'cancelled', cancelRequestedAt: now, finishedAt: now, error: `cancelled by ${caller.actor.name} before delivery` } : { cancelRequestedAt: j.cancelRequestedAt ?? now },
      });
      await this.audit.record(
        { actor: caller.actor, action: 'job.cancel', target: { type: 'job', id: j.id }, data: { deviceId: j.deviceId, type: j.type, statusBefore: j.status, cancelled: queued }, requestId: caller.requestId },
        tx,
      );
      return { job: updated, tellAgent: !queued };
    });
    if (job.finishedAt) this.metrics.jobFinished(job.type, job.status, job.createdAt, job.finishedAt);
    if (tellAgent) await this.scheduler.cancelRequested({ id: job.id, deviceId: job.deviceId });
    return toJobView(job);
  }
}
