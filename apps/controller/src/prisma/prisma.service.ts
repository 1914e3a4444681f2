import { Inject, Injectable, type OnModuleDestroy } from '@nestjs/common';
import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { CONFIG, type Config } from '../config/config.js';
import { PrismaClient } from '../generated/prisma/client.js';

/** The Prisma client (driver adapter, no engine binary), one per process. */
@Injectable()
export class PrismaService extends PrismaClient implements OnModuleDestroy {
  /** The connection pool (our own, so /metrics can report its use); $disconnect ends it. */
  readonly pool: pg.Pool;

  constructor(@Inject(CONFIG) config: Config) {
    const pool = new pg.Pool({ connectionString: config.databaseUrl, max: 10 });
    super({ adapter: new PrismaPg(pool, { disposeExternalPool: true }) });
    this.pool = pool;
  }

  async onModuleDestroy(): Promise<void> {
    await this.$disconnect();
  }
}
