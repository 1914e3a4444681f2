import { setTimeout as sleep } from 'node:timers/promises';
import { Injectable } from '@nestjs/common';
import { Conflict } from '../../common/errors.js';
import { PrismaService } from '../../prisma/prisma.service.js';
import { DevicesService } from '../devices/devices.service.js';
import type { Caller } from '../http/request-context.js';
import type { JobDetailView } from '../jobs/jobs.dto.js';
import { FINISHED, JobsService } from '../jobs/jobs.service.js';
import type { PlanDeviceBody } from './plan.dto.js';

/** How often a waiting request looks at the job row (the row is the truth on every replica). */
const POLL_MS = 200;

/** Dry runs: a state.plan job for a device, optionally waited for. */
@Injectable()
export class PlanService {
  constructor(
    private readonly prisma: PrismaService,
    private readonly devices: DevicesService,
    private readonly jobs: JobsService,
  ) {}

  /** Queues the plan job (validated, audited as job.create), then waits up to `waitSeconds` for it to finish. */
  async plan(caller: Caller, ref: string, body: PlanDeviceBody, waitSeconds: number, signal?: AbortSignal): Promise<JobDetailView> {
    if (!body.spec) {
      const d = await this.devices.find(ref);
      if (d.desiredRevision === 0) throw new Conflict(`device "${d.name}" has no desired state to plan; send a proposed one as "spec" or PUT its desired state first`);
    }
    const job = await this.jobs.create(caller, ref, {
      type: 'state.plan',
      params: { ...(body.spec ? { spec: body.spec } : {}), ...(body.sections ? { sections: body.sections } : {}) },
      timeoutSeconds: body.timeoutSeconds,
      expiresInSeconds: body.expiresInSeconds,
    });
    const deadline = Date.now() + waitSeconds * 1000;
    while (Date.now() < deadline && !signal?.aborted) {
      const row = await this.prisma.job.findUnique({ where: { id: job.id }, select: { status: true } });
      if (!row || FINISHED.includes(row.status)) break;
      await sleep(Math.min(POLL_MS, Math.max(0, deadline - Date.now())));
    }
    return this.jobs.get(job.id);
  }
}
