import { status } from '@grpc/grpc-js';
import { ValidationError } from '@ibex/spec';
import { Conflict, DomainError, Forbidden, NotFound, RateLimited, Unauthenticated, Unavailable, ValidationFailed } from '../common/errors.js';

/** What a failed call ends with: a gRPC status code and a message for the agent's operator. */
export interface GrpcFailure {
  code: status;
  details: string;
}

/**
 * The one mapping from errors to gRPC statuses (protocol.md "Errors on the wire"). Services
 * throw domain errors; an error that is not one is either an unreachable dependency
 * (UNAVAILABLE, so the agent retries) or a bug (INTERNAL, details only in the controller log).
 */
export function grpcFailure(err: unknown): GrpcFailure {
  // toWellFormed: grpc-js puts the details through encodeURI, which throws on an unpaired
  // surrogate, and the call then never ends (the gRPC fuzzer hit it once).
  if (err instanceof DomainError) return { code: domainCode(err), details: err.message.toWellFormed() };
  if (err instanceof ValidationError) return { code: status.INVALID_ARGUMENT, details: err.message.toWellFormed() };
  if (isUnavailable(err)) {
    return { code: status.UNAVAILABLE, details: 'the controller cannot reach its database or Redis right now; the agent retries' };
  }
  return { code: status.INTERNAL, details: 'internal controller error (see the controller log)' };
}

function domainCode(err: DomainError): status {
  if (err instanceof ValidationFailed) return status.INVALID_ARGUMENT;
  if (err instanceof NotFound) return status.NOT_FOUND;
  // A conflict about the state of a thing (not its existence) is a failed precondition.
  if (err instanceof Conflict) return err.details?.['precondition'] === true ? status.FAILED_PRECONDITION : status.ALREADY_EXISTS;
  if (err instanceof Unauthenticated) return status.UNAUTHENTICATED;
  if (err instanceof Forbidden) return status.PERMISSION_DENIED;
  if (err instanceof Unavailable) return status.UNAVAILABLE;
  if (err instanceof RateLimited) return status.RESOURCE_EXHAUSTED;
  return status.INTERNAL;
}

// Codes of a dependency that cannot be reached: Node socket errors, Prisma connection errors,
// Postgres "connection exception" / "admin shutdown" / "too many connections" SQLSTATEs.
const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'P1001',
  'P1002',
  'P1008',
  'P1017',
  'P2024',
  '57P01',
  '57P03',
  '53300',
  '08000',
  '08001',
  '08003',
  '08006',
]);
const UNAVAILABLE_TEXT = /ECONNREFUSED|ECONNRESET|Connection is closed|Connection terminated|Can't reach database|connection timeout|Reached the max retries per request/i;

/** True when the error (or one it wraps) says Postgres or Redis could not be reached. */
export function isUnavailable(err: unknown): boolean {
  const seen = new Set<unknown>();
  let e: unknown = err;
  while (e && typeof e === 'object' && !seen.has(e)) {
    seen.add(e);
    const rec = e as { code?: unknown; message?: unknown; cause?: unknown; originalCode?: unknown };
    if (typeof rec.code === 'string' && UNAVAILABLE_CODES.has(rec.code)) return true;
    if (typeof rec.originalCode === 'string' && UNAVAILABLE_CODES.has(rec.originalCode)) return true;
    if (typeof rec.message === 'string' && UNAVAILABLE_TEXT.test(rec.message)) return true;
    if (e instanceof AggregateError && e.errors.some(isUnavailable)) return true;
    e = rec.cause;
  }
  return false;
}
