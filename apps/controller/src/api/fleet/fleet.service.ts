import { Inject, Injectable } from '@nestjs/common';
import { Clock } from '../../common/clock.js';
import { CONFIG, type Config } from '../../config/config.js';
import { Prisma } from '../../generated/prisma/client.js';
import { PrismaService } from '../../prisma/prisma.service.js';
import { deviceStatusSql, deviceSyncSql } from '../devices/device-filter.js';
import { deviceStatuses, deviceSyncs } from '../devices/devices.dto.js';
import { activeJobStatuses, type FleetSummaryView } from './fleet.dto.js';

const zeros = <K extends string>(keys: readonly K[]) => Object.fromEntries(keys.map((k) => [k, 0])) as Record<K, number>;

/** The fleet at a glance: the dashboard's overview and `ibexctl devices summary`. Two grouped queries. */
@Injectable()
export class FleetService {
  constructor(
    private readonly prisma: PrismaService,
    private readonly clock: Clock,
    @Inject(CONFIG) private readonly config: Config,
  ) {}

  async summary(): Promise<FleetSummaryView> {
    const now = this.clock.now();
    const onlineSince = new Date(now.getTime() - this.config.offlineAfterMs);
    const rows = await this.prisma.$queryRaw<Array<{ status: string; sync: string; n: number }>>(
      Prisma.sql`SELECT status, sync, count(*)::int AS n FROM (SELECT ${deviceStatusSql(onlineSince)} AS status, ${deviceSyncSql} AS sync FROM device) d GROUP BY status, sync`,
    );
    const devices = { total: 0, ...zeros(deviceStatuses) };
    const sync = zeros(deviceSyncs);
    for (const r of rows) {
      devices.total += r.n;
      devices[r.status as keyof typeof devices] += r.n;
      if (r.status !== 'revoked') sync[r.sync as keyof typeof sync] += r.n;
    }
    const jobs = zeros(activeJobStatuses);
    const grouped = await this.prisma.job.groupBy({ by: ['status'], where: { status: { in: [...activeJobStatuses] } }, _count: { _all: true } });
    for (const g of grouped) jobs[g.status as keyof typeof jobs] = g._count._all;
    return { devices, sync, jobs, at: now.toISOString() };
  }
}
