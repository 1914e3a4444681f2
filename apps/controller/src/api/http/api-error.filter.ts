import { type ArgumentsHost, Catch, type ExceptionFilter, HttpException, HttpStatus, Logger } from '@nestjs/common';
import type { Request, Response } from 'express';
import type { FieldIssue } from '@ibex/spec';
import { Conflict, DomainError, Forbidden, LengthRequired, NotFound, PayloadTooLarge, RateLimited, Unauthenticated, Unavailable, ValidationFailed } from '../../common/errors.js';
import { requestIdOf } from './request-context.js';

export interface ErrorBody {
  error: { code: string; message: string; issues?: FieldIssue[] };
  requestId: string;
}

export interface MappedError {
  status: number;
  code: string;
  message: string;
  issues?: FieldIssue[];
  /** Seconds for the Retry-After header (429). */
  retryAfterSec?: number;
  /** Unexpected: log the stack (never sent to the client). */
  unexpected?: boolean;
}

export const BODY_LIMIT_BYTES = 2 * 1024 * 1024;

const DOMAIN_STATUS: Array<[abstract new (...args: never[]) => DomainError, number]> = [
  [ValidationFailed, HttpStatus.BAD_REQUEST],
  [Unauthenticated, HttpStatus.UNAUTHORIZED],
  [Forbidden, HttpStatus.FORBIDDEN],
  [NotFound, HttpStatus.NOT_FOUND],
  [Conflict, HttpStatus.CONFLICT],
  [Unavailable, HttpStatus.SERVICE_UNAVAILABLE],
  [RateLimited, HttpStatus.TOO_MANY_REQUESTS],
  [LengthRequired, HttpStatus.LENGTH_REQUIRED],
  [PayloadTooLarge, HttpStatus.PAYLOAD_TOO_LARGE],
];

// Error codes (Node, pg, Postgres SQLSTATE) that mean "the database or Redis is not there".
const UNAVAILABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EHOSTUNREACH', '57P01', '57P03', '08001', '08006']);

/** Maps anything a handler (or Express before it) threw to a status and a stable error code. */
export function mapError(err: unknown, req: Pick<Request, 'method' | 'originalUrl'>): MappedError {
  if (err instanceof DomainError) {
    const status = DOMAIN_STATUS.find(([cls]) => err instanceof cls)?.[1] ?? HttpStatus.INTERNAL_SERVER_ERROR;
    return {
      status,
      code: err.code,
      message: err.message,
      ...(err instanceof ValidationFailed ? { issues: err.issues } : {}),
      ...(err instanceof RateLimited ? { retryAfterSec: err.retryAfterSec } : {}),
    };
  }
  if (err instanceof HttpException) return mapHttpException(err, req);
  if (isUnavailable(err)) {
    return { status: 503, code: 'unavailable', message: 'a dependency of the controller (Postgres or Redis) is unavailable; GET /readyz says which, retry when it is back', unexpected: true };
  }
  return { status: 500, code: 'internal_error', message: 'internal error; the controller log has the details (search it for the request id)', unexpected: true };
}

function mapHttpException(err: HttpException, req: Pick<Request, 'method' | 'originalUrl'>): MappedError {
  const status = err.getStatus();
  const cause = err.cause as { type?: string } | undefined;
  if (status === 400 && (cause instanceof SyntaxError || cause?.type === 'entity.parse.failed')) {
    return { status, code: 'invalid_json', message: `request body is not valid JSON (${(cause as Error).message})` };
  }
  if (status === 404) {
    return { status, code: 'not_found', message: `no route ${req.method} ${req.originalUrl.split('?')[0]}; the API is described at /api/docs` };
  }
  if (status === 413) {
    return { status, code: 'payload_too_large', message: `request body is larger than ${BODY_LIMIT_BYTES / 1024 / 1024} MiB; send a smaller one` };
  }
  if (status >= 500) return { status, code: 'internal_error', message: 'internal error; the controller log has the details (search it for the request id)', unexpected: true };
  const res = err.getResponse();
  const text = typeof res === 'string' ? res : ((res as { message?: unknown }).message ?? err.message);
  return { status, code: (HttpStatus[status] ?? 'error').toLowerCase(), message: Array.isArray(text) ? text.join('; ') : String(text) };
}

function isUnavailable(err: unknown): boolean {
  for (let e = err, depth = 0; e && typeof e === 'object' && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const { code, name } = e as { code?: unknown; name?: unknown };
    if (typeof code === 'string' && UNAVAILABLE_CODES.has(code)) return true;
    if (name === 'PrismaClientInitializationError' || name === 'MaxRetriesPerRequestError') return true;
  }
  return false;
}

/**
 * The one HTTP exception filter: every error leaves as
 * `{ error: { code, message, issues? }, requestId }`, including Nest's own (unknown route,
 * malformed JSON, body too large). Stack traces go to the log, never to the client.
 */
@Catch()
export class ApiErrorFilter implements ExceptionFilter {
  private readonly log = new Logger('Http');

  catch(err: unknown, host: ArgumentsHost): void {
    const req = host.switchToHttp().getRequest<Request>();
    const res = host.switchToHttp().getResponse<Response>();
    const requestId = requestIdOf(req);
    const mapped = mapError(err, req);
    if (mapped.unexpected) {
      this.log.error(`${req.method} ${req.originalUrl} (request ${requestId}) failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    }
    if (res.headersSent) return;
    if (mapped.status === 401) res.setHeader('WWW-Authenticate', 'Bearer realm="ibex"');
    if (mapped.retryAfterSec !== undefined) res.setHeader('Retry-After', String(mapped.retryAfterSec));
    const body: ErrorBody = {
      error: { code: mapped.code, message: mapped.message, ...(mapped.issues ? { issues: mapped.issues } : {}) },
      requestId,
    };
    res.status(mapped.status).json(body);
  }
}
