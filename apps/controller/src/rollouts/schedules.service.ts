import { Injectable, Logger } from '@nestjs/common';
import { AuditService, systemActor } from '../audit/audit.service.js';
import { Clock } from '../common/clock.js';
import { Conflict, NotFound, ValidationFailed } from '../common/errors.js';
import type { Prisma, RolloutSchedule } from '../generated/prisma/client.js';
import { PrismaService } from '../prisma/prisma.service.js';
import type { Caller } from '../api/http/request-context.js';
import { iso, isUuid } from '../api/http/schemas.js';
import { RolloutDriver } from './rollout-driver.service.js';
import { RolloutQueue } from './rollout-queue.js';
import { resolveTargets } from './rollout-targets.js';
import { cronProblems, nextOccurrence } from './rollout-window.js';
import { type CreateRolloutBody, createScheduleBody, type CreateScheduleBody, type ScheduleView } from './rollouts.dto.js';
import { layoutOf, RolloutsService } from './rollouts.service.js';

/**
 * Recurring rollouts: a BullMQ job scheduler (cron + time zone) per schedule adds one job per
 * occurrence; the handler creates the rollout from the template, once per occurrence (an audit
 * key in the same transaction), so a job BullMQ hands out twice after a crash starts one rollout.
 */
@Injectable()
export class SchedulesService {
  private readonly log = new Logger('Schedules');

  constructor(
    private readonly prisma: PrismaService,
    private readonly audit: AuditService,
    private readonly clock: Clock,
    private readonly queue: RolloutQueue,
    private readonly rollouts: RolloutsService,
    private readonly driver: RolloutDriver,
  ) {}

  private view(s: RolloutSchedule): ScheduleView {
    return {
      id: s.id,
      name: s.name,
      cron: s.cron,
      timeZone: s.timeZone,
      paused: s.paused,
      rollout: s.template as Record<string, unknown>,
      lastRunAt: iso(s.lastRunAt),
      nextRunAt: s.paused ? null : iso(nextOccurrence(s.cron, s.timeZone, this.clock.now())),
      createdAt: iso(s.createdAt),
    };
  }

  private async find(ref: string): Promise<RolloutSchedule> {
    const s = isUuid(ref) ? await this.prisma.rolloutSchedule.findUnique({ where: { id: ref } }) : await this.prisma.rolloutSchedule.findUnique({ where: { name: ref } });
    if (!s) throw new NotFound(`schedule ${ref} not found; list schedules with GET /api/v1/schedules`);
    return s;
  }

  async create(caller: Caller, body: CreateScheduleBody): Promise<ScheduleView> {
    const issues = cronProblems(body.cron, body.timeZone).map((p) => ({ path: p.field, message: p.message }));
    if (issues.length) throw new ValidationFailed(`invalid schedule: ${issues.map((i) => `${i.path} ${i.message}`).join('; ')}`, issues);
    if (body.rollout.deadline) throw new ValidationFailed('invalid schedule: rollout.deadline is a fixed time; a schedule runs again and again, so it takes none', [{ path: 'rollout.deadline', message: 'not allowed in a schedule' }]);
    if (body.rollout.target.kind === 'selector') await resolveTargets(this.prisma, body.rollout.target);
    body = { ...body, rollout: await this.rollouts.resolvePayload(body.rollout, 'rollout.payload') };
    if (await this.prisma.rolloutSchedule.findUnique({ where: { name: body.name } })) throw new Conflict(`a schedule named "${body.name}" exists; choose another name or delete it first`);
    const s = await this.prisma.$transaction(async (tx) => {
      const row = await tx.rolloutSchedule.create({ data: { name: body.name, cron: body.cron, timeZone: body.timeZone, template: body.rollout as Prisma.InputJsonObject, createdBy: caller.actor.id } });
      await this.audit.record({ actor: caller.actor, action: 'schedule.create', target: { type: 'rollout_schedule', id: row.id }, data: { name: row.name, cron: row.cron, timeZone: row.timeZone }, requestId: caller.requestId }, tx);
      return row;
    });
    await this.queue.upsertSchedule(s.id, s.cron, s.timeZone);
    return this.view(s);
  }

  async list(): Promise<{ items: ScheduleView[] }> {
    return { items: (await this.prisma.rolloutSchedule.findMany({ orderBy: { name: 'asc' } })).map((s) => this.view(s)) };
  }

  async get(ref: string): Promise<ScheduleView> {
    return this.view(await this.find(ref));
  }

  private async setPaused(caller: Caller, ref: string, paused: boolean): Promise<ScheduleView> {
    const s0 = await this.find(ref);
    const s = await this.prisma.$transaction(async (tx) => {
      const row = await tx.rolloutSchedule.update({ where: { id: s0.id }, data: { paused } });
      await this.audit.record({ actor: caller.actor, action: paused ? 'schedule.pause' : 'schedule.resume', target: { type: 'rollout_schedule', id: row.id }, data: { name: row.name }, requestId: caller.requestId }, tx);
      return row;
    });
    if (paused) await this.queue.removeSchedule(s.id);
    else await this.queue.upsertSchedule(s.id, s.cron, s.timeZone);
    return this.view(s);
  }

  pause(caller: Caller, ref: string) {
    return this.setPaused(caller, ref, true);
  }
  resume(caller: Caller, ref: string) {
    return this.setPaused(caller, ref, false);
  }

  /** Deletes the schedule; the rollouts it started stay. */
  async delete(caller: Caller, ref: string): Promise<void> {
    const s = await this.find(ref);
    await this.prisma.$transaction(async (tx) => {
      await tx.rolloutSchedule.delete({ where: { id: s.id } });
      await this.audit.record({ actor: caller.actor, action: 'schedule.delete', target: { type: 'rollout_schedule', id: s.id }, data: { name: s.name }, requestId: caller.requestId }, tx);
    });
    await this.queue.removeSchedule(s.id);
  }

  /** One occurrence (BullMQ job `occurrence`): start the template's rollout now, once. */
  async fire(scheduleId: string, occurrence: string): Promise<string | null> {
    const s = await this.prisma.rolloutSchedule.findUnique({ where: { id: scheduleId } });
    if (!s || s.paused) return null;
    const now = this.clock.now();
    const template = createScheduleBody.shape.rollout.parse(s.template);
    const body: CreateRolloutBody = { ...template, name: `${template.name} ${now.toISOString()}`, start: { kind: 'now' } };
    const devices = await resolveTargets(this.prisma, body.target);
    const actor = systemActor(`schedule ${s.name}`);
    const id = await this.prisma.$transaction(
      async (tx) => {
        const first = await this.audit.recordOnce({ actor, action: 'schedule.fire', target: { type: 'rollout_schedule', id: s.id }, data: { name: s.name, occurrence } }, `rollout_schedule:${s.id}:${occurrence}`, tx);
        if (!first) return null;
        await tx.rolloutSchedule.update({ where: { id: s.id }, data: { lastRunAt: now } });
        return (await this.rollouts.insert({ actor }, body, layoutOf(devices, body), s.id, tx)).id;
      },
      { timeout: 60_000 },
    );
    if (id) await this.driver.tick(id);
    else this.log.log(`schedule ${s.name}: occurrence ${occurrence} already started its rollout`);
    return id;
  }
}
