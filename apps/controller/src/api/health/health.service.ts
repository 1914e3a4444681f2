import { Inject, Injectable } from '@nestjs/common';
import { redact } from '@ibex/migrate';
import { CONFIG, type Config } from '../../config/config.js';
import { PrismaService } from '../../prisma/prisma.service.js';
import { RedisService } from '../../redis/redis.service.js';
import type { CheckView, LivenessView, ReadinessView } from './health.dto.js';

export const READY_CHECK_TIMEOUT_MS = 2000;

async function timed(what: string, probe: () => Promise<unknown>): Promise<CheckView> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      probe(),
      new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${READY_CHECK_TIMEOUT_MS} ms`)), READY_CHECK_TIMEOUT_MS))),
    ]);
    return { ok: true, latencyMs: Math.round(performance.now() - started) };
  } catch (err) {
    return { ok: false, error: `${what}: ${err instanceof Error ? err.message || err.name : String(err)}` };
  } finally {
    clearTimeout(timer);
  }
}

@Injectable()
export class HealthService {
  constructor(
    private readonly prisma: PrismaService,
    private readonly redis: RedisService,
    @Inject(CONFIG) private readonly config: Config,
  ) {}

  liveness(): LivenessView {
    return { status: 'ok', version: this.config.version, replicaId: this.config.replicaId };
  }

  /** Ready when Postgres answers a query and Redis a PING; otherwise says which one is down. */
  async readiness(): Promise<ReadinessView> {
    const pgWhere = `Postgres at ${redact(this.config.databaseUrl)}`;
    const redisWhere = `Redis at ${redact(this.config.redisUrl)}`;
    const [postgres, redis] = await Promise.all([
      timed(pgWhere, () => this.prisma.$queryRaw`SELECT 1`),
      timed(redisWhere, async () => {
        const c = this.redis.client;
        // A disconnected ioredis client queues commands; say so instead of waiting.
        if (c.status !== 'ready') throw new Error(`not connected (${c.status}); start Redis or set REDIS_URL`);
        await c.ping();
      }),
    ]);
    const down = [postgres.ok ? null : 'Postgres', redis.ok ? null : 'Redis'].filter((x): x is string => x !== null);
    const message = down.length ? `not ready: ${down.join(' and ')} ${down.length > 1 ? 'are' : 'is'} unavailable (${[postgres.error, redis.error].filter(Boolean).join('; ')})` : 'ready';
    return { ready: down.length === 0, message, checks: { postgres, redis } };
  }
}
