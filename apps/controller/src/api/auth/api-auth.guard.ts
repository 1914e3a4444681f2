import { type CanActivate, type ExecutionContext, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request } from 'express';
import { Forbidden, Unauthenticated } from '../../common/errors.js';
import type { TokenRole } from '../../generated/prisma/client.js';
import { AuthFailureLimiter } from '../../security/auth-failure-limiter.service.js';
import { ApiTokensService } from '../api-tokens/api-tokens.service.js';
import { requestIdOf, setCaller } from '../http/request-context.js';
import { DeviceAuth } from '../../gateway/connect/device-auth.service.js';
import { AdminOnly, DevicesMayRead, Public } from './auth.decorators.js';

const READ_METHODS = new Set(['GET', 'HEAD']);

/** What a role may do: viewer reads, operator does everything but API tokens, admin everything. */
export function checkRole(role: TokenRole, method: string, adminOnly: boolean, tokenName: string): void {
  if (adminOnly && role !== 'admin') {
    throw new Forbidden(`API token "${tokenName}" has role ${role}; managing API tokens needs an admin token`);
  }
  if (role === 'viewer' && !READ_METHODS.has(method)) {
    throw new Forbidden(`API token "${tokenName}" has role viewer, which can only read (GET); use an operator or admin token to change things`);
  }
}

/** Global guard: every route needs a valid API token unless marked @Public(). */
@Injectable()
export class ApiAuthGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly tokens: ApiTokensService,
    private readonly limiter: AuthFailureLimiter,
    private readonly devices: DeviceAuth,
  ) {}

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    if (ctx.getType() !== 'http') return true;
    const targets = [ctx.getHandler(), ctx.getClass()];
    if (this.reflector.getAllAndOverride(Public, targets)) return true;
    const req = ctx.switchToHttp().getRequest<Request>();
    const header = req.get('authorization');
    // Failed authentications count per client address and per presented token (429 once over).
    const source = req.ip ?? req.socket.remoteAddress ?? 'unknown';
    await this.limiter.check('api', source, header);
    let token: Awaited<ReturnType<ApiTokensService['authenticate']>>;
    try {
      // A device may read what it installs (artifacts) with its own credential.
      if (READ_METHODS.has(req.method) && /^Bearer\s+ibxd_/i.test(header ?? '') && this.reflector.getAllAndOverride(DevicesMayRead, targets)) {
        await this.devices.authenticateHeader(header);
        return true;
      }
      token = await this.tokens.authenticate(header);
    } catch (err) {
      if (err instanceof Unauthenticated) await this.limiter.failed('api', source, header);
      throw err;
    }
    checkRole(token.role, req.method, this.reflector.getAllAndOverride(AdminOnly, targets) ?? false, token.name);
    setCaller(req, { actor: { type: 'api_token', id: token.id, name: token.name }, requestId: requestIdOf(req) });
    return true;
  }
}
