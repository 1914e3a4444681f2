import pg from 'pg';
import { setTimeout as sleep } from 'node:timers/promises';

/** A heartbeat the database shows: sent at `sentAtMs`, seen in lastSeenAt `lagMs` later. */
export interface Confirmation {
  sentAtMs: number;
  lagMs: number;
}

/**
 * Measures, from the database, how long each heartbeat takes to show in `device.lastSeenAt`.
 *
 * Every heartbeat's send time is remembered per device until a read of the device row shows
 * `lastSeenAt >= sentAt` (the controller stamps lastSeenAt with the time it received a message,
 * on the same clock, so that is the moment the heartbeat is reflected). Only devices with
 * unconfirmed heartbeats are read, every `intervalMs`, in one query.
 *
 * The lag recorded is the time from sending until the read that showed it returned: an upper
 * bound, at most one sampling interval (plus the query) above the true value, never below it.
 */
export class LastSeenSampler {
  private readonly pending = new Map<string, number[]>();
  private readonly db: pg.Client;
  private loop?: Promise<void>;
  private running = false;
  /** Every confirmation so far, in order. */
  readonly confirmations: Confirmation[] = [];
  samples = 0;
  /** Longest single read, ms: the resolution the lags carry on top of the interval. */
  slowestReadMs = 0;
  lastError?: string;

  constructor(
    databaseUrl: string,
    private readonly intervalMs: number,
  ) {
    // Bounded: a stuck Postgres must fail a read, not hang the harness.
    this.db = new pg.Client({ connectionString: databaseUrl, application_name: 'ibex-bench-sampler', connectionTimeoutMillis: 10_000, query_timeout: 10_000 });
    this.db.on('error', (err) => (this.lastError = err.message));
  }

  async connect(): Promise<void> {
    await this.db.connect();
  }

  /** A heartbeat left for `deviceId` at `sentAtMs`. */
  record(deviceId: string, sentAtMs: number): void {
    const list = this.pending.get(deviceId);
    if (list) list.push(sentAtMs);
    else this.pending.set(deviceId, [sentAtMs]);
  }

  get unconfirmed(): number {
    let n = 0;
    for (const list of this.pending.values()) n += list.length;
    return n;
  }

  /** Heartbeats still not in the database that were sent before `beforeMs`. */
  unconfirmedSentBefore(beforeMs: number): number {
    let n = 0;
    for (const list of this.pending.values()) for (const t of list) if (t < beforeMs) n++;
    return n;
  }

  /** Oldest unconfirmed send time, or undefined. */
  oldestUnconfirmed(): number | undefined {
    let oldest: number | undefined;
    for (const list of this.pending.values()) if (list.length && (oldest === undefined || list[0]! < oldest)) oldest = list[0]!;
    return oldest;
  }

  start(): void {
    this.running = true;
    this.loop ??= (async () => {
      while (this.running) {
        const started = Date.now();
        try {
          await this.sampleOnce();
        } catch (err) {
          this.lastError = (err as Error).message;
        }
        await sleep(Math.max(0, this.intervalMs - (Date.now() - started)));
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
    await this.db.end().catch(() => {});
  }

  /**
   * Rows of `device` Postgres has updated so far (its own statistics, pg_stat_user_tables): a
   * cross-check of the heartbeats stored that does not depend on this sampler.
   */
  async deviceRowUpdates(): Promise<number | undefined> {
    const { rows } = await this.db.query<{ n: string }>(`SELECT n_tup_upd::text AS n FROM pg_stat_user_tables WHERE relname = 'device'`);
    return rows[0] ? Number(rows[0].n) : undefined;
  }

  /** One read of every device with unconfirmed heartbeats. */
  async sampleOnce(): Promise<void> {
    const ids = [...this.pending].filter(([, list]) => list.length).map(([id]) => id);
    if (!ids.length) return;
    const started = Date.now();
    const { rows } = await this.db.query<{ id: string; seen: string }>(
      `SELECT id::text AS id, round(extract(epoch FROM "lastSeenAt") * 1000)::bigint AS seen
         FROM device WHERE id = ANY($1::uuid[]) AND "lastSeenAt" IS NOT NULL`,
      [ids],
    );
    const readAt = Date.now();
    this.samples++;
    this.slowestReadMs = Math.max(this.slowestReadMs, readAt - started);
    for (const row of rows) {
      const seen = Number(row.seen);
      const list = this.pending.get(row.id);
      if (!list) continue;
      let n = 0;
      while (n < list.length && list[n]! <= seen) {
        this.confirmations.push({ sentAtMs: list[n]!, lagMs: readAt - list[n]! });
        n++;
      }
      if (n) list.splice(0, n);
    }
  }
}
