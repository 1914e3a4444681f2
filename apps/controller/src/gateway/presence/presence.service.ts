import { Inject, Injectable, Logger } from '@nestjs/common';
import pg from 'pg';
import { Clock } from '../../common/clock.js';
import { CONFIG, type Config } from '../../config/config.js';

/** Rows per UPDATE statement (2 bind parameters each; Postgres allows 65535). */
const CHUNK = 1000;

export interface PresenceStats {
  /** Flushes that wrote something. */
  flushes: number;
  /** UPDATE statements sent. */
  statements: number;
  /** Device rows those statements carried. */
  rows: number;
  /** Rows left for the next flush because another transaction held them locked. */
  skipped: number;
}

/**
 * Last-seen times (protocol.md "Heartbeats and presence"): a heartbeat only sets a number in
 * memory; every IBEX_PRESENCE_FLUSH_MS the pending times go to Postgres in one
 * `UPDATE ... FROM (VALUES ...)` per 1000 devices. Never one write per heartbeat.
 *
 * Flushes use their own Postgres connection: in a reconnect storm the shared Prisma pool is
 * queued with thousands of connects, and last-seen writes must not wait behind them
 * (measured: 5-9 s late through the shared pool with 2000 agents reconnecting).
 */
@Injectable()
export class PresenceService {
  private readonly log = new Logger('Presence');
  private pending = new Map<string, number>();
  private timer?: NodeJS.Timeout;
  private flushing: Promise<void> = Promise.resolve();
  /** Its own connection (see above); /metrics reports its use. */
  readonly db: pg.Pool;
  readonly stats: PresenceStats = { flushes: 0, statements: 0, rows: 0, skipped: 0 };

  constructor(
    @Inject(CONFIG) private readonly config: Config,
    private readonly clock: Clock,
  ) {
    this.db = new pg.Pool({ connectionString: config.databaseUrl, max: 1, idleTimeoutMillis: 0, application_name: 'ibex-presence' });
    this.db.on('error', (err) => this.log.error(`presence database connection: ${err.message}`));
  }

  /** The device was heard from now. */
  touch(deviceId: string): void {
    this.pending.set(deviceId, this.clock.now().getTime());
  }

  start(): void {
    this.timer ??= setInterval(() => void this.flush(), this.config.presenceFlushMs);
  }

  /** Stops the timer, writes what is pending and closes the connection. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.flush();
    await this.db.end();
  }

  /** Writes the pending last-seen times; flushes never overlap. */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(() => this.writePending());
    return this.flushing;
  }

  private async writePending(): Promise<void> {
    if (!this.pending.size) return;
    const batch = [...this.pending];
    this.pending = new Map();
    this.stats.flushes++;
    const started = Date.now();
    for (let i = 0; i < batch.length; i += CHUNK) {
      const rows = batch.slice(i, i + CHUNK);
      try {
        const skipped = new Set(await this.write(rows));
        for (const [id, at] of rows) if (skipped.has(id) && (this.pending.get(id) ?? 0) < at) this.pending.set(id, at);
      } catch (err) {
        // Keep them for the next flush unless a newer heartbeat has arrived meanwhile.
        for (const [id, at] of batch.slice(i)) if ((this.pending.get(id) ?? 0) < at) this.pending.set(id, at);
        this.log.error(`could not write last-seen times for ${batch.length - i} devices (will retry): ${(err as Error).message}`);
        return;
      }
    }
    const took = Date.now() - started;
    if (took > this.config.presenceFlushMs) this.log.warn(`writing last-seen times for ${batch.length} devices took ${took} ms (flush interval ${this.config.presenceFlushMs} ms)`);
    else this.log.debug(`wrote last-seen times for ${batch.length} devices in ${took} ms`);
  }

  /**
   * One UPDATE for up to CHUNK devices. Rows another transaction holds locked (a rollout writing
   * the desired revision of thousands of devices in one transaction) are skipped, not waited
   * for: waiting stalled every last-seen write behind that transaction, and the two taking the
   * same rows in different orders deadlocked (measured with 10,000 agents and a fan-out to all:
   * "deadlock detected" on every flush, the rollout tick failing each time). Skipped ones are
   * returned and kept for the next flush.
   */
  private async write(rows: [string, number][]): Promise<string[]> {
    const values = rows.map((_, i) => `($${2 * i + 1}::uuid, $${2 * i + 2}::timestamptz AT TIME ZONE 'UTC')`).join(', ');
    const params = rows.flatMap(([id, at]) => [id, new Date(at).toISOString()]);
    // lastSeenAt only moves forward: another replica may have written a newer time.
    const { rows: skipped } = await this.db.query<{ id: string }>(
      `WITH v(id, ts) AS (VALUES ${values}),
            locked AS (SELECT d.id FROM device d WHERE d.id IN (SELECT id FROM v) FOR UPDATE SKIP LOCKED),
            written AS (
              UPDATE device AS d SET "lastSeenAt" = v.ts FROM v, locked
               WHERE d.id = v.id AND d.id = locked.id AND (d."lastSeenAt" IS NULL OR d."lastSeenAt" < v.ts)
              RETURNING d.id)
       SELECT v.id::text AS id FROM v
        WHERE v.id NOT IN (SELECT id FROM locked) AND EXISTS (SELECT 1 FROM device d WHERE d.id = v.id)`,
      params,
    );
    this.stats.statements++;
    this.stats.rows += rows.length - skipped.length;
    this.stats.skipped += skipped.length;
    return skipped.map((r) => r.id);
  }
}
