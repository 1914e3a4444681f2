import { createParamDecorator, type ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request } from 'express';
import { Unauthenticated } from '../../common/errors.js';
import { type Caller, callerOf } from '../http/request-context.js';

/** Route (or controller) reachable without an API token: health checks only. */
export const Public = Reflector.createDecorator<true>({ transform: () => true });

/** Read-only route a device may also call with its own credential (`Bearer ibxd_...`): artifact downloads. */
export const DevicesMayRead = Reflector.createDecorator<true>({ transform: () => true });

/** Route (or controller) only admin tokens may use. */
export const AdminOnly = Reflector.createDecorator<true>({ transform: () => true });

/** The authenticated caller (actor for the audit log, role, request id). */
export const CurrentCaller = createParamDecorator((_: unknown, ctx: ExecutionContext): Caller => {
  const caller = callerOf(ctx.switchToHttp().getRequest<Request>());
  // Only reachable on a @Public route that asks for a caller: a programming error, refused safely.
  if (!caller) throw new Unauthenticated('this route needs an API token');
  return caller;
});
