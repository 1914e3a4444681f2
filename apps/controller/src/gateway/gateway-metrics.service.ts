import { Injectable, type OnModuleInit } from '@nestjs/common';
import { MetricsService } from '../metrics/metrics.service.js';
import { SessionRegistry } from './connect/session-registry.service.js';
import { JobTimerQueue } from './jobs/job-timer.queue.js';
import { PresenceService } from './presence/presence.service.js';

/** What /metrics reads of the gateway at scrape time: sessions, presence writes, its queue and pool. */
@Injectable()
export class GatewayMetrics implements OnModuleInit {
  constructor(
    private readonly metrics: MetricsService,
    private readonly sessions: SessionRegistry,
    private readonly presence: PresenceService,
    private readonly timers: JobTimerQueue,
  ) {}

  onModuleInit(): void {
    const m = this.metrics;
    m.observeGauge('ibex_connected_agents', 'Agent streams this replica holds.', [], () => [[{}, this.sessions.size]]);
    m.observeCounter('ibex_presence_rows_written_total', 'Heartbeats stored: last-seen times written to Postgres (rate() is heartbeats stored per second).', () => this.presence.stats.rows);
    m.observeCounter('ibex_presence_statements_total', 'UPDATE statements the presence flushes sent (one per 1000 devices per flush).', () => this.presence.stats.statements);
    m.observeCounter('ibex_presence_rows_skipped_total', 'Last-seen times left for the next flush because another transaction held the device row locked.', () => this.presence.stats.skipped);
    m.observeCounter('ibex_presence_flushes_total', 'Presence flushes that wrote something.', () => this.presence.stats.flushes);
    m.watchQueue(this.timers.queue);
    m.watchPool('presence', this.presence.db);
  }
}
