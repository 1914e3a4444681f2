import { Inject, Injectable, Logger } from '@nestjs/common';
import { Clock } from '../../common/clock.js';
import { CONFIG, type Config } from '../../config/config.js';
import { PrismaService } from '../../prisma/prisma.service.js';

/** Rows per UPDATE statement (2 bind parameters each; Postgres allows 65535). */
const CHUNK = 1000;

export interface PresenceStats {
  /** Flushes that wrote something. */
  flushes: number;
  /** UPDATE statements sent. */
  statements: number;
  /** Device rows those statements carried. */
  rows: number;
}

/**
 * Last-seen times (protocol.md "Heartbeats and presence"): a heartbeat only sets a number in
 * memory; every IBEX_PRESENCE_FLUSH_MS the pending times go to Postgres in one
 * `UPDATE ... FROM (VALUES ...)` per 1000 devices. Never one write per heartbeat.
 */
@Injectable()
export class PresenceService {
  private readonly log = new Logger('Presence');
  private pending = new Map<string, number>();
  private timer?: NodeJS.Timeout;
  private flushing: Promise<void> = Promise.resolve();
  readonly stats: PresenceStats = { flushes: 0, statements: 0, rows: 0 };

  constructor(
    @Inject(CONFIG) private readonly config: Config,
    private readonly prisma: PrismaService,
    private readonly clock: Clock,
  ) {}

  /** The device was heard from now. */
  touch(deviceId: string): void {
    this.pending.set(deviceId, this.clock.now().getTime());
  }

  start(): void {
    this.timer ??= setInterval(() => void this.flush(), this.config.presenceFlushMs);
  }

  /** Stops the timer and writes what is pending. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.flush();
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
    for (let i = 0; i < batch.length; i += CHUNK) {
      const rows = batch.slice(i, i + CHUNK);
      try {
        await this.write(rows);
      } catch (err) {
        // Keep them for the next flush unless a newer heartbeat has arrived meanwhile.
        for (const [id, at] of batch.slice(i)) if ((this.pending.get(id) ?? 0) < at) this.pending.set(id, at);
        this.log.error(`could not write last-seen times for ${batch.length - i} devices (will retry): ${(err as Error).message}`);
        return;
      }
    }
  }

  private async write(rows: [string, number][]): Promise<void> {
    const values = rows.map((_, i) => `($${2 * i + 1}::uuid, $${2 * i + 2}::timestamptz AT TIME ZONE 'UTC')`).join(', ');
    const params = rows.flatMap(([id, at]) => [id, new Date(at).toISOString()]);
    // lastSeenAt only moves forward: another replica may have written a newer time.
    await this.prisma.$executeRawUnsafe(
      `UPDATE device AS d SET "lastSeenAt" = v.ts FROM (VALUES ${values}) AS v(id, ts)
       WHERE d.id = v.id AND (d."lastSeenAt" IS NULL OR d."lastSeenAt" < v.ts)`,
      ...params,
    );
    this.stats.statements++;
    this.stats.rows += rows.length;
  }
}
