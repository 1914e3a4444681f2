import { Injectable, Logger } from '@nestjs/common';
import { Clock } from '../../common/clock.js';
import type { Prisma } from '../../generated/prisma/client.js';
import { PrismaService } from '../../prisma/prisma.service.js';
import type { StateReportInput } from '../agent-messages.schema.js';
import { storeBatch } from '../store-batch.js';

/** Reports stored in one transaction at most. */
const BATCH_MAX = 500;
/** Batch transactions at once per replica (the rest of the pool serves everything else). */
const BATCHES_AT_ONCE = 3;

interface Queued {
  deviceId: string;
  report: StateReportInput;
  resolve: () => void;
  reject: (err: unknown) => void;
}

type Section = StateReportInput['sections'][number];

/**
 * Stores what agents report about their desired state (protocol.md "Desired state").
 *
 * Reports of all streams are queued and stored in batches of up to 500, one transaction and two
 * statements each (upsert the sections; then raise each device's revisions, working out in the
 * same statement whether every section of the revision is applied), at most 3 batches at once.
 * A fan-out of one desired state to thousands of agents brings all their reports within a second
 * or two: stored one transaction of 5-6 round trips each, 6 at once, they went at about 180 a
 * second and 10,000 took a minute (bench:agents --fanout). Each caller's promise settles once its
 * batch committed, so the gateway still acknowledges a report only once it is stored.
 */
@Injectable()
export class StateReports {
  private readonly log = new Logger('StateReports');
  private readonly queue: Queued[] = [];
  private running = 0;
  private pumpSoon?: NodeJS.Immediate;
  readonly stats = { batches: 0, reports: 0 };

  constructor(
    private readonly prisma: PrismaService,
    private readonly clock: Clock,
  ) {}

  /**
   * Upserts each section unless a report for a newer revision (or a later observation of the
   * same revision) is stored; raises receivedRevision, and appliedRevision when every section
   * of that revision is in_sync or unsupported. Idempotent, so a re-sent report is harmless.
   */
  store(deviceId: string, report: StateReportInput): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ deviceId, report, resolve, reject });
      // After the messages that arrived together: they go in one batch, not one each.
      this.pumpSoon ??= setImmediate(() => {
        this.pumpSoon = undefined;
        this.pump();
      });
    });
  }

  private pump(): void {
    while (this.running < BATCHES_AT_ONCE && this.queue.length) {
      const batch = this.takeBatch();
      this.running++;
      void this.run(batch).finally(() => {
        this.running--;
        this.pump();
      });
    }
  }

  /**
   * Up to BATCH_MAX reports, at most one per device: a device's later report waits for a later
   * batch, so one statement never upserts the same section row twice. Batches running at once may
   * commit in any order; the newer-wins upsert and GREATEST() make the stored result the same.
   */
  private takeBatch(): Queued[] {
    const batch: Queued[] = [];
    const devices = new Set<string>();
    for (let i = 0; i < this.queue.length && batch.length < BATCH_MAX; ) {
      const q = this.queue[i]!;
      if (devices.has(q.deviceId)) {
        i++;
        continue;
      }
      devices.add(q.deviceId);
      batch.push(q);
      this.queue.splice(i, 1);
    }
    return batch;
  }

  private async run(batch: Queued[]): Promise<void> {
    const done = await storeBatch(batch, 'state reports', this.log, (b) => this.prisma.$transaction((tx) => this.write(tx, b, this.clock.now())), (q) => this.run([q]));
    if (!done) return;
    this.stats.batches++;
    this.stats.reports += batch.length;
    for (const q of batch) q.resolve();
  }

  private async write(tx: Prisma.TransactionClient, batch: Queued[], now: Date): Promise<void> {
    const nowText = now.toISOString();
    const rows = batch.flatMap((q) => winningSections(q.report.sections, now.getTime()).map((s) => ({ q, s })));
    if (rows.length) {
      await tx.$executeRaw`
        INSERT INTO device_section_state ("deviceId", section, state, revision, error, detail, "observedAt", "updatedAt")
        SELECT v.device, v.section, v.state::"SectionState", v.revision, v.error, v.detail,
               v.observed AT TIME ZONE 'UTC', ${nowText}::timestamptz AT TIME ZONE 'UTC'
          FROM unnest(${rows.map((r) => r.q.deviceId)}::uuid[], ${rows.map((r) => r.s.section)}::text[], ${rows.map((r) => r.s.state)}::text[],
                      ${rows.map((r) => r.q.report.revision)}::int[], ${rows.map((r) => r.s.error || null)}::text[], ${rows.map((r) => r.s.detailJson || null)}::jsonb[],
                      ${rows.map((r) => (r.s.observedAtMs ? new Date(r.s.observedAtMs) : now).toISOString())}::timestamptz[])
            AS v(device, section, state, revision, error, detail, observed)
        ON CONFLICT ("deviceId", section) DO UPDATE SET
          state = EXCLUDED.state, revision = EXCLUDED.revision, error = EXCLUDED.error, detail = EXCLUDED.detail,
          "observedAt" = EXCLUDED."observedAt", "updatedAt" = EXCLUDED."updatedAt"
        WHERE device_section_state.revision < EXCLUDED.revision
           OR (device_section_state.revision = EXCLUDED.revision AND device_section_state."observedAt" <= EXCLUDED."observedAt")`;
    }
    // Applied: every section of the revision's spec (of the report, for an unknown revision or a
    // spec that is not an object) is stored for that revision as in_sync or unsupported.
    await tx.$executeRaw`
      WITH r AS (
        SELECT v.device, v.revision, v.reported
          FROM unnest(${batch.map((q) => q.deviceId)}::uuid[], ${batch.map((q) => q.report.revision)}::int[],
                      ${batch.map((q) => JSON.stringify(q.report.sections.map((s) => s.section)))}::jsonb[]) AS v(device, revision, reported)),
      applied AS (
        SELECT r.device, r.revision, NOT EXISTS (
          SELECT 1
            FROM (SELECT jsonb_object_keys(dr.spec) AS name FROM desired_revision dr
                   WHERE dr."deviceId" = r.device AND dr.revision = r.revision AND jsonb_typeof(dr.spec) = 'object'
                  UNION ALL
                  SELECT jsonb_array_elements_text(r.reported)
                   WHERE NOT EXISTS (SELECT 1 FROM desired_revision dr WHERE dr."deviceId" = r.device AND dr.revision = r.revision AND jsonb_typeof(dr.spec) = 'object')) AS wanted
           WHERE NOT EXISTS (SELECT 1 FROM device_section_state s
                              WHERE s."deviceId" = r.device AND s.section = wanted.name AND s.revision = r.revision
                                AND s.state::text IN ('in_sync', 'unsupported'))) AS applied
          FROM r)
      UPDATE device SET
        "receivedRevision" = GREATEST(device."receivedRevision", a.revision),
        "appliedRevision" = CASE WHEN a.applied THEN GREATEST(device."appliedRevision", a.revision) ELSE device."appliedRevision" END,
        "updatedAt" = ${nowText}::timestamptz AT TIME ZONE 'UTC'
      FROM applied a WHERE device.id = a.device`;
  }
}

/**
 * A report's sections with one entry per section name: where a name repeats, the entry the
 * stored row would end with had they been upserted one after another (a higher revision cannot
 * differ within a report, so the last of the latest observation).
 */
function winningSections(sections: readonly Section[], nowMs: number): Section[] {
  const byName = new Map<string, Section>();
  const observed = (s: Section) => s.observedAtMs || nowMs; // 0: observed now, as stored
  for (const s of sections) {
    const kept = byName.get(s.section);
    if (!kept || observed(kept) <= observed(s)) byName.set(s.section, s);
  }
  return [...byName.values()];
}
