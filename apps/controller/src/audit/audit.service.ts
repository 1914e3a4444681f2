import { Injectable } from '@nestjs/common';
import { PrismaService } from '../prisma/prisma.service.js';
import type { Prisma } from '../generated/prisma/client.js';

/** Who did something: an operator's API token, a device, or the controller itself. */
export type Actor =
  | { type: 'api_token'; id: string; name: string }
  | { type: 'device'; id: string; name: string }
  | { type: 'system'; id?: undefined; name: string };

export const systemActor = (name = 'controller'): Actor => ({ type: 'system', name });

export interface AuditEntry {
  actor: Actor;
  /** dotted verb, e.g. `device.revoke`, `job.create`, `enrollment_token.create` */
  action: string;
  target?: { type: string; id: string };
  data?: Record<string, unknown>;
  requestId?: string;
}

type Tx = Pick<Prisma.TransactionClient, 'auditEvent'>;

/** The audit log: every mutating call writes one row, inside the same transaction as the change. */
@Injectable()
export class AuditService {
  constructor(private readonly prisma: PrismaService) {}

  async record(entry: AuditEntry, tx: Tx = this.prisma): Promise<void> {
    await tx.auditEvent.create({ data: row(entry) });
  }

  /**
   * Records an entry reported from elsewhere (a device) once per `key`: a report sent again
   * (the agent re-sends until it is acknowledged) adds nothing. True when this call added it.
   */
  async recordOnce(entry: AuditEntry, key: string, tx: Tx = this.prisma): Promise<boolean> {
    const r = await tx.auditEvent.createMany({ data: [{ ...row(entry), key }], skipDuplicates: true });
    return r.count === 1;
  }
}

function row(entry: AuditEntry) {
  return {
    actorType: entry.actor.type,
    actorId: entry.actor.id ?? null,
    actorName: entry.actor.name,
    action: entry.action,
    targetType: entry.target?.type ?? null,
    targetId: entry.target?.id ?? null,
    data: (entry.data ?? {}) as Prisma.InputJsonValue,
    requestId: entry.requestId ?? null,
  };
}
