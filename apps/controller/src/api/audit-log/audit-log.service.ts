import { Injectable } from '@nestjs/common';
import { z } from 'zod';
import type { AuditEvent, Prisma } from '../../generated/prisma/client.js';
import { PrismaService } from '../../prisma/prisma.service.js';
import { decodeCursor, type Page, toPage } from '../http/pagination.js';
import { iso } from '../http/schemas.js';
import type { AuditEventView, ListAuditQuery } from './audit-log.dto.js';

const idCursor = z.object({ id: z.string().regex(/^\d{1,19}$/) });

function toView(e: AuditEvent): AuditEventView {
  return {
    id: e.id.toString(),
    at: iso(e.at),
    actor: { type: e.actorType, id: e.actorId, name: e.actorName },
    action: e.action,
    target: e.targetType && e.targetId ? { type: e.targetType, id: e.targetId } : null,
    data: (e.data ?? {}) as Record<string, unknown>,
    requestId: e.requestId,
  };
}

/** Reading the audit log (AuditService writes it, inside each change's transaction). */
@Injectable()
export class AuditLogService {
  constructor(private readonly prisma: PrismaService) {}

  /** Newest first (by id, which grows with time). */
  async list(q: ListAuditQuery): Promise<Page<AuditEventView>> {
    const where: Prisma.AuditEventWhereInput = {
      ...(q.action ? { action: q.action.endsWith('.*') ? { startsWith: q.action.slice(0, -1) } : q.action } : {}),
      ...(q.targetType ? { targetType: q.targetType } : {}),
      ...(q.targetId ? { targetId: q.targetId } : {}),
      ...(q.actorId ? { actorId: q.actorId } : {}),
      ...(q.since || q.until ? { at: { ...(q.since ? { gte: q.since } : {}), ...(q.until ? { lt: q.until } : {}) } } : {}),
      ...(q.cursor ? { id: { lt: BigInt(decodeCursor(idCursor, q.cursor).id) } } : {}),
    };
    const rows = await this.prisma.auditEvent.findMany({ where, orderBy: { id: 'desc' }, take: q.limit + 1 });
    return toPage(rows, q.limit, (e) => ({ id: e.id.toString() }), toView);
  }
}
