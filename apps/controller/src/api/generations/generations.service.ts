import { Injectable } from '@nestjs/common';
import type { GenerationsInventory } from '@ibex/spec';
import { AuditService } from '../../audit/audit.service.js';
import { Conflict, ValidationFailed } from '../../common/errors.js';
import { PrismaService } from '../../prisma/prisma.service.js';
import { DevicesService } from '../devices/devices.service.js';
import type { Caller } from '../http/request-context.js';
import { JobsService, toJobView } from '../jobs/jobs.service.js';
import type { JobView } from '../jobs/jobs.dto.js';
import type { GenerationsView, RollbackBody } from './generations.dto.js';
import { inventoryOf, toGenerationsView } from './generations-view.js';

const ROLLBACK = 'generations.rollback';
const UNFINISHED = ['queued', 'delivered', 'running'] as const;

/** A generation the default rollback may go to: linked behind the current one, complete, not bad. */
const isFallback = (inv: GenerationsInventory) => (g: GenerationsInventory['generations'][number]) =>
  g.slot !== null && g.complete && g.status !== 'bad' && !g.current && g.id !== inv.current;

/** Why `to` cannot be rolled back to, or undefined when it can. */
function refuseTarget(inv: GenerationsInventory, to: string): string | undefined {
  const g = inv.generations.find((x) => x.id === to);
  const known = inv.generations.map((x) => x.id).join(', ') || 'none';
  if (!g) return `generation "${to}" does not exist on the device (it has: ${known})`;
  if (!g.complete) return `generation "${to}" is incomplete (left half-made by an interrupted upgrade); choose a complete one`;
  if (g.status === 'bad') return `generation "${to}" is marked bad (it failed its health check); choose a good one`;
  if (g.current || inv.current === to) return `generation "${to}" is already current; nothing to roll back`;
  return undefined;
}

/**
 * A device's generations as its agent last reported them (facts.generations), and rollback,
 * which is a `generations.rollback` job: the agent switches, then reports the new inventory.
 */
@Injectable()
export class GenerationsService {
  constructor(
    private readonly prisma: PrismaService,
    private readonly audit: AuditService,
    private readonly devices: DevicesService,
    private readonly jobs: JobsService,
  ) {}

  async get(ref: string): Promise<GenerationsView> {
    return toGenerationsView(await this.devices.find(ref));
  }

  /**
   * Checks the request against the latest inventory, then queues the job, in one transaction
   * that holds the device row (so two rollbacks cannot both pass the "one at a time" check).
   */
  async rollback(caller: Caller, ref: string, body: RollbackBody): Promise<JobView> {
    const job = await this.prisma.$transaction(async (tx) => {
      const d = await this.devices.findForUpdate(tx, ref);
      const inv = inventoryOf(d.facts);
      if (!inv) throw new Conflict(`device "${d.name}" reports no generations (no btrfs generations layout, or its agent has no generations capability); there is nothing to roll back`);
      if (body.to !== undefined) {
        const why = refuseTarget(inv, body.to);
        if (why) throw new ValidationFailed(`cannot roll back device "${d.name}": ${why}; see GET /api/v1/devices/${d.name}/generations`, [{ path: 'to', message: why }]);
      } else if (!inv.generations.some(isFallback(inv))) {
        // The agent's default is a fallback of the current links directory (current/1..N).
        throw new Conflict(`device "${d.name}" has no complete, not-bad fallback generation to roll back to (current: ${inv.current ?? 'none'}); name one with \`to\` or upgrade first`);
      }
      const pending = await tx.job.findFirst({ where: { deviceId: d.id, type: ROLLBACK, status: { in: [...UNFINISHED] } }, orderBy: { createdAt: 'desc' } });
      if (pending) throw new Conflict(`device "${d.name}" already has a rollback job (${pending.id}, ${pending.status}); wait for it to finish or cancel it (POST /api/v1/jobs/${pending.id}/cancel)`);
      const params = { ...(body.to !== undefined ? { to: body.to } : {}), ...(body.reason !== undefined ? { reason: body.reason } : {}) };
      const j = await this.jobs.insert(tx, caller, d, ROLLBACK, params);
      await this.audit.record(
        {
          actor: caller.actor,
          action: 'device.generations.rollback',
          target: { type: 'device', id: d.id },
          data: { name: d.name, jobId: j.id, to: body.to ?? null, reason: body.reason ?? null, current: inv.current, booted: inv.booted },
          requestId: caller.requestId,
        },
        tx,
      );
      return j;
    });
    await this.jobs.announce(job);
    return toJobView(job);
  }
}
