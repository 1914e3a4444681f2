import { Inject, Injectable } from '@nestjs/common';
import { z } from 'zod';
import type { DesiredStateSpec } from '@ibex/spec';
import { ArtifactRefs } from '../../artifacts/artifact-refs.service.js';
import { AuditService } from '../../audit/audit.service.js';
import { Clock } from '../../common/clock.js';
import { Conflict, NotFound, ValidationFailed } from '../../common/errors.js';
import { AGENT_DELIVERY, type AgentDelivery } from '../../delivery/agent-delivery.port.js';
import { type DesiredRevision, Prisma } from '../../generated/prisma/client.js';
import { PrismaService } from '../../prisma/prisma.service.js';
import { DevicesService } from '../devices/devices.service.js';
import { decodeCursor, type Page, toPage } from '../http/pagination.js';
import type { Caller } from '../http/request-context.js';
import { iso } from '../http/schemas.js';
import type { DesiredRevisionView, DeviceStateView, ListRevisionsQuery, PutDesiredStateBody, RevisionSummaryView } from './desired-state.dto.js';

const revisionCursor = z.object({ r: z.number().int().min(1) });

function summary(r: DesiredRevision): RevisionSummaryView {
  return { deviceId: r.deviceId, revision: r.revision, message: r.message, createdBy: r.createdBy, createdAt: iso(r.createdAt) };
}
function full(r: DesiredRevision): DesiredRevisionView {
  return { ...summary(r), spec: r.spec as DesiredStateSpec };
}

/** Sections a spec manages (those present). */
export function specSections(spec: DesiredStateSpec): string[] {
  return Object.entries(spec)
    .filter(([, v]) => v !== undefined)
    .map(([k]) => k)
    .sort();
}

/** Parses an If-Match header: `3`, `"3"` or `W/"3"` (the ETag of GET desired-state). */
export function parseIfMatch(header: string | undefined): number | undefined {
  if (header === undefined || header.trim() === '') return undefined;
  const m = /^\s*(?:W\/)?"?(\d{1,9})"?\s*$/.exec(header);
  if (!m?.[1]) {
    const issue = { path: 'If-Match', message: 'must be a revision number such as "3" (the ETag of GET desired-state)' };
    throw new ValidationFailed(`invalid header If-Match: ${issue.message}`, [issue]);
  }
  return Number(m[1]);
}

/** Desired state: revisions an operator writes, and the per-section states agents report back. */
@Injectable()
export class DesiredStateService {
  constructor(
    private readonly prisma: PrismaService,
    private readonly audit: AuditService,
    private readonly clock: Clock,
    private readonly devices: DevicesService,
    @Inject(AGENT_DELIVERY) private readonly delivery: AgentDelivery,
    private readonly artifactRefs: ArtifactRefs,
  ) {}

  /**
   * Writes revision n+1: device.desiredRevision, the revision row, section states `pending` for
   * the sections of the new spec (states of sections it dropped are removed), audit; then kicks.
   */
  async put(caller: Caller, ref: string, body: PutDesiredStateBody, ifMatchHeader?: number): Promise<DesiredRevisionView> {
    if (body.ifMatchRevision !== undefined && ifMatchHeader !== undefined && body.ifMatchRevision !== ifMatchHeader) {
      const issue = { path: 'ifMatchRevision', message: `is ${body.ifMatchRevision} but the If-Match header says ${ifMatchHeader}; send one of them` };
      throw new ValidationFailed(`invalid request: ifMatchRevision ${issue.message}`, [issue]);
    }
    const ifMatch = body.ifMatchRevision ?? ifMatchHeader;
    const sections = specSections(body.spec);
    const spec = await this.artifactRefs.resolve(body.spec, 'spec');
    const now = this.clock.now();
    const row = await this.prisma.$transaction(async (tx) => {
      const d = await this.devices.findForUpdate(tx, ref);
      if (d.revokedAt) throw new Conflict(`device "${d.name}" is revoked; it gets no desired state (enroll it again first)`);
      if (ifMatch !== undefined && ifMatch !== d.desiredRevision) {
        throw new Conflict(`the desired state of device "${d.name}" is at revision ${d.desiredRevision}, not ${ifMatch}; GET it again, redo your change on top and retry`);
      }
      const revision = d.desiredRevision + 1;
      await tx.device.update({ where: { id: d.id }, data: { desiredRevision: revision } });
      const r = await tx.desiredRevision.create({
        data: { deviceId: d.id, revision, spec: spec as Prisma.InputJsonObject, message: body.message, createdBy: caller.actor.id },
      });
      await tx.deviceSectionState.deleteMany({ where: { deviceId: d.id, section: { notIn: sections } } });
      for (const section of sections) {
        const pending = { state: 'pending' as const, revision, error: null, detail: Prisma.DbNull, observedAt: now };
        await tx.deviceSectionState.upsert({ where: { deviceId_section: { deviceId: d.id, section } }, create: { deviceId: d.id, section, ...pending }, update: pending });
      }
      await this.audit.record(
        { actor: caller.actor, action: 'device.desired_state.set', target: { type: 'device', id: d.id }, data: { name: d.name, revision, sections, message: body.message }, requestId: caller.requestId },
        tx,
      );
      return r;
    });
    await this.delivery.kick(row.deviceId);
    return full(row);
  }

  async current(ref: string): Promise<DesiredRevisionView> {
    const d = await this.devices.find(ref);
    if (d.desiredRevision === 0) return { deviceId: d.id, revision: 0, spec: null, message: '', createdBy: null, createdAt: null };
    return this.revision(d.id, d.desiredRevision);
  }

  async revision(ref: string, revision: number): Promise<DesiredRevisionView> {
    const d = await this.devices.find(ref);
    const r = await this.prisma.desiredRevision.findUnique({ where: { deviceId_revision: { deviceId: d.id, revision } } });
    if (!r) throw new NotFound(`device "${d.name}" has no desired-state revision ${revision} (latest: ${d.desiredRevision})`);
    return full(r);
  }

  /** Newest first, without the specs (GET one revision for its spec). */
  async revisions(ref: string, q: ListRevisionsQuery): Promise<Page<RevisionSummaryView>> {
    const d = await this.devices.find(ref);
    const before = q.cursor ? decodeCursor(revisionCursor, q.cursor).r : undefined;
    const rows = await this.prisma.desiredRevision.findMany({
      where: { deviceId: d.id, ...(before !== undefined ? { revision: { lt: before } } : {}) },
      orderBy: { revision: 'desc' },
      take: q.limit + 1,
    });
    return toPage(rows, q.limit, (r) => ({ r: r.revision }), summary);
  }

  async state(ref: string): Promise<DeviceStateView> {
    const d = await this.devices.find(ref);
    const states = await this.prisma.deviceSectionState.findMany({ where: { deviceId: d.id }, orderBy: { section: 'asc' } });
    return {
      deviceId: d.id,
      deviceName: d.name,
      desiredRevision: d.desiredRevision,
      receivedRevision: d.receivedRevision,
      appliedRevision: d.appliedRevision,
      inSync: d.appliedRevision >= d.desiredRevision && states.every((s) => s.state === 'in_sync'),
      sections: states.map((s) => ({ section: s.section, state: s.state, revision: s.revision, error: s.error, detail: s.detail, observedAt: iso(s.observedAt) })),
    };
  }
}
