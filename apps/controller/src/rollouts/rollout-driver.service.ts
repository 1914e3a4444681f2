import { randomUUID } from 'node:crypto';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { type JobType, jobTypes } from '@ibex/spec';
import { AuditService, systemActor } from '../audit/audit.service.js';
import { Clock } from '../common/clock.js';
import { failpoint } from '../common/failpoints.js';
import { CONFIG, type Config } from '../config/config.js';
import { AGENT_DELIVERY, type AgentDelivery } from '../delivery/agent-delivery.port.js';
import { Prisma, type Rollout } from '../generated/prisma/client.js';
import { JobTimerQueue } from '../gateway/jobs/job-timer.queue.js';
import { jobTimerId } from '../gateway/queues.js';
import { PrismaService } from '../prisma/prisma.service.js';
import { decide, type EngineDecision, type EngineTarget, isTerminalStatus, type JobOutcome, type RolloutStatus, type TargetState } from './rollout-engine.js';
import { deviceJob, type DeviceJob, jobFailure, type Previous, rollbackTargetOf, undoJob } from './rollout-payload.js';
import { RolloutQueue } from './rollout-queue.js';
import { resolveTargets } from './rollout-targets.js';
import { windowState } from './rollout-window.js';
import type { RolloutPayload, RolloutStart, RolloutStrategyBody } from './rollouts.dto.js';

type Tx = Prisma.TransactionClient;

/** Statuses in which a rollout still has something to drive. */
export const ACTIVE_ROLLOUT: RolloutStatus[] = ['scheduled', 'running', 'paused', 'waiting_approval', 'rolling_back'];
const UNFINISHED_JOB = ['queued', 'delivered', 'running'];
/** Rows per statement (Postgres takes at most 65535 parameters). */
const CHUNK = 2000;

interface TargetRow {
  deviceId: string;
  deviceName: string;
  wave: number;
  state: TargetState;
  reason: string | null;
  previous: Previous | null;
  online: boolean;
  desiredRevision: number | null;
  jobType: string | null;
  jobStatus: string | null;
  jobError: string | null;
  jobResult: unknown;
  rbStatus: string | null;
  rbError: string | null;
}

interface NewJob {
  id: string;
  deviceId: string;
  job: DeviceJob;
  /** Set when the row is written. */
  expiresAt?: Date;
}

/** The sections a spec sets (their states become `pending`; states of the others are removed). */
const specSections = (spec: Record<string, unknown>) =>
  Object.entries(spec)
    .filter(([, v]) => v !== undefined)
    .map(([k]) => k);

const chunks = <T>(xs: T[], n = CHUNK): T[][] => Array.from({ length: Math.ceil(xs.length / n) }, (_, i) => xs.slice(i * n, (i + 1) * n));

function outcome(type: string | null, status: string | null, error: string | null, result: unknown): JobOutcome | null {
  if (!status) return null;
  if (UNFINISHED_JOB.includes(status)) return { status: 'active' };
  const failure = jobFailure(type ?? '', status, error, result);
  return failure === null ? { status: 'succeeded' } : { status: 'failed', error: failure };
}

/**
 * Drives rollouts: a tick locks the rollout row (FOR UPDATE SKIP LOCKED: a replica that finds
 * it locked leaves it to the one holding it), reads everything, asks the pure engine, and in
 * the same transaction writes the outcome and creates the devices' jobs, the target row
 * recording the job id. So a job exists exactly when its target says so, whatever moment the
 * controller dies at; the next tick, on any replica, goes on from the rows.
 */
@Injectable()
export class RolloutDriver {
  private readonly log = new Logger('Rollouts');
  private timer?: NodeJS.Timeout;
  private sweeping?: Promise<void>;
  /** Rollouts ticking in this process, and whether another tick was asked for meanwhile. */
  private readonly busy = new Map<string, { again: boolean; done: Promise<void> }>();
  private stopped = false;

  constructor(
    private readonly prisma: PrismaService,
    private readonly clock: Clock,
    private readonly audit: AuditService,
    @Inject(CONFIG) private readonly config: Config,
    @Inject(AGENT_DELIVERY) private readonly delivery: AgentDelivery,
    private readonly timers: JobTimerQueue,
    private readonly queue: RolloutQueue,
  ) {}

  /** Every replica sweeps its active rollouts; the row lock makes one of them drive each. */
  start(): void {
    if (this.timer) return;
    this.stopped = false;
    this.timer = setInterval(() => void this.sweep(), this.config.rolloutTickMs);
    this.timer.unref();
    void this.sweep();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    this.timer = undefined;
    await this.sweeping;
    await Promise.all([...this.busy.values()].map((b) => b.done));
  }

  /** Ticks every rollout that can still change (also aborted ones waiting for a job's result). */
  sweep(): Promise<void> {
    this.sweeping ??= (async () => {
      const rows = await this.prisma.$queryRaw<{ id: string }[]>`
        SELECT id FROM rollout r WHERE r.status::text IN (${Prisma.join(ACTIVE_ROLLOUT)})
           OR EXISTS (SELECT 1 FROM rollout_target t WHERE t."rolloutId" = r.id AND t.state = 'in_progress')`;
      await Promise.all(rows.map((r) => this.tick(r.id)));
    })()
      .catch((err: Error) => this.log.error(`rollout sweep failed: ${err.message}`))
      .finally(() => (this.sweeping = undefined));
    return this.sweeping;
  }

  /** Drives one rollout now (a tick asked for while one runs in this process runs after it). */
  tick(id: string): Promise<void> {
    const running = this.busy.get(id);
    if (running) {
      running.again = true;
      return running.done;
    }
    const entry = { again: false, done: Promise.resolve() };
    entry.done = (async () => {
      try {
        do {
          entry.again = false;
          if (this.stopped) return;
          await this.tickOnce(id).catch((err: Error) => this.log.error(`rollout ${id}: tick failed: ${err.message}; the next sweep tries again`));
        } while (entry.again);
      } finally {
        this.busy.delete(id);
      }
    })();
    this.busy.set(id, entry);
    return entry.done;
  }

  private async tickOnce(id: string): Promise<void> {
    const now = this.clock.now();
    const t0 = performance.now();
    const phase: Record<string, number> = {};
    const mark = (name: string) => (phase[name] = Math.round(performance.now() - t0));
    const r = await this.prisma.$transaction(
      async (tx) => {
        mark('begin'); // waiting for a connection of the pool shows here
        const locked = await tx.$queryRaw<{ id: string }[]>`SELECT id FROM rollout WHERE id = ${id}::uuid FOR UPDATE SKIP LOCKED`;
        if (!locked.length) return null;
        const rollout = await tx.rollout.findUniqueOrThrow({ where: { id }, include: { waves: { orderBy: { index: 'asc' } } } });
        if (rollout.includeNewDevices && ACTIVE_ROLLOUT.includes(rollout.status) && rollout.status !== 'rolling_back') await this.addNewDevices(tx, rollout, rollout.waves.length - 1);
        const rows = await this.targets(tx, id, new Date(now.getTime() - this.config.offlineAfterMs));
        mark('read');
        const start = rollout.start as RolloutStart;
        const strategy = rollout.strategy as RolloutStrategyBody;
        const d = decide({
          now,
          status: rollout.status,
          reason: rollout.reason,
          startAt: start.kind === 'at' ? new Date(start.at) : null,
          window: start.kind === 'window' ? windowState(start.cron, start.timeZone, start.durationMinutes, now) : null,
          deadline: rollout.deadline,
          autoRollback: rollout.autoRollback,
          approvedThrough: rollout.approvedThrough,
          strategy,
          waves: rollout.waves,
          targets: rows.map(
            (t): EngineTarget => ({
              deviceId: t.deviceId,
              wave: t.wave,
              state: t.state,
              reason: t.reason,
              online: t.online,
              job: outcome(t.jobType, t.jobStatus, t.jobError, t.jobResult),
              rollback: outcome(null, t.rbStatus, t.rbError, null),
            }),
          ),
        });
        mark('decide');
        const jobs = await this.write(tx, rollout, rows, d, now);
        mark('write');
        if (jobs.length) failpoint('rollout-dispatch-before-commit');
        return { rollout, d, jobs };
      },
      { timeout: 120_000, maxWait: 30_000 },
    );
    if (!r) return;
    mark('commit');
    if (r.jobs.length) failpoint('rollout-dispatch-after-commit');
    await this.announce(r.jobs);
    mark('announce');
    // Slow ticks say where the time went (the benchmark's profile; bench/README.md).
    if (phase['announce']! > 1000) this.log.warn(`rollout ${id}: tick took ${phase['announce']} ms (${Object.entries(phase).map(([k, v]) => `${k} ${v}`).join(', ')}; ${r.jobs.length} job(s))`);
    if (r.d.wakeAt) await this.queue.wakeAt(id, r.d.wakeAt, now).catch((err: Error) => this.log.warn(`rollout ${id}: could not schedule its wake-up: ${err.message}; the sweep looks at it anyway`));
  }

  /** Devices that match the selector now and are not targets yet join the last wave. */
  private async addNewDevices(tx: Tx, rollout: Rollout, lastWave: number): Promise<void> {
    const found = await resolveTargets(tx, rollout.target as never, { excludeRollout: rollout.id });
    if (!found.length) return;
    await tx.rolloutTarget.createMany({ data: found.map((d) => ({ rolloutId: rollout.id, deviceId: d.id, deviceName: d.name, wave: Math.max(0, lastWave) })), skipDuplicates: true });
    await this.audit.record({ actor: systemActor('rollouts'), action: 'rollout.devices_added', target: { type: 'rollout', id: rollout.id }, data: { devices: found.length, names: found.slice(0, 20).map((d) => d.name) } }, tx);
  }

  private targets(tx: Tx, id: string, onlineSince: Date): Promise<TargetRow[]> {
    return tx.$queryRaw<TargetRow[]>`
      SELECT t."deviceId", t."deviceName", t.wave, t.state::text AS state, t.reason, t.previous,
             (d.id IS NOT NULL AND d."revokedAt" IS NULL AND d."connectedAt" IS NOT NULL AND d."lastSeenAt" > ${onlineSince.toISOString()}::timestamp) AS online,
             d."desiredRevision",
             -- A result only where the engine reads it (a job under way): a tick reads every target.
             j.type AS "jobType", j.status::text AS "jobStatus", j.error AS "jobError", CASE WHEN j.type = 'state.apply' AND t.state = 'in_progress' THEN j.result END AS "jobResult",
             rj.status::text AS "rbStatus", rj.error AS "rbError"
        FROM rollout_target t
        LEFT JOIN device d ON d.id = t."deviceId"
        LEFT JOIN job j ON j.id = t."jobId"
        LEFT JOIN job rj ON rj.id = t."rollbackJobId"
       WHERE t."rolloutId" = ${id}::uuid
       ORDER BY t.wave, t."deviceName"`;
  }

  /**
   * The generations inventories of the devices about to get their job (a generation payload
   * needs them), read only for those: facts are large, and reading them for every target made
   * each tick of a 10,000-device rollout detoast 10,000 facts documents.
   */
  private async inventories(tx: Tx, payload: RolloutPayload, deviceIds: string[]): Promise<Map<string, unknown>> {
    const out = new Map<string, unknown>();
    if (payload.kind === 'desired_state' || !deviceIds.length) return out;
    for (const ids of chunks(deviceIds, 5000)) {
      const rows = await tx.$queryRaw<Array<{ id: string; facts: unknown }>>`
        SELECT id, jsonb_build_object('generations', facts -> 'generations') AS facts FROM device WHERE id = ANY(${ids}::uuid[])`;
      for (const r of rows) out.set(r.id, r.facts);
    }
    return out;
  }

  /** Writes the decision and creates the jobs it asks for; returns the jobs to announce after commit. */
  private async write(tx: Tx, r: Rollout, rows: TargetRow[], d: EngineDecision, now: Date): Promise<NewJob[]> {
    const byId = new Map(rows.map((t) => [t.deviceId, t]));
    const payload = r.payload as RolloutPayload;
    const statusChanged = d.status !== r.status || d.reason !== r.reason;
    if (statusChanged) {
      await tx.rollout.update({
        where: { id: r.id },
        data: {
          status: d.status,
          reason: d.reason,
          ...(d.status === 'running' && !r.startedAt ? { startedAt: now } : {}),
          ...(isTerminalStatus(d.status) && !isTerminalStatus(r.status) ? { finishedAt: now } : {}),
        },
      });
      if (d.status !== r.status) {
        await this.audit.record({ actor: systemActor('rollouts'), action: `rollout.${d.status}`, target: { type: 'rollout', id: r.id }, data: { name: r.name, from: r.status, reason: d.reason } }, tx);
      }
    }
    if (d.wavesStarted.length) await tx.rolloutWave.updateMany({ where: { rolloutId: r.id, index: { in: d.wavesStarted }, startedAt: null }, data: { startedAt: now } });
    if (d.wavesFinished.length) await tx.rolloutWave.updateMany({ where: { rolloutId: r.id, index: { in: d.wavesFinished }, finishedAt: null }, data: { finishedAt: now } });

    // Outcomes, grouped so 10,000 results are a few statements.
    const groups = new Map<string, { state: TargetState; reason: string | null; ids: string[] }>();
    for (const c of d.changes) {
      const k = `${c.state}\u0000${c.reason ?? ''}`;
      const g = groups.get(k) ?? { state: c.state, reason: c.reason, ids: [] };
      g.ids.push(c.deviceId);
      groups.set(k, g);
    }
    for (const g of groups.values()) {
      const done = g.state !== 'pending' && g.state !== 'in_progress';
      for (const ids of chunks(g.ids)) {
        await tx.rolloutTarget.updateMany({ where: { rolloutId: r.id, deviceId: { in: ids } }, data: { state: g.state, reason: g.reason, ...(done ? { finishedAt: now } : {}) } });
      }
    }

    const created: NewJob[] = [];
    const expiresAt = r.deadline && r.deadline > now ? r.deadline : new Date(now.getTime() + this.config.jobDefaultExpiryMs);
    // Dispatch: the job rows and the targets pointing at them, in this transaction.
    if (d.dispatch.length) {
      const jobs: NewJob[] = [];
      const previous = new Map<string, Previous>();
      const skipped: { deviceId: string; reason: string }[] = [];
      const facts = await this.inventories(tx, payload, d.dispatch);
      for (const deviceId of d.dispatch) {
        const t = byId.get(deviceId)!;
        // A generation rollback is checked again against the inventory the device reports now.
        const choice = rollbackTargetOf(payload, facts.get(deviceId) ?? null);
        if (choice && 'skip' in choice) {
          skipped.push({ deviceId, reason: choice.skip });
          continue;
        }
        const rollbackTo = choice ? choice.to : null;
        jobs.push({ id: randomUUID(), deviceId, job: deviceJob(payload, rollbackTo, r.name) });
        const inv = (facts.get(deviceId) as { generations?: { current?: string | null } } | null | undefined)?.generations;
        previous.set(deviceId, payload.kind === 'desired_state' ? { revision: t.desiredRevision ?? 0 } : { generation: inv?.current ?? null });
      }
      for (const x of skipped) await tx.rolloutTarget.update({ where: { rolloutId_deviceId: { rolloutId: r.id, deviceId: x.deviceId } }, data: { state: 'skipped', reason: x.reason, finishedAt: now } });
      if (payload.kind === 'desired_state') await this.writeRevisions(tx, jobs.map((j) => j.deviceId), payload.spec, payload.message || `rollout ${r.name}`, r.createdBy, now);
      await this.insertJobs(tx, jobs, r, expiresAt);
      for (const part of chunks(jobs, 5000)) {
        await tx.$executeRaw`
          UPDATE rollout_target t SET state = 'in_progress', reason = NULL, "jobId" = v.job, previous = v.prev, attempts = t.attempts + 1, "startedAt" = ${now.toISOString()}::timestamp, "finishedAt" = NULL
            FROM unnest(${part.map((j) => j.deviceId)}::uuid[], ${part.map((j) => j.id)}::uuid[], ${part.map((j) => JSON.stringify(previous.get(j.deviceId)))}::jsonb[]) AS v(device, job, prev)
           WHERE t."rolloutId" = ${r.id}::uuid AND t."deviceId" = v.device`;
      }
      const perWave: Record<string, number> = {};
      for (const id of jobs.map((j) => j.deviceId)) perWave[byId.get(id)!.wave] = (perWave[byId.get(id)!.wave] ?? 0) + 1;
      await this.audit.record({ actor: systemActor('rollouts'), action: 'rollout.dispatch', target: { type: 'rollout', id: r.id }, data: { name: r.name, devices: jobs.length, perWave, jobType: jobs[0]?.job.type ?? null, skipped: skipped.length } }, tx);
      created.push(...jobs);
    }

    if (d.rollback.length) {
      const jobs: NewJob[] = [];
      const cannot: string[] = [];
      for (const deviceId of d.rollback) {
        const t = byId.get(deviceId)!;
        const undo = undoJob(payload, t.previous, r.name);
        if (!undo) {
          cannot.push(deviceId);
          continue;
        }
        if (payload.kind === 'desired_state' && t.previous && 'revision' in t.previous) {
          const before = t.previous.revision ? await tx.desiredRevision.findUnique({ where: { deviceId_revision: { deviceId, revision: t.previous.revision } } }) : null;
          if (!before) {
            cannot.push(deviceId);
            continue;
          }
          await this.writeRevisions(tx, [deviceId], before.spec as Record<string, unknown>, `rollback of rollout ${r.name} (back to revision ${before.revision})`, r.createdBy, now);
        }
        jobs.push({ id: randomUUID(), deviceId, job: undo });
      }
      if (cannot.length) {
        await tx.rolloutTarget.updateMany({ where: { rolloutId: r.id, deviceId: { in: cannot } }, data: { reason: 'rollback failed: nothing known to go back to (no earlier revision or generation)' } });
      }
      await this.insertJobs(tx, jobs, r, new Date(now.getTime() + this.config.jobDefaultExpiryMs));
      for (const part of chunks(jobs)) {
        const values = Prisma.join(part.map((j) => Prisma.sql`(${j.deviceId}::uuid, ${j.id}::uuid)`));
        await tx.$executeRaw`UPDATE rollout_target t SET "rollbackJobId" = v.job FROM (VALUES ${values}) AS v(device, job) WHERE t."rolloutId" = ${r.id}::uuid AND t."deviceId" = v.device`;
      }
      if (jobs.length) await this.audit.record({ actor: systemActor('rollouts'), action: 'rollout.rollback_dispatch', target: { type: 'rollout', id: r.id }, data: { name: r.name, devices: jobs.length } }, tx);
      created.push(...jobs);
    }
    return created;
  }

  /** The jobs' rows, a statement per 5,000 (one array parameter per column, whatever the count). */
  private async insertJobs(tx: Tx, jobs: NewJob[], r: Rollout, expiresAt: Date): Promise<void> {
    // Wall-clock creation time, as the rows' own default would give.
    const created = new Date().toISOString();
    for (const j of jobs) j.expiresAt = expiresAt;
    for (const part of chunks(jobs, 5000)) {
      const def = (j: NewJob) => jobTypes[j.job.type as JobType];
      await tx.$executeRaw`
        INSERT INTO job (id, "deviceId", type, params, status, "maxAttempts", "timeoutMs", "expiresAt", "createdBy", "createdAt", "updatedAt")
        SELECT v.id, v.device, v.type, v.params, 'queued', v.max, v.timeout, ${expiresAt.toISOString()}::timestamp(3), ${`rollout:${r.id}`}, ${created}::timestamp(3), ${created}::timestamp(3)
          FROM unnest(${part.map((j) => j.id)}::uuid[], ${part.map((j) => j.deviceId)}::uuid[], ${part.map((j) => j.job.type)}::text[], ${part.map((j) => JSON.stringify(j.job.params))}::jsonb[],
                      ${part.map((j) => def(j).defaultMaxAttempts)}::int[], ${part.map((j) => def(j).defaultTimeoutMs)}::int[]) AS v(id, device, type, params, max, timeout)`;
    }
  }

  /**
   * The next desired revision of many devices, the same spec for all (as PUT desired-state
   * writes it, a few statements per 1,000 devices: one device at a time, 10,000 took seconds
   * of the dispatch tick).
   */
  private async writeRevisions(tx: Tx, deviceIds: string[], spec: Record<string, unknown>, message: string, createdBy: string | null, now: Date): Promise<void> {
    const sections = specSections(spec);
    const at = now.toISOString();
    for (const ids of chunks(deviceIds, 1000)) {
      const devices = await tx.$queryRaw<Array<{ id: string; desiredRevision: number }>>`
        UPDATE device SET "desiredRevision" = "desiredRevision" + 1, "updatedAt" = ${at}::timestamp(3)
         WHERE id IN (${Prisma.join(ids.map((id) => Prisma.sql`${id}::uuid`))})
        RETURNING id, "desiredRevision"`;
      await tx.desiredRevision.createMany({ data: devices.map((d) => ({ deviceId: d.id, revision: d.desiredRevision, spec: spec as Prisma.InputJsonObject, message, createdBy })) });
      await tx.deviceSectionState.deleteMany({ where: { deviceId: { in: ids }, section: { notIn: sections } } });
      if (!sections.length || !devices.length) continue;
      const rows = devices.flatMap((d) => sections.map((section) => Prisma.sql`(${d.id}::uuid, ${section}, 'pending'::"SectionState", ${d.desiredRevision}::int, ${at}::timestamp(3), ${at}::timestamp(3))`));
      await tx.$executeRaw`
        INSERT INTO device_section_state ("deviceId", section, state, revision, "observedAt", "updatedAt") VALUES ${Prisma.join(rows)}
        ON CONFLICT ("deviceId", section) DO UPDATE SET state = EXCLUDED.state, revision = EXCLUDED.revision, error = NULL, detail = NULL, "observedAt" = EXCLUDED."observedAt", "updatedAt" = EXCLUDED."updatedAt"`;
    }
  }

  /**
   * After commit: tell the devices, then arm the jobs' expiry (hints: a lost kick only delays
   * delivery to the next Hello or sweep, a lost expiry timer is fired by the job sweep). The
   * kicks first: 10,000 expiry timers take BullMQ about a second, the devices need not wait.
   */
  private async announce(jobs: NewJob[]): Promise<void> {
    if (!jobs.length) return;
    await Promise.all([...new Set(jobs.map((j) => j.deviceId))].map((id) => this.delivery.kick(id)));
    const now = this.clock.now().getTime();
    for (const part of chunks(jobs, 1000)) {
      await this.timers.queue
        .addBulk(
          part.map((j) => {
            const t = { name: 'expire' as const, jobId: j.id };
            return { name: t.name, data: t, opts: { jobId: jobTimerId(t), delay: Math.max(0, (j.expiresAt?.getTime() ?? now) - now) } };
          }),
        )
        .catch((err: Error) => this.log.warn(`could not arm job expiries: ${err.message}; the job sweep expires them`));
    }
  }
}
