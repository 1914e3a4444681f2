import { Injectable } from '@nestjs/common';
import { AuditService } from '../../audit/audit.service.js';
import { Clock } from '../../common/clock.js';
import { Conflict, NotFound, Unauthenticated } from '../../common/errors.js';
import { displayPrefix, hashSecret, newSecret, SECRET_PREFIX } from '../../common/secrets.js';
import type { ApiToken, Prisma } from '../../generated/prisma/client.js';
import { PrismaService } from '../../prisma/prisma.service.js';
import type { Caller } from '../http/request-context.js';
import { newestFirstKey, newestFirstOrder, olderThan, type Page, toPage } from '../http/pagination.js';
import { iso, isUuid } from '../http/schemas.js';
import type { ApiTokenView, CreateApiTokenBody, CreatedApiTokenView, ListApiTokensQuery } from './api-tokens.dto.js';

/** lastUsedAt is written at most this often per token, so reading the API costs no writes. */
export const LAST_USED_RESOLUTION_MS = 60_000;

/** Serialises changes to the set of admin tokens (bootstrap, revocation) across replicas. */
export const ADMIN_TOKENS_LOCK = 'SELECT pg_advisory_xact_lock(hashtext(\'ibex.api_token.admins\'))';

export function activeAdminTokens(now: Date): Prisma.ApiTokenWhereInput {
  return { role: 'admin', revokedAt: null, OR: [{ expiresAt: null }, { expiresAt: { gt: now } }] };
}

export function apiTokenStatus(t: ApiToken, now: Date): ApiTokenView['status'] {
  if (t.revokedAt) return 'revoked';
  if (t.expiresAt && t.expiresAt <= now) return 'expired';
  return 'active';
}

export function toApiTokenView(t: ApiToken, now: Date): ApiTokenView {
  return {
    id: t.id,
    name: t.name,
    role: t.role,
    prefix: t.prefix,
    status: apiTokenStatus(t, now),
    createdAt: iso(t.createdAt),
    createdById: t.createdById,
    expiresAt: iso(t.expiresAt),
    lastUsedAt: iso(t.lastUsedAt),
    revokedAt: iso(t.revokedAt),
  };
}

/** Operator API tokens: issue, list, revoke, and check a presented bearer token. */
@Injectable()
export class ApiTokensService {
  constructor(
    private readonly prisma: PrismaService,
    private readonly audit: AuditService,
    private readonly clock: Clock,
  ) {}

  async create(caller: Caller, input: CreateApiTokenBody): Promise<CreatedApiTokenView> {
    const now = this.clock.now();
    const secret = newSecret('apiToken');
    const expiresAt = input.expiresInDays ? new Date(now.getTime() + input.expiresInDays * 86_400_000) : null;
    const row = await this.prisma.$transaction(async (tx) => {
      const t = await tx.apiToken.create({
        data: { name: input.name, role: input.role, prefix: displayPrefix(secret), hash: hashSecret(secret), expiresAt, createdById: caller.actor.id },
      });
      await this.audit.record(
        { actor: caller.actor, action: 'api_token.create', target: { type: 'api_token', id: t.id }, data: { name: t.name, role: t.role, expiresAt: iso(expiresAt) }, requestId: caller.requestId },
        tx,
      );
      return t;
    });
    return { ...toApiTokenView(row, now), token: secret };
  }

  async list(q: ListApiTokensQuery): Promise<Page<ApiTokenView>> {
    const rows = await this.prisma.apiToken.findMany({ where: olderThan(q.cursor), orderBy: newestFirstOrder, take: q.limit + 1 });
    const now = this.clock.now();
    return toPage(rows, q.limit, newestFirstKey, (t) => toApiTokenView(t, now));
  }

  /** Revokes a token at once. Refuses to revoke the last active admin token (that would lock everyone out). */
  async revoke(caller: Caller, id: string): Promise<void> {
    const now = this.clock.now();
    await this.prisma.$transaction(async (tx) => {
      await tx.$executeRawUnsafe(ADMIN_TOKENS_LOCK);
      const t = isUuid(id) ? await tx.apiToken.findUnique({ where: { id } }) : null;
      if (!t) throw new NotFound(`API token ${id} not found; list tokens with GET /api/v1/api-tokens`);
      if (t.revokedAt) return;
      if (t.role === 'admin' && apiTokenStatus(t, now) === 'active') {
        const others = await tx.apiToken.count({ where: { ...activeAdminTokens(now), id: { not: t.id } } });
        if (others === 0) throw new Conflict(`API token "${t.name}" is the last active admin token; create another admin token before revoking it`);
      }
      await tx.apiToken.update({ where: { id: t.id }, data: { revokedAt: now } });
      await this.audit.record({ actor: caller.actor, action: 'api_token.revoke', target: { type: 'api_token', id: t.id }, data: { name: t.name, role: t.role }, requestId: caller.requestId }, tx);
    });
  }

  /** Checks an `Authorization` header; returns the token or throws Unauthenticated saying why. */
  async authenticate(authorization: string | undefined): Promise<ApiToken> {
    if (!authorization) {
      throw new Unauthenticated('missing API token: send "Authorization: Bearer ibx_..."; an admin creates tokens with POST /api/v1/api-tokens');
    }
    const secret = /^Bearer\s+(\S+)\s*$/i.exec(authorization)?.[1];
    if (!secret) throw new Unauthenticated('the Authorization header must be "Bearer <API token>"');
    if (!secret.startsWith(SECRET_PREFIX.apiToken)) {
      throw new Unauthenticated(`that is not an API token (they start with "${SECRET_PREFIX.apiToken}"); device credentials and enrollment tokens do not work here`);
    }
    const t = await this.prisma.apiToken.findUnique({ where: { hash: hashSecret(secret) } });
    if (!t) throw new Unauthenticated('API token not recognised; check it was copied whole, or ask an admin for a new one');
    const now = this.clock.now();
    if (t.revokedAt) throw new Unauthenticated(`API token "${t.name}" (${t.prefix}...) was revoked at ${iso(t.revokedAt)}; ask an admin for a new one`);
    if (t.expiresAt && t.expiresAt <= now) throw new Unauthenticated(`API token "${t.name}" (${t.prefix}...) expired at ${iso(t.expiresAt)}; ask an admin for a new one`);
    if (!t.lastUsedAt || now.getTime() - t.lastUsedAt.getTime() >= LAST_USED_RESOLUTION_MS) {
      const stale = new Date(now.getTime() - LAST_USED_RESOLUTION_MS + 1);
      // Conditional, so concurrent requests (on any replica) write once between them.
      await this.prisma.apiToken.updateMany({ where: { id: t.id, OR: [{ lastUsedAt: null }, { lastUsedAt: { lt: stale } }] }, data: { lastUsedAt: now } });
    }
    return t;
  }
}
