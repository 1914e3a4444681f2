import { Inject, Injectable, Logger } from '@nestjs/common';
import type { GenerationsInventory } from '@ibex/spec';
import { Clock } from '../../common/clock.js';
import { failpoint } from '../../common/failpoints.js';
import { CONFIG, type Config } from '../../config/config.js';
import { type Job, Prisma } from '../../generated/prisma/client.js';
import { MetricsService } from '../../metrics/metrics.service.js';
import { PrismaService } from '../../prisma/prisma.service.js';
import type { JobUpdateInput } from '../agent-messages.schema.js';
import { storeBatch } from '../store-batch.js';
import { JobTimerQueue } from './job-timer.queue.js';
import { ACTIVE_STATUSES, applyJobUpdate, eventData, type JobChange } from './job-transitions.js';

type Tx = Prisma.TransactionClient;

/** What happened to a JobUpdate; every outcome is acknowledged to the agent. */
export type JobUpdateOutcome = 'applied' | 'duplicate' | 'stale' | 'unknown_job';

/** Updates stored in one transaction at most (a few statements, whatever the count). */
export const JOB_UPDATE_BATCH_MAX = 500;
/**
 * Batch transactions at once. Leaves connections of the pool (10) for everything else, however
 * many agents report at once: the updates waiting meanwhile simply make the next batch bigger.
 */
const MAX_BATCHES = 3;
/** Update ids this process stored lately (per device), answered without a transaction when re-sent. */
const REMEMBERED = 100_000;

interface Queued {
  deviceId: string;
  u: JobUpdateInput;
  resolve: (o: JobUpdateOutcome) => void;
  reject: (err: unknown) => void;
}

interface Stored {
  outcome: JobUpdateOutcome;
  retryAt?: Date | undefined;
  finished?: { type: string; status: string; createdAt: Date } | undefined;
}

/** Columns a job update can change, with their SQL types (the bulk UPDATE casts to them). */
const JOB_COLUMNS = {
  status: '"JobStatus"',
  startedAt: 'timestamp(3)',
  finishedAt: 'timestamp(3)',
  notBefore: 'timestamp(3)',
  progressPercent: 'int',
  progressMessage: 'text',
  error: 'text',
  result: 'jsonb',
} as const;
type JobColumn = keyof typeof JOB_COLUMNS;

/** A job of the batch as its earlier updates left it, with what they changed. */
interface JobWork {
  read: Job;
  /** Status after the updates applied so far (stale checks of later ones use it). */
  status: Job['status'];
  data: Partial<Record<JobColumn, unknown>>;
  changes: Array<{ index: number; change: JobChange }>;
}

/**
 * Stores and applies the JobUpdates agents send (protocol.md "Jobs", controller side).
 *
 * Updates of all streams are queued and stored in batches, one transaction each, a few
 * statements per batch (read the jobs, insert the events skipping known update ids, one UPDATE
 * per kind of change). One transaction per update made a rollout's 10,000 results queue for
 * minutes, and a backlog of re-sent duplicates (each a transaction too) stalled the next rollout
 * on the same devices behind it (bench/README.md, "bench:rollout"). A caller's promise settles
 * after its batch committed, so the gateway still acknowledges an update only once it is stored.
 */
@Injectable()
export class JobUpdates {
  private readonly log = new Logger('JobUpdates');
  private readonly queue: Queued[] = [];
  private running = 0;
  private pumpSoon?: NodeJS.Immediate;
  /** `<deviceId> <updateId>` of updates committed here lately, oldest first. */
  private readonly committed = new Set<string>();
  /** Transactions run and updates stored, for the tests and /metrics. */
  readonly stats = { batches: 0, updates: 0 };

  constructor(
    @Inject(CONFIG) private readonly config: Config,
    private readonly prisma: PrismaService,
    private readonly clock: Clock,
    private readonly timers: JobTimerQueue,
    private readonly metrics: MetricsService,
  ) {
    metrics.observeCounter('ibex_job_update_batches_total', 'Transactions that stored agents\u2019 job updates (each stores a batch of them).', () => this.stats.batches);
    metrics.observeCounter('ibex_job_updates_total', 'Job updates stored (any outcome: applied, duplicate, stale, unknown job).', () => this.stats.updates);
  }

  /**
   * Stores one update (in the next batch): the job_event row keyed by update_id (a repeat is
   * only acknowledged again), then the transition, applied only to the job's current attempt
   * while it is with the agent. A retry's kick is scheduled after commit.
   */
  apply(deviceId: string, u: JobUpdateInput): Promise<JobUpdateOutcome> {
    // A re-send of an update this process committed (an agent whose Ack was slow re-sends,
    // possibly many times): a duplicate, known without asking Postgres. Its job_event row is
    // never removed except with its job, and then the update would be dropped all the same.
    if (this.committed.has(storedKey(deviceId, u.updateId))) return Promise.resolve('duplicate');
    return new Promise((resolve, reject) => {
      this.queue.push({ deviceId, u, resolve, reject });
      // After the messages that arrived together: they go in one batch, not one each.
      this.pumpSoon ??= setImmediate(() => {
        this.pumpSoon = undefined;
        this.pump();
      });
    });
  }

  /** Updates waiting for a batch. */
  get queued(): number {
    return this.queue.length;
  }

  private pump(): void {
    while (this.running < MAX_BATCHES && this.queue.length) {
      const batch = this.queue.splice(0, JOB_UPDATE_BATCH_MAX);
      this.running++;
      void this.run(batch).finally(() => {
        this.running--;
        this.pump();
      });
    }
  }

  private async run(batch: Queued[]): Promise<void> {
    const now = this.clock.now();
    const done = await storeBatch(batch, 'job updates', this.log, (b) => this.store(b, now), (q) => this.run([q]));
    if (!done) return;
    const stored = done.stored;
    this.stats.batches++;
    this.stats.updates += batch.length;
    for (const [i, q] of batch.entries()) if (stored[i]!.outcome !== 'unknown_job') this.remember(storedKey(q.deviceId, q.u.updateId));
    for (const [i, q] of batch.entries()) {
      const s = stored[i]!;
      try {
        if (s.finished) this.metrics.jobFinished(s.finished.type, s.finished.status, s.finished.createdAt, now);
        if (s.outcome === 'applied' && q.u.update.$case === 'result') failpoint('job-result-before-ack');
        if (s.outcome === 'unknown_job') this.log.warn(`device ${q.deviceId} sent update ${q.u.updateId} for job ${q.u.jobId}, which it does not have; acknowledged and dropped`);
        if (s.retryAt) await this.timers.schedule({ name: 'retry', jobId: q.u.jobId, attempt: q.u.attempt }, s.retryAt);
        q.resolve(s.outcome);
      } catch (err) {
        q.reject(err);
      }
    }
  }

  private remember(key: string): void {
    this.committed.delete(key);
    this.committed.add(key);
    if (this.committed.size > REMEMBERED) this.committed.delete(this.committed.values().next().value!);
  }

  /** One transaction for the batch; the outcomes in the batch's order. */
  private store(batch: Queued[], now: Date): Promise<Stored[]> {
    return this.prisma.$transaction(
      async (tx) => {
        const out: Stored[] = batch.map(() => ({ outcome: 'unknown_job' }));
        const rows = await tx.job.findMany({ where: { id: { in: [...new Set(batch.map((q) => q.u.jobId))] } } });
        const jobs = new Map(rows.map((j) => [j.id, j]));

        // Scoped to the device: an agent cannot touch another device's jobs. An update id seen
        // twice in the batch (a re-send on a second stream) is the first one's duplicate.
        const fresh: number[] = [];
        const ids = new Set<string>();
        for (const [i, q] of batch.entries()) {
          if (jobs.get(q.u.jobId)?.deviceId !== q.deviceId) continue;
          if (ids.has(q.u.updateId)) out[i] = { outcome: 'duplicate' };
          else {
            ids.add(q.u.updateId);
            fresh.push(i);
          }
        }
        const inserted = await this.insertEvents(tx, fresh.map((i) => batch[i]!.u), now);

        // Transitions in arrival order, each on the job as the updates before it left it.
        const work = new Map<string, JobWork>();
        for (const i of fresh) {
          const { u } = batch[i]!;
          if (!inserted.has(u.updateId)) {
            out[i] = { outcome: 'duplicate' };
            continue;
          }
          const read = jobs.get(u.jobId)!;
          const w = work.get(read.id) ?? { read, status: read.status, data: {}, changes: [] };
          work.set(read.id, w);
          if (u.attempt !== read.attempt || !ACTIVE_STATUSES.includes(w.status)) {
            out[i] = { outcome: 'stale' };
            continue;
          }
          const change = applyJobUpdate({ ...read, status: w.status }, u.update, now, this.config.jobRetryBackoffMs);
          out[i] = { outcome: 'applied' };
          if (!change) continue;
          Object.assign(w.data, change.data);
          if (change.data.status) w.status = change.data.status as Job['status'];
          w.changes.push({ index: i, change });
        }

        // A job that moved on since it was read (a timeout, another replica) takes none of them.
        const updated = await this.writeJobs(tx, [...work.values()].filter((w) => w.changes.length), now);
        let results = false;
        for (const w of work.values()) {
          for (const { index, change } of w.changes) {
            if (!updated.has(w.read.id)) {
              out[index] = { outcome: 'stale' };
              continue;
            }
            const deviceId = batch[index]!.deviceId;
            if (change.facts) await tx.device.update({ where: { id: deviceId }, data: { facts: change.facts as Prisma.InputJsonValue } });
            if (change.generations) await this.storeGenerations(tx, deviceId, change.generations);
            if (batch[index]!.u.update.$case === 'result') results = true;
            const finished = change.data.finishedAt ? { type: w.read.type, status: String(change.data.status), createdAt: w.read.createdAt } : undefined;
            out[index] = { outcome: 'applied', retryAt: change.retryAt, finished };
          }
        }
        if (results) failpoint('job-result-before-commit');
        return out;
      },
      // A batch waits for one of the pool's connections like any query, not for the first free one.
      { maxWait: 10_000, timeout: 60_000 },
    );
  }

  /** Inserts the updates' job_event rows; returns the update ids that were new. */
  private async insertEvents(tx: Tx, updates: JobUpdateInput[], now: Date): Promise<Set<string>> {
    if (!updates.length) return new Set();
    const values = updates.map(
      (u) => Prisma.sql`(${u.updateId}, ${u.jobId}::uuid, ${u.attempt}::int, ${u.update.$case}, ${JSON.stringify(eventData(u.update))}::jsonb, ${now.toISOString()}::timestamp(3))`,
    );
    const rows = await tx.$queryRaw<Array<{ updateId: string }>>`
      INSERT INTO job_event ("updateId", "jobId", attempt, kind, data, "createdAt") VALUES ${Prisma.join(values)}
      ON CONFLICT ("updateId") DO NOTHING RETURNING "updateId"`;
    return new Set(rows.map((r) => r.updateId));
  }

  /**
   * One UPDATE per set of changed columns (started; succeeded; started and succeeded...), each
   * row only if its attempt and status are still those read; returns the ids updated.
   */
  private async writeJobs(tx: Tx, work: JobWork[], now: Date): Promise<Set<string>> {
    const groups = new Map<string, JobWork[]>();
    for (const w of work) {
      const key = Object.keys(w.data).sort().join(',');
      groups.set(key, [...(groups.get(key) ?? []), w]);
    }
    const updated = new Set<string>();
    for (const [key, ws] of groups) {
      const cols = key.split(',') as JobColumn[];
      for (const c of cols) if (!(c in JOB_COLUMNS)) throw new Error(`job update changes column ${c}, which the batch writer does not know`);
      const values = ws.map((w) => Prisma.sql`(${w.read.id}::uuid, ${w.read.attempt}::int, ${w.read.status}::text, ${Prisma.join(cols.map((c) => sqlValue(c, w.data[c])))})`);
      const set = Prisma.join(
        cols.map((c) => Prisma.raw(`"${c}" = v."${c}"`)),
        ', ',
      );
      const names = Prisma.raw(cols.map((c) => `"${c}"`).join(', '));
      const rows = await tx.$queryRaw<Array<{ id: string }>>`
        UPDATE job j SET ${set}, "updatedAt" = ${now.toISOString()}::timestamp(3)
          FROM (VALUES ${Prisma.join(values)}) AS v(id, attempt, status_read, ${names})
         WHERE j.id = v.id AND j.attempt = v.attempt AND j.status::text = v.status_read
           AND j.status::text IN (${Prisma.join(ACTIVE_STATUSES)})
        RETURNING j.id`;
      for (const r of rows) updated.add(r.id);
    }
    return updated;
  }

  /**
   * A rollback's output is the inventory after the switch: it replaces the stored one unless a
   * FactsReport collected later already did (the agent also reports facts after the change).
   * Facts never reported: nothing to attach it to, the next Hello brings both.
   * Read with the row locked (FOR UPDATE): a FactsReport committing between the read and the
   * write would otherwise be overwritten by this older inventory.
   */
  private async storeGenerations(tx: Tx, deviceId: string, inv: GenerationsInventory): Promise<void> {
    const [d] = await tx.$queryRaw<Array<{ facts: Prisma.JsonValue }>>`SELECT facts FROM device WHERE id = ${deviceId}::uuid FOR UPDATE`;
    const facts = d?.facts;
    if (!facts || typeof facts !== 'object' || Array.isArray(facts)) return;
    const stored = facts.generations as { collectedAtMs?: unknown } | null | undefined;
    if (stored && typeof stored.collectedAtMs === 'number' && stored.collectedAtMs > inv.collectedAtMs) return;
    await tx.device.update({ where: { id: deviceId }, data: { facts: { ...facts, generations: inv } as Prisma.InputJsonValue } });
  }
}

const storedKey = (deviceId: string, updateId: string) => `${deviceId} ${updateId}`;

/** A column's new value as a typed SQL parameter (VALUES rows need their types spelled out). */
function sqlValue(column: JobColumn, value: unknown): Prisma.Sql {
  const type = Prisma.raw(JOB_COLUMNS[column]);
  if (value === null || value === undefined || value === Prisma.DbNull || value === Prisma.JsonNull) return Prisma.sql`NULL::${type}`;
  if (value instanceof Date) return Prisma.sql`${value.toISOString()}::${type}`;
  if (column === 'result') return Prisma.sql`${JSON.stringify(value)}::jsonb`;
  if (column === 'status') return Prisma.sql`${String(value)}::${type}`;
  return Prisma.sql`${value}::${type}`;
}
