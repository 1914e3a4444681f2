import { Inject, Injectable, Logger, type OnModuleDestroy } from '@nestjs/common';
import { Redis, type RedisOptions } from 'ioredis';
import { within } from '../common/bounded.js';
import { CONFIG, type Config } from '../config/config.js';

/**
 * Redis connections. `client` runs commands; `subscriber()` makes a dedicated connection for
 * pub/sub (a subscribed connection can do nothing else). Every key and channel goes through
 * `key()` so several controllers (or test runs) can share one Redis under different prefixes.
 */
@Injectable()
export class RedisService implements OnModuleDestroy {
  private readonly log = new Logger('Redis');
  readonly client: Redis;
  private readonly extra: Redis[] = [];
  /** Once shutting down, lost connections are not re-dialled (a dead Redis must not keep the process alive). */
  private closing = false;

  constructor(@Inject(CONFIG) private readonly config: Config) {
    this.client = this.connect('commands');
  }

  get prefix(): string {
    return this.config.redisPrefix;
  }

  key(...parts: string[]): string {
    return [this.config.redisPrefix, ...parts].join(':');
  }

  /** Stop re-dialling lost connections; called first thing on shutdown. */
  beginShutdown(): void {
    this.closing = true;
  }

  private readonly retryStrategy = (times: number): number | null => (this.closing ? null : Math.min(200 * times, 5000));

  /** Options for BullMQ queues and workers (they need maxRetriesPerRequest: null). */
  bullConnectionOptions(): RedisOptions {
    const u = new URL(this.config.redisUrl);
    return {
      host: u.hostname,
      port: Number(u.port || 6379),
      ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
      ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
      ...(u.pathname.length > 1 ? { db: Number(u.pathname.slice(1)) } : {}),
      ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
      maxRetriesPerRequest: null,
      retryStrategy: this.retryStrategy,
    };
  }

  /** A new connection owned by this service (closed on shutdown). */
  connect(purpose: string, extra: RedisOptions = {}): Redis {
    const conn = new Redis(this.config.redisUrl, { lazyConnect: false, enableAutoPipelining: true, retryStrategy: this.retryStrategy, ...extra });
    let reported = false;
    conn.on('error', (err: Error) => {
      if (!reported) this.log.error(`Redis at ${redact(this.config.redisUrl)} (${purpose}): ${err.message}; start Redis or set REDIS_URL`);
      reported = true;
    });
    conn.on('ready', () => (reported = false));
    if (this.client) this.extra.push(conn);
    return conn;
  }

  subscriber(): Redis {
    return this.connect('pubsub');
  }

  async onModuleDestroy(): Promise<void> {
    this.closing = true;
    await Promise.allSettled(
      [this.client, ...this.extra].map((c) => within(c.quit().catch(() => c.disconnect()), 2000, () => c.disconnect())),
    );
  }
}

function redact(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
}
