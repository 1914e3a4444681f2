import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Inject, Injectable } from '@nestjs/common';
import { jobTypes } from '@ibex/spec';
import { AuditService, type systemActor } from '../audit/audit.service.js';
import { Clock } from '../common/clock.js';
import { Conflict, NotFound, ValidationFailed } from '../common/errors.js';
import { CONFIG, type Config } from '../config/config.js';
import { JOB_SCHEDULER, type JobScheduler } from '../delivery/agent-delivery.port.js';
import { Prisma, type Rollout, type RolloutTarget, type RolloutWave } from '../generated/prisma/client.js';
import { PrismaService } from '../prisma/prisma.service.js';
import { decodeCursor, newestFirstKey, newestFirstOrder, olderThan, type Page, toPage } from '../api/http/pagination.js';
import type { Caller } from '../api/http/request-context.js';
import { iso, isUuid } from '../api/http/schemas.js';
import { z } from 'zod';
import { ACTIVE_ROLLOUT, RolloutDriver } from './rollout-driver.service.js';
import type { RolloutStatus, TargetState } from './rollout-engine.js';
import { inventoryOf, rollbackTargetOf } from './rollout-payload.js';
import { ArtifactReferrers, type ReferencedArtifact } from '../artifacts/artifact-referrers.service.js';
import { ArtifactRefs } from '../artifacts/artifact-refs.service.js';
import { resolveTargets, type TargetDevice } from './rollout-targets.js';
import { planWaves } from './rollout-waves.js';
import { cronProblems } from './rollout-window.js';
import type { CreateRolloutBody, CreateRolloutQuery, DevicePlanSummary, ListRolloutsQuery, ListTargetsQuery, RolloutPayload, RolloutPreview, RolloutView } from './rollouts.dto.js';

const STATES: TargetState[] = ['pending', 'in_progress', 'succeeded', 'failed', 'rolled_back', 'skipped'];
const UNFINISHED = ['queued', 'delivered', 'running'];
const POLL_MS = 250;
const targetCursor = z.object({ n: z.string() });

type Counts = Record<TargetState, number>;
const zero = (): Counts => Object.fromEntries(STATES.map((s) => [s, 0])) as Counts;

/** A rollout body as stored, minus `start`: what a schedule keeps. */
export type RolloutTemplate = Omit<CreateRolloutBody, 'start'>;

/** Where each targeted device would go: wave (by name order) or skipped with a reason. */
interface Layout {
  waves: { index: number; name: string; requiresApproval: boolean; devices: TargetDevice[] }[];
  skipped: { device: TargetDevice; reason: string }[];
}

export function layoutOf(devices: TargetDevice[], body: Pick<CreateRolloutBody, 'payload' | 'strategy'>): Layout {
  const skipped: Layout['skipped'] = [];
  const eligible: TargetDevice[] = [];
  for (const d of devices) {
    const c = rollbackTargetOf(body.payload, d.facts);
    if (c && 'skip' in c) skipped.push({ device: d, reason: c.skip });
    else eligible.push(d);
  }
  const byId = new Map(eligible.map((d) => [d.id, d]));
  const waves = planWaves(
    eligible.map((d) => d.id),
    body.strategy,
  ).map((w) => ({ index: w.index, name: w.name, requiresApproval: w.requiresApproval, devices: w.deviceIds.map((id) => byId.get(id)!) }));
  return { waves, skipped };
}

function toView(r: Rollout & { waves: RolloutWave[] }, counts: Map<number, Counts>): RolloutView {
  const total = zero();
  for (const c of counts.values()) for (const s of STATES) total[s] += c[s];
  const sum = (c: Counts) => STATES.reduce((n, s) => n + c[s], 0);
  return {
    id: r.id,
    name: r.name,
    status: r.status,
    reason: r.reason,
    target: r.target as RolloutView['target'],
    payload: r.payload as Record<string, unknown>,
    strategy: r.strategy as Record<string, unknown>,
    start: r.start as Record<string, unknown>,
    deadline: iso(r.deadline),
    includeNewDevices: r.includeNewDevices,
    autoRollback: r.autoRollback,
    approvedThrough: r.approvedThrough,
    scheduleId: r.scheduleId,
    createdBy: r.createdBy,
    createdAt: iso(r.createdAt),
    startedAt: iso(r.startedAt),
    finishedAt: iso(r.finishedAt),
    total: sum(total),
    counts: total,
    waves: r.waves
      .sort((a, b) => a.index - b.index)
      .map((w) => {
        const c = counts.get(w.index) ?? zero();
        return { index: w.index, name: w.name, requiresApproval: w.requiresApproval, startedAt: iso(w.startedAt), finishedAt: iso(w.finishedAt), total: sum(c), counts: c };
      }),
  };
}

function targetView(t: RolloutTarget) {
  return {
    deviceId: t.deviceId,
    deviceName: t.deviceName,
    wave: t.wave,
    state: t.state,
    reason: t.reason,
    attempts: t.attempts,
    jobId: t.jobId,
    rollbackJobId: t.rollbackJobId,
    startedAt: iso(t.startedAt),
    finishedAt: iso(t.finishedAt),
  };
}

/** Rollouts: create (or dry-run), read with per-wave progress, and the operator's controls. The driving is RolloutDriver's. */
@Injectable()
export class RolloutsService {
  constructor(
    private readonly prisma: PrismaService,
    private readonly audit: AuditService,
    private readonly clock: Clock,
    @Inject(CONFIG) private readonly config: Config,
    @Inject(JOB_SCHEDULER) private readonly scheduler: JobScheduler,
    private readonly driver: RolloutDriver,
    private readonly artifactRefs: ArtifactRefs,
    referrers: ArtifactReferrers,
  ) {
    // A rollout not finished yet still sends its payload's artifacts (resolved to their id) to devices.
    referrers.register({
      kind: 'rollouts',
      async referrersOf(a: ReferencedArtifact) {
        const rows = await prisma.$queryRaw<Array<{ id: string; name: string; status: string }>>`
          SELECT id::text, name, status::text FROM rollout
          WHERE status NOT IN ('succeeded', 'failed', 'aborted') AND strpos(payload::text, ${a.id}) > 0
          ORDER BY "createdAt" LIMIT 5`;
        return rows.map((r) => `rollout ${r.id} ("${r.name}", ${r.status})`);
      },
    });
  }

  /** The payload with its artifact references (`artifact: "name@version"`) resolved; an unknown one is a 400 naming the field. */
  resolvePayload<T extends { payload: RolloutPayload }>(body: T, at = 'payload'): Promise<T> {
    return this.artifactRefs.resolve(body.payload, at).then((payload) => ({ ...body, payload }));
  }

  /** Checks what the schema cannot: the cron and time zone of a window, a deadline in the past. */
  validate(body: Pick<CreateRolloutBody, 'deadline'> & { start?: CreateRolloutBody['start'] }): void {
    const issues: { path: string; message: string }[] = [];
    if (body.start?.kind === 'window') for (const p of cronProblems(body.start.cron, body.start.timeZone)) issues.push({ path: `start.${p.field}`, message: p.message });
    if (body.deadline && new Date(body.deadline) <= this.clock.now()) issues.push({ path: 'deadline', message: 'is in the past; give a time after now, or none' });
    if (body.start?.kind === 'at' && body.deadline && new Date(body.deadline) <= new Date(body.start.at)) issues.push({ path: 'deadline', message: 'is before start.at' });
    if (issues.length) throw new ValidationFailed(`invalid rollout: ${issues.map((i) => `${i.path} ${i.message}`).join('; ')}`, issues);
  }

  async create(caller: Caller, body: CreateRolloutBody, q: CreateRolloutQuery, signal?: AbortSignal): Promise<RolloutView | RolloutPreview> {
    this.validate(body);
    body = await this.resolvePayload(body);
    const devices = await resolveTargets(this.prisma, body.target);
    const plan = layoutOf(devices, body);
    if (q.dryRun) return this.preview(caller, body.payload, plan, q.wait, signal);
    return this.insert(caller, body, plan, null);
  }

  /** Stores a rollout (from the API or a schedule) and drives its first tick. */
  async insert(caller: { actor: Caller['actor'] | ReturnType<typeof systemActor>; requestId?: string }, body: CreateRolloutBody, plan: Layout, scheduleId: string | null, tx?: Prisma.TransactionClient): Promise<RolloutView> {
    const run = async (db: Prisma.TransactionClient) => {
      const r = await db.rollout.create({
        data: {
          name: body.name,
          status: 'scheduled',
          target: body.target as Prisma.InputJsonObject,
          payload: body.payload as Prisma.InputJsonObject,
          strategy: body.strategy as Prisma.InputJsonObject,
          start: body.start as Prisma.InputJsonObject,
          deadline: body.deadline ? new Date(body.deadline) : null,
          includeNewDevices: body.includeNewDevices,
          autoRollback: body.autoRollback,
          scheduleId,
          createdBy: caller.actor.id ?? null,
        },
      });
      await db.rolloutWave.createMany({ data: plan.waves.map((w) => ({ rolloutId: r.id, index: w.index, name: w.name, requiresApproval: w.requiresApproval })) });
      const last = plan.waves.length - 1;
      const rows = [
        ...plan.waves.flatMap((w) => w.devices.map((d) => ({ rolloutId: r.id, deviceId: d.id, deviceName: d.name, wave: w.index }))),
        ...plan.skipped.map((s) => ({ rolloutId: r.id, deviceId: s.device.id, deviceName: s.device.name, wave: last, state: 'skipped' as const, reason: s.reason })),
      ];
      for (let i = 0; i < rows.length; i += 5000) await db.rolloutTarget.createMany({ data: rows.slice(i, i + 5000) });
      await this.audit.record(
        {
          actor: caller.actor,
          action: 'rollout.create',
          target: { type: 'rollout', id: r.id },
          data: { name: r.name, payload: body.payload.kind, devices: rows.length, skipped: plan.skipped.length, waves: plan.waves.map((w) => w.devices.length), scheduleId },
          ...(caller.requestId ? { requestId: caller.requestId } : {}),
        },
        db,
      );
      return r;
    };
    const r = tx ? await run(tx) : await this.prisma.$transaction(run, { timeout: 60_000 });
    // The first tick runs on its own (also the sweep's): a request for 10,000 devices must not
    // wait for their jobs to be written.
    if (!tx) void this.driver.tick(r.id);
    return tx ? toView({ ...r, waves: [] }, new Map()) : this.get(r.id);
  }

  /**
   * The dry run: waves and devices as they would be, and per online device what it would do:
   * for desired state the agent's own plan (a state.plan job per device, the same as POST
   * /devices/{d}/plan; it changes nothing), for generations what the inventory says.
   */
  private async preview(caller: Caller, payload: RolloutPayload, plan: Layout, waitSeconds: number, signal?: AbortSignal, stored?: Rollout): Promise<RolloutPreview> {
    const now = this.clock.now();
    const onlineSince = new Date(now.getTime() - this.config.offlineAfterMs);
    const all = [...plan.waves.flatMap((w) => w.devices), ...plan.skipped.map((s) => s.device)];
    const rows = all.length ? await this.prisma.device.findMany({ where: { id: { in: all.map((d) => d.id) } }, select: { id: true, connectedAt: true, lastSeenAt: true } }) : [];
    const online = new Set(rows.filter((d) => d.connectedAt && d.lastSeenAt && d.lastSeenAt > onlineSince).map((d) => d.id));
    const summaries = new Map<string, DevicePlanSummary>();
    const planJobs = new Map<string, string>();
    if (payload.kind === 'desired_state') {
      const targets = plan.waves.flatMap((w) => w.devices).filter((d) => online.has(d.id));
      const def = jobTypes['state.plan'];
      const jobs = targets.map((d) => ({ id: randomUUID(), deviceId: d.id }));
      await this.prisma.$transaction(async (tx) => {
        await tx.job.createMany({
          data: jobs.map((j) => ({
            id: j.id,
            deviceId: j.deviceId,
            type: 'state.plan',
            params: { spec: payload.spec } as Prisma.InputJsonObject,
            maxAttempts: 1,
            timeoutMs: Math.max(1, waitSeconds) * 1000,
            expiresAt: new Date(now.getTime() + Math.max(1, waitSeconds) * 1000 + 60_000),
            createdBy: caller.actor.id,
          })),
        });
        // The plan jobs are what a dry run writes; the entry names the stored rollout planned again
        // (a dry run before create has no rollout yet, and names none).
        if (jobs.length) {
          await this.audit.record(
            { actor: caller.actor, action: 'rollout.dry_run', ...(stored ? { target: { type: 'rollout', id: stored.id } } : {}), data: { ...(stored ? { name: stored.name } : {}), planJobs: jobs.length, jobType: 'state.plan', defaultTimeoutMs: def.defaultTimeoutMs }, requestId: caller.requestId },
            tx,
          );
        }
      });
      for (const j of jobs) {
        planJobs.set(j.deviceId, j.id);
        await this.scheduler.jobCreated({ id: j.id, deviceId: j.deviceId, expiresAt: new Date(now.getTime() + waitSeconds * 1000 + 60_000) });
      }
      const deadline = Date.now() + waitSeconds * 1000;
      let done = jobs.length === 0;
      while (!done && Date.now() < deadline && !signal?.aborted) {
        const open = await this.prisma.job.count({ where: { id: { in: jobs.map((j) => j.id) }, status: { in: UNFINISHED as never } } });
        done = open === 0;
        if (!done) await sleep(POLL_MS);
      }
      const results = jobs.length ? await this.prisma.job.findMany({ where: { id: { in: jobs.map((j) => j.id) } } }) : [];
      for (const job of results) {
        const d = targets.find((t) => t.id === job.deviceId)!;
        const base = { deviceId: d.id, deviceName: d.name, online: true, planJobId: job.id };
        if (UNFINISHED.includes(job.status)) {
          summaries.set(d.id, { ...base, outcome: 'no_answer', reason: `no plan within ${waitSeconds}s (job ${job.status}); follow GET /api/v1/jobs/${job.id}`, changes: [] });
          continue;
        }
        if (job.status !== 'succeeded') {
          summaries.set(d.id, { ...base, outcome: 'refused', reason: job.error ?? `plan ${job.status}`, changes: [] });
          continue;
        }
        const sections = (job.result as { sections?: { section: string; state: string; error?: string; steps?: { text?: string }[] }[] } | null)?.sections ?? [];
        const refused = sections.filter((s) => s.state === 'unsupported' || s.state === 'failed');
        summaries.set(d.id, {
          ...base,
          outcome: refused.length ? 'refused' : 'planned',
          reason: refused.length ? refused.map((s) => `section ${s.section} ${s.state}${s.error ? `: ${s.error}` : ''}`).join('; ') : null,
          changes: sections.map((s) => ({ section: s.section, state: s.state, steps: (s.steps ?? []).map((x) => String(x.text ?? '')), error: s.error ?? null })),
        });
      }
    }
    const summaryOf = (d: TargetDevice): DevicePlanSummary => {
      const known = summaries.get(d.id);
      if (known) return known;
      const base = { deviceId: d.id, deviceName: d.name, online: online.has(d.id), planJobId: planJobs.get(d.id) ?? null };
      if (!online.has(d.id)) return { ...base, outcome: 'offline', reason: 'offline: gets its job when it returns (before the deadline)', changes: [] };
      const inv = inventoryOf(d.facts);
      if (payload.kind === 'generation_upgrade') {
        const from = payload.upgrade.from;
        const what = from.kind === 'commands' ? `a snapshot of the current generation changed by ${payload.upgrade.commands.length} command(s)` : `a ${from.kind} (${from.url ?? from.path ?? `artifact ${typeof from.artifact === 'string' ? from.artifact : `${from.artifact?.name}@${from.artifact?.version}`}`}${from.sha256 ? `, sha256 ${from.sha256.slice(0, 12)}…` : ''})`;
        if (!inv) return { ...base, outcome: 'refused', reason: 'the device reports no generations; the upgrade job would fail', changes: [] };
        return { ...base, outcome: 'planned', reason: null, changes: [{ section: 'generations', state: 'pending', steps: [`make a new generation from ${what}`, `switch from ${inv.current ?? 'none'} to it${payload.upgrade.trial ? ' as a trial' : ''}`], error: null }] };
      }
      if (payload.kind === 'generation_rollback') {
        const c = rollbackTargetOf(payload, d.facts);
        if (c && 'to' in c) return { ...base, outcome: 'planned', reason: null, changes: [{ section: 'generations', state: 'pending', steps: [`switch from ${inv?.current ?? 'none'} to ${c.to}`], error: null }] };
      }
      return { ...base, outcome: 'no_answer', reason: null, changes: [] };
    };
    return {
      dryRun: true,
      total: all.length,
      skipped: plan.skipped.length,
      waves: plan.waves.map((w, i) => ({
        index: w.index,
        name: w.name,
        requiresApproval: w.requiresApproval,
        devices: [
          ...w.devices.map(summaryOf),
          ...(i === plan.waves.length - 1 ? plan.skipped.map((s) => ({ deviceId: s.device.id, deviceName: s.device.name, online: online.has(s.device.id), outcome: 'skipped' as const, reason: s.reason, changes: [], planJobId: null })) : []),
        ],
      })),
    };
  }

  /** The dry run of a stored rollout: its devices as they stand, planned again now. */
  async previewStored(caller: Caller, id: string, waitSeconds: number, signal?: AbortSignal): Promise<RolloutPreview> {
    const r = await this.find(id);
    const devices = await resolveTargets(this.prisma, { kind: 'devices', devices: (await this.prisma.rolloutTarget.findMany({ where: { rolloutId: r.id }, select: { deviceId: true } })).map((t) => t.deviceId) }).catch(() => []);
    return this.preview(caller, r.payload as RolloutPayload, layoutOf(devices, { payload: r.payload as RolloutPayload, strategy: r.strategy as CreateRolloutBody['strategy'] }), waitSeconds, signal, r);
  }

  private async find(id: string, tx: Prisma.TransactionClient = this.prisma): Promise<Rollout> {
    const r = isUuid(id) ? await tx.rollout.findUnique({ where: { id } }) : await tx.rollout.findFirst({ where: { name: id }, orderBy: { createdAt: 'desc' } });
    if (!r) throw new NotFound(`rollout ${id} not found; list rollouts with GET /api/v1/rollouts`);
    return r;
  }

  private async counts(ids: string[]): Promise<Map<string, Map<number, Counts>>> {
    const rows = ids.length
      ? await this.prisma.rolloutTarget.groupBy({ by: ['rolloutId', 'wave', 'state'], where: { rolloutId: { in: ids } }, _count: { _all: true } })
      : [];
    const out = new Map<string, Map<number, Counts>>();
    for (const row of rows) {
      const per = out.get(row.rolloutId) ?? new Map<number, Counts>();
      const c = per.get(row.wave) ?? zero();
      c[row.state] += row._count._all;
      per.set(row.wave, c);
      out.set(row.rolloutId, per);
    }
    return out;
  }

  async get(id: string): Promise<RolloutView> {
    const r = await this.find(id);
    const waves = await this.prisma.rolloutWave.findMany({ where: { rolloutId: r.id } });
    return toView({ ...r, waves }, (await this.counts([r.id])).get(r.id) ?? new Map());
  }

  async list(q: ListRolloutsQuery): Promise<Page<RolloutView>> {
    const rows = await this.prisma.rollout.findMany({ where: olderThan(q.cursor), orderBy: newestFirstOrder, take: q.limit + 1, include: { waves: true } });
    const counts = await this.counts(rows.slice(0, q.limit).map((r) => r.id));
    return toPage(rows, q.limit, newestFirstKey, (r) => toView(r, counts.get(r.id) ?? new Map()));
  }

  async targets(id: string, q: ListTargetsQuery): Promise<Page<ReturnType<typeof targetView>>> {
    const r = await this.find(id);
    const after = q.cursor ? decodeCursor(targetCursor, q.cursor).n : undefined;
    const rows = await this.prisma.rolloutTarget.findMany({
      where: { rolloutId: r.id, ...(q.state ? { state: q.state } : {}), ...(q.wave !== undefined ? { wave: q.wave } : {}), ...(after !== undefined ? { deviceName: { gt: after } } : {}) },
      orderBy: { deviceName: 'asc' },
      take: q.limit + 1,
    });
    return toPage(rows, q.limit, (t) => ({ n: t.deviceName }), targetView);
  }

  /**
   * An operator's control: under the row lock (a tick in progress finishes first), check the
   * status allows it, change it, audit; then tick so the change takes effect at once.
   */
  private async control(caller: Caller, id: string, action: string, allowed: RolloutStatus[], change: (r: Rollout, tx: Prisma.TransactionClient) => Promise<Prisma.RolloutUpdateInput>): Promise<RolloutView> {
    const r0 = await this.find(id);
    await this.prisma.$transaction(async (tx) => {
      await tx.$queryRaw`SELECT id FROM rollout WHERE id = ${r0.id}::uuid FOR UPDATE`;
      const r = await tx.rollout.findUniqueOrThrow({ where: { id: r0.id } });
      if (!allowed.includes(r.status)) throw new Conflict(`rollout "${r.name}" is ${r.status}; ${action} needs it ${allowed.join(' or ')}`);
      const data = await change(r, tx);
      await tx.rollout.update({ where: { id: r.id }, data });
      await this.audit.record({ actor: caller.actor, action: `rollout.${action}`, target: { type: 'rollout', id: r.id }, data: { name: r.name, from: r.status, to: data.status ?? r.status }, requestId: caller.requestId }, tx);
    });
    await this.driver.tick(r0.id);
    return this.get(r0.id);
  }

  pause(caller: Caller, id: string) {
    return this.control(caller, id, 'pause', ['scheduled', 'running', 'waiting_approval'], async () => ({ status: 'paused', reason: `paused by ${caller.actor.name}` }));
  }

  resume(caller: Caller, id: string) {
    return this.control(caller, id, 'resume', ['paused'], async (r) => ({ status: r.startedAt ? 'running' : 'scheduled', reason: null }));
  }

  /** Lets the wave that waits for approval start. */
  approve(caller: Caller, id: string) {
    return this.control(caller, id, 'approve', ['waiting_approval'], async (r, tx) => {
      const next = await tx.rolloutWave.findFirst({ where: { rolloutId: r.id, startedAt: null }, orderBy: { index: 'asc' } });
      return { status: 'running', reason: null, approvedThrough: next?.index ?? r.approvedThrough };
    });
  }

  /** Stops the rollout; with rollback (default: the rollout's autoRollback) the changed devices go back. */
  abort(caller: Caller, id: string, rollback?: boolean) {
    return this.control(caller, id, 'abort', ACTIVE_ROLLOUT.filter((s) => s !== 'rolling_back'), async (r) => {
      const back = rollback ?? r.autoRollback;
      return { status: back ? 'rolling_back' : 'aborted', autoRollback: back, reason: `aborted by ${caller.actor.name}` };
    });
  }

  /** Sends the failed devices their job again (a new job each: attempts counts them). */
  retryFailed(caller: Caller, id: string) {
    return this.control(caller, id, 'retry_failed', ['running', 'paused', 'waiting_approval', 'failed', 'succeeded'], async (r, tx) => {
      const n = await tx.rolloutTarget.updateMany({ where: { rolloutId: r.id, state: 'failed' }, data: { state: 'pending', reason: null, finishedAt: null } });
      if (!n.count) throw new Conflict(`rollout "${r.name}" has no failed devices to retry`);
      return { status: r.status === 'paused' ? 'paused' : 'running', reason: null, finishedAt: null };
    });
  }
}
