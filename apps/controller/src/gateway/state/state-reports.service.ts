import { Injectable } from '@nestjs/common';
import { Clock } from '../../common/clock.js';
import { Limiter } from '../../common/limiter.js';
import type { Prisma } from '../../generated/prisma/client.js';
import { PrismaService } from '../../prisma/prisma.service.js';
import type { StateReportInput } from '../agent-messages.schema.js';

/** Section states that count as applied. */
const APPLIED_STATES = new Set(['in_sync', 'unsupported']);

/** Stores what agents report about their desired state (protocol.md "Desired state"). */
@Injectable()
export class StateReports {
  /**
   * At most 6 report transactions at once per replica (as JobUpdates): a fan-out of one desired
   * state to thousands of agents brings all their reports within a second or two; without the
   * bound they all wait in the database pool, give up ("unable to start a transaction in the
   * given time") and are retried, which measured 2,000 reports stored over 84 s (bench:agents --fanout).
   */
  private readonly limiter = new Limiter(6);

  constructor(
    private readonly prisma: PrismaService,
    private readonly clock: Clock,
  ) {}

  /**
   * Upserts each section unless a report for a newer revision (or a later observation of the
   * same revision) is stored; raises receivedRevision, and appliedRevision when every section
   * of that revision is in_sync or unsupported. Idempotent, so a re-sent report is harmless.
   */
  async store(deviceId: string, report: StateReportInput): Promise<void> {
    await this.limiter.run(() => this.write(deviceId, report));
  }

  private async write(deviceId: string, report: StateReportInput): Promise<void> {
    const now = this.clock.now();
    await this.prisma.$transaction(async (tx) => {
      for (const s of report.sections) {
        const observedAt = (s.observedAtMs ? new Date(s.observedAtMs) : now).toISOString();
        const detail = s.detailJson ? s.detailJson : null;
        await tx.$executeRaw`
          INSERT INTO device_section_state ("deviceId", section, state, revision, error, detail, "observedAt", "updatedAt")
          VALUES (${deviceId}::uuid, ${s.section}, ${s.state}::"SectionState", ${report.revision}, ${s.error || null},
                  ${detail}::jsonb, ${observedAt}::timestamptz AT TIME ZONE 'UTC', ${now.toISOString()}::timestamptz AT TIME ZONE 'UTC')
          ON CONFLICT ("deviceId", section) DO UPDATE SET
            state = EXCLUDED.state, revision = EXCLUDED.revision, error = EXCLUDED.error, detail = EXCLUDED.detail,
            "observedAt" = EXCLUDED."observedAt", "updatedAt" = EXCLUDED."updatedAt"
          WHERE device_section_state.revision < EXCLUDED.revision
             OR (device_section_state.revision = EXCLUDED.revision AND device_section_state."observedAt" <= EXCLUDED."observedAt")`;
      }
      const applied = await this.isApplied(tx, deviceId, report);
      await tx.$executeRaw`
        UPDATE device SET
          "receivedRevision" = GREATEST("receivedRevision", ${report.revision}),
          "appliedRevision" = CASE WHEN ${applied} THEN GREATEST("appliedRevision", ${report.revision}) ELSE "appliedRevision" END,
          "updatedAt" = ${now.toISOString()}::timestamptz AT TIME ZONE 'UTC'
        WHERE id = ${deviceId}::uuid`;
    });
  }

  /** Every section of the revision's spec (or of the report, for an unknown revision) is applied. */
  private async isApplied(tx: Prisma.TransactionClient, deviceId: string, report: StateReportInput): Promise<boolean> {
    const rev = await tx.desiredRevision.findUnique({ where: { deviceId_revision: { deviceId, revision: report.revision } }, select: { spec: true } });
    const spec = rev?.spec;
    const sections = spec && typeof spec === 'object' && !Array.isArray(spec) ? Object.keys(spec) : report.sections.map((s) => s.section);
    if (!sections.length) return true;
    const stored = await tx.deviceSectionState.findMany({ where: { deviceId, section: { in: sections } }, select: { section: true, state: true, revision: true } });
    const bySection = new Map(stored.map((s) => [s.section, s]));
    return sections.every((name) => {
      const s = bySection.get(name);
      return s !== undefined && s.revision === report.revision && APPLIED_STATES.has(s.state);
    });
  }
}
