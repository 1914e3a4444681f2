import { type CanActivate, type ExecutionContext, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request } from 'express';
import { Forbidden } from '../../common/errors.js';
import type { TokenRole } from '../../generated/prisma/client.js';
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
    private readonly devices: DeviceAuth,
  ) {}

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    if (ctx.getType() !== 'http') return true;
    const targets = [ctx.getHandler(), ctx.getClass()];
    if (this.reflector.getAllAndOverride(Public, targets)) return true;
    const req = ctx.switchToHttp().getRequest<Request>();
    const auth = req.get('authorization');
    if (READ_METHODS.has(req.method) && /^Bearer\s+ibxd_/i.test(auth ?? '') && this.reflector.getAllAndOverride(DevicesMayRead, targets)) {
      await this.devices.authenticateHeader(auth);
      return true;
    }
    const token = await this.tokens.authenticate(req.get('authorization'));
    checkRole(token.role, req.method, this.reflector.getAllAndOverride(AdminOnly, targets) ?? false, token.name);
    setCaller(req, { actor: { type: 'api_token', id: token.id, name: token.name }, requestId: requestIdOf(req) });
    return true;
  }
}
