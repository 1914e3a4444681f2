import { randomUUID } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import type { Actor } from '../../audit/audit.service.js';

/** Who is calling, as services need it: the actor for the audit log and the request id. */
export interface Caller {
  actor: Actor & { type: 'api_token' };
  requestId: string;
}

const REQUEST_ID = Symbol('requestId');
const CALLER = Symbol('caller');
type Tagged = Request & { [REQUEST_ID]?: string; [CALLER]?: Caller };

export const REQUEST_ID_HEADER = 'X-Request-Id';
// A client's id is echoed into logs and the audit log: keep it short and printable.
const ACCEPTED_ID = /^[A-Za-z0-9._:@-]{1,128}$/;

/** Express middleware: take the client's X-Request-Id when sane, else make one; echo it back. */
export function requestIdMiddleware(req: Request, res: Response, next: NextFunction): void {
  const given = req.get(REQUEST_ID_HEADER);
  const id = given && ACCEPTED_ID.test(given) ? given : randomUUID();
  (req as Tagged)[REQUEST_ID] = id;
  res.setHeader(REQUEST_ID_HEADER, id);
  next();
}

export function requestIdOf(req: Request): string {
  return (req as Tagged)[REQUEST_ID] ?? 'unknown';
}

export function setCaller(req: Request, caller: Caller): void {
  (req as Tagged)[CALLER] = caller;
}

export function callerOf(req: Request): Caller | undefined {
  return (req as Tagged)[CALLER];
}
