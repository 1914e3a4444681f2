import { Inject, Injectable, Logger } from '@nestjs/common';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { CONFIG, type Config } from '../config/config.js';

/** A reading of one labelled series: label values and the value. */
export type Reading<L extends string> = [labels: Partial<Record<L, string>>, value: number];

/** What `watchQueue` needs of a BullMQ queue. */
export interface WatchedQueue {
  readonly name: string;
  getJobCounts(...types: string[]): Promise<Record<string, number>>;
}

/** What `watchPool` needs of a pg.Pool. */
export interface WatchedPool {
  readonly totalCount: number;
  readonly idleCount: number;
  readonly waitingCount: number;
  readonly options: { max?: number | undefined };
}

/** A scrape never waits longer than this on Postgres or Redis (a dead one must not hang /metrics). */
export const READ_TIMEOUT_MS = 2000;
const QUEUE_STATES = ['waiting', 'active', 'delayed', 'failed', 'prioritized', 'waiting-children'] as const;

// Seconds; from a cheap delivery pass (a few ms) up to a day for jobs that wait for a device.
const FAST_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const JOB_BUCKETS = [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600];

/**
 * The controller's Prometheus metrics (GET /metrics), one registry per controller (tests run
 * several in one process). Services that time something get this injected and observe the
 * histograms; what other parts own (sessions, queues, pools, presence counts) is read at
 * scrape time through the watch/observe methods, so those parts need no metrics code.
 * Every series carries `replica`: per-replica values (connected agents) sum across replicas,
 * fleet-wide ones read from Postgres (ibex_jobs) are the same on every replica.
 */
@Injectable()
export class MetricsService {
  private readonly log = new Logger('Metrics');
  readonly registry = new Registry();
  private readonly queues: WatchedQueue[] = [];
  private readonly pools = new Map<string, WatchedPool>();
  private readonly failing = new Set<string>();

  readonly httpRequestDuration: Histogram<'method' | 'route' | 'status'>;
  readonly deliveryPassDuration: Histogram;
  readonly jobDuration: Histogram<'type' | 'status'>;

  constructor(@Inject(CONFIG) config: Config) {
    this.registry.setDefaultLabels({ replica: config.replicaId });
    // process_* and nodejs_* under their usual names, so stock Node.js dashboards work too.
    collectDefaultMetrics({ register: this.registry });
    const registers = [this.registry];
    this.httpRequestDuration = new Histogram({
      name: 'ibex_http_request_duration_seconds',
      help: 'REST requests by method, route pattern (e.g. /api/v1/devices/:device) and status code.',
      labelNames: ['method', 'route', 'status'] as const,
      buckets: FAST_BUCKETS,
      registers,
    });
    this.deliveryPassDuration = new Histogram({
      name: 'ibex_delivery_pass_duration_seconds',
      help: 'Delivery pass batches (read Postgres, send each device of the batch its desired revision, jobs and cancellations; passes requested together run as one batch).',
      buckets: FAST_BUCKETS,
      registers,
    });
    this.jobDuration = new Histogram({
      name: 'ibex_job_duration_seconds',
      help: 'Jobs that finished on this replica, from creation to their final status, by type and final status.',
      labelNames: ['type', 'status'] as const,
      buckets: JOB_BUCKETS,
      registers,
    });
    this.observeGauge('ibex_queue_jobs', 'BullMQ queue depth by queue and state.', ['queue', 'state'], async () => {
      const readings: Reading<'queue' | 'state'>[] = [];
      for (const q of this.queues) {
        const counts = await bounded(q.getJobCounts(...QUEUE_STATES), `BullMQ queue ${q.name}`);
        for (const state of QUEUE_STATES) readings.push([{ queue: q.name, state }, counts[state] ?? 0]);
      }
      return readings;
    });
    this.observeGauge('ibex_db_pool_connections', 'Postgres pool connections by pool and state (total, idle, waiting = queries queued for a connection, max).', ['pool', 'state'], () =>
      [...this.pools].flatMap(([pool, p]): Reading<'pool' | 'state'>[] => [
        [{ pool, state: 'total' }, p.totalCount],
        [{ pool, state: 'idle' }, p.idleCount],
        [{ pool, state: 'waiting' }, p.waitingCount],
        [{ pool, state: 'max' }, p.options.max ?? 10],
      ]),
    );
  }

  /** A job reached a final status on this replica. */
  jobFinished(type: string, status: string, createdAt: Date, finishedAt: Date): void {
    this.jobDuration.observe({ type, status }, Math.max(0, (finishedAt.getTime() - createdAt.getTime()) / 1000));
  }

  /** Reports the depth of a BullMQ queue (every queue the controller owns should be watched). */
  watchQueue(queue: WatchedQueue): void {
    if (!this.queues.includes(queue)) this.queues.push(queue);
  }

  watchPool(name: string, pool: WatchedPool): void {
    this.pools.set(name, pool);
  }

  /**
   * A gauge whose values are read at scrape time. A read that fails (Postgres or Redis down)
   * leaves the gauge empty for that scrape and is logged once until it works again.
   */
  observeGauge<L extends string>(name: string, help: string, labelNames: readonly L[], read: () => Reading<L>[] | Promise<Reading<L>[]>): void {
    const failing = this.failing;
    const log = this.log;
    new Gauge<L>({
      name,
      help,
      labelNames,
      registers: [this.registry],
      async collect() {
        this.reset();
        try {
          for (const [labels, value] of await read()) this.set(labels, value);
          failing.delete(name);
        } catch (err) {
          if (!failing.has(name)) log.warn(`metric ${name} could not be read: ${(err as Error).message}`);
          failing.add(name);
        }
      },
    });
  }

  /** A counter kept by another part (a running total it exposes), read at scrape time. */
  observeCounter(name: string, help: string, read: () => number): void {
    new Counter({
      name,
      help,
      registers: [this.registry],
      collect() {
        this.reset();
        this.inc(read());
      },
    });
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}

/** Rejects when `work` takes longer than READ_TIMEOUT_MS. */
export async function bounded<T>(work: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not answer within ${READ_TIMEOUT_MS} ms`)), READ_TIMEOUT_MS)));
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
