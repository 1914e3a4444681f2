import { Inject, Injectable } from '@nestjs/common';
import { AuditService } from '../../audit/audit.service.js';
import { Clock } from '../../common/clock.js';
import { NotFound } from '../../common/errors.js';
import { displayPrefix, hashSecret, newSecret } from '../../common/secrets.js';
import { CONFIG, type Config } from '../../config/config.js';
import type { EnrollmentToken } from '../../generated/prisma/client.js';
import { PrismaService } from '../../prisma/prisma.service.js';
import { labelsOf } from '../devices/device-view.js';
import { newestFirstKey, newestFirstOrder, olderThan, type Page, toPage } from '../http/pagination.js';
import type { Caller } from '../http/request-context.js';
import { iso, isUuid } from '../http/schemas.js';
import type {
  CreatedEnrollmentTokenView,
  CreateEnrollmentTokenBody,
  EnrollmentTokenView,
  ListEnrollmentTokensQuery,
} from './enrollment-tokens.dto.js';

export function enrollmentTokenStatus(t: EnrollmentToken, now: Date): EnrollmentTokenView['status'] {
  if (t.revokedAt) return 'revoked';
  if (t.maxUses !== null && t.uses >= t.maxUses) return 'exhausted';
  if (t.expiresAt <= now) return 'expired';
  return 'active';
}

function toView(t: EnrollmentToken, now: Date): EnrollmentTokenView {
  return {
    id: t.id,
    description: t.description,
    prefix: t.prefix,
    labels: labelsOf(t.labels),
    status: enrollmentTokenStatus(t, now),
    uses: t.uses,
    maxUses: t.maxUses,
    expiresAt: iso(t.expiresAt),
    createdAt: iso(t.createdAt),
    createdById: t.createdById,
    revokedAt: iso(t.revokedAt),
  };
}

// What may stand for a host in a command an operator pastes into a shell: a DNS name, IPv4 or [IPv6].
const SAFE_HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])$/;

/** Secrets a new device trades for its identity (the Enroll RPC is the gateway's). */
@Injectable()
export class EnrollmentTokensService {
  constructor(
    private readonly prisma: PrismaService,
    private readonly audit: AuditService,
    private readonly clock: Clock,
    @Inject(CONFIG) private readonly config: Config,
  ) {}

  /** `controllerHost`: the host name operators reach this controller by (the request's Host). */
  async create(caller: Caller, input: CreateEnrollmentTokenBody, controllerHost: string | undefined): Promise<CreatedEnrollmentTokenView> {
    const now = this.clock.now();
    const secret = newSecret('enrollmentToken');
    const row = await this.prisma.$transaction(async (tx) => {
      const t = await tx.enrollmentToken.create({
        data: {
          description: input.description,
          prefix: displayPrefix(secret),
          hash: hashSecret(secret),
          labels: input.labels,
          expiresAt: new Date(now.getTime() + input.expiresInHours * 3_600_000),
          maxUses: input.maxUses,
          createdById: caller.actor.id,
        },
      });
      await this.audit.record(
        {
          actor: caller.actor,
          action: 'enrollment_token.create',
          target: { type: 'enrollment_token', id: t.id },
          data: { description: t.description, expiresAt: iso(t.expiresAt), maxUses: t.maxUses, labels: input.labels },
          requestId: caller.requestId,
        },
        tx,
      );
      return t;
    });
    return { ...toView(row, now), token: secret, enrollCommand: this.enrollCommand(secret, controllerHost) };
  }

  enrollCommand(secret: string, controllerHost: string | undefined): string {
    const host = controllerHost && SAFE_HOST.test(controllerHost) ? controllerHost : 'CONTROLLER_HOST';
    // IBEX_GRPC_PORT=0 (any free port) has no port to advertise: a placeholder, like the host's.
    const port = this.config.grpc.port || 'CONTROLLER_GRPC_PORT';
    const scheme = this.config.grpc.tls ? 'grpcs' : 'grpc';
    return `ibex-agent enroll --controller ${scheme}://${host}:${port} --token ${secret}`;
  }

  async list(q: ListEnrollmentTokensQuery): Promise<Page<EnrollmentTokenView>> {
    const rows = await this.prisma.enrollmentToken.findMany({ where: olderThan(q.cursor), orderBy: newestFirstOrder, take: q.limit + 1 });
    const now = this.clock.now();
    return toPage(rows, q.limit, newestFirstKey, (t) => toView(t, now));
  }

  /** Revokes at once: no further enrollments. Devices already enrolled keep their credentials. */
  async revoke(caller: Caller, id: string): Promise<void> {
    const now = this.clock.now();
    await this.prisma.$transaction(async (tx) => {
      const t = isUuid(id) ? await tx.enrollmentToken.findUnique({ where: { id } }) : null;
      if (!t) throw new NotFound(`enrollment token ${id} not found; list them with GET /api/v1/enrollment-tokens`);
      if (t.revokedAt) return;
      await tx.enrollmentToken.update({ where: { id }, data: { revokedAt: now } });
      await this.audit.record(
        { actor: caller.actor, action: 'enrollment_token.revoke', target: { type: 'enrollment_token', id }, data: { description: t.description, uses: t.uses }, requestId: caller.requestId },
        tx,
      );
    });
  }
}
