import { Injectable, type OnModuleInit } from '@nestjs/common';
import { PrismaService } from '../prisma/prisma.service.js';
import { bounded, MetricsService } from './metrics.service.js';

/** Series read from Postgres at scrape time: jobs by type and status, and the Prisma pool. */
@Injectable()
export class DatabaseMetrics implements OnModuleInit {
  constructor(
    private readonly metrics: MetricsService,
    private readonly prisma: PrismaService,
  ) {}

  onModuleInit(): void {
    this.metrics.watchPool('prisma', this.prisma.pool);
    this.metrics.observeGauge('ibex_jobs', 'Jobs in Postgres by type and status (fleet-wide: every replica reports the same).', ['type', 'status'], async () => {
      const rows = await bounded(this.prisma.job.groupBy({ by: ['type', 'status'], _count: { _all: true } }), 'Postgres');
      return rows.map((r) => [{ type: r.type, status: r.status }, r._count._all]);
    });
  }
}
