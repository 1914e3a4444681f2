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
  return someCause(err, UNAVAILABLE_CODES, UNAVAILABLE_TEXT, isUnavailable);
}

/** Whether the error or one it wraps (`cause`, an AggregateError's errors) has one of the codes or a message matching. */
function someCause(err: unknown, codes: Set<string>, text: RegExp, self: (e: unknown) => boolean): boolean {
  const seen = new Set<unknown>();
  let e: unknown = err;
  while (e && typeof e === 'object' && !seen.has(e)) {
    seen.add(e);
    const rec = e as { code?: unknown; message?: unknown; cause?: unknown; originalCode?: unknown };
    if (typeof rec.code === 'string' && codes.has(rec.code)) return true;
    if (typeof rec.originalCode === 'string' && codes.has(rec.originalCode)) return true;
    if (typeof rec.message === 'string' && text.test(rec.message)) return true;
    if (e instanceof AggregateError && e.errors.some(self)) return true;
    e = rec.cause;
  }
  return false;
}

// Contention, not an outage: the pool had no connection free in time (P2024), an interactive
// transaction could not start or ran out of time (P2028), a write conflict or deadlock (P2034,
// 40001, 40P01), a lock not available (55P03). The same statement a moment later succeeds.
const TRANSIENT_CODES = new Set(['P2024', 'P2028', 'P2034', '40001', '40P01', '55P03']);
const TRANSIENT_TEXT = /Unable to start a transaction in the given time|Transaction already closed|deadlock detected|could not serialize access/i;

/** True when the error (or one it wraps) is database contention that a retry gets past. */
export function isTransient(err: unknown): boolean {
  return someCause(err, TRANSIENT_CODES, TRANSIENT_TEXT, isTransient);
}

/**
 * Runs `fn`, and again after a short growing pause while it fails with contention (isTransient),
 * at most `attempts` times in all; then the last error propagates. Only for work that commits
 * in one transaction or is idempotent, so a failed try left nothing behind.
 */
export async function retryTransient<T>(fn: () => Promise<T>, opts: { attempts?: number; baseMs?: number; onRetry?: (err: unknown, attempt: number) => void } = {}): Promise<T> {
  const attempts = opts.attempts ?? 4;
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (err) {
      if (i >= attempts || !isTransient(err)) throw err;
      opts.onRetry?.(err, i);
      const base = (opts.baseMs ?? 100) * 2 ** (i - 1);
      await new Promise((r) => setTimeout(r, base / 2 + Math.random() * base));
    }
  }
}
