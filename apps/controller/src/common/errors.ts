import type { FieldIssue } from '@ibex/spec';

/**
 * Errors services throw. One HTTP filter and one gRPC mapping turn them into responses;
 * services never know which transport called them. `code` is stable and machine-readable,
 * `message` names the thing, the problem and the next step.
 */
export abstract class DomainError extends Error {
  abstract readonly code: string;
  constructor(
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** Input failed validation; `issues` name each field. HTTP 400, gRPC INVALID_ARGUMENT. */
export class ValidationFailed extends DomainError {
  readonly code = 'validation_failed';
  constructor(
    message: string,
    readonly issues: FieldIssue[],
  ) {
    super(message, { issues });
  }
}

/** HTTP 404, gRPC NOT_FOUND. */
export class NotFound extends DomainError {
  readonly code = 'not_found';
}

/** The request conflicts with the current state (name taken, job already finished). HTTP 409, gRPC FAILED_PRECONDITION/ALREADY_EXISTS. */
export class Conflict extends DomainError {
  readonly code = 'conflict';
}

/** Missing or bad credentials. HTTP 401, gRPC UNAUTHENTICATED. */
export class Unauthenticated extends DomainError {
  readonly code = 'unauthenticated';
}

/** Valid credentials, not allowed. HTTP 403, gRPC PERMISSION_DENIED. */
export class Forbidden extends DomainError {
  readonly code = 'forbidden';
}

/** A dependency (Postgres, Redis) is unavailable. HTTP 503, gRPC UNAVAILABLE. */
export class Unavailable extends DomainError {
  readonly code = 'unavailable';
}

/** Too many failed attempts (authentication, enrollment). HTTP 429 with Retry-After, gRPC RESOURCE_EXHAUSTED. */
export class RateLimited extends DomainError {
  readonly code = 'rate_limited';
  constructor(
    message: string,
    readonly retryAfterSec: number,
  ) {
    super(message, { retryAfterSec });
  }
}

/** The request has no Content-Length where one is required (streamed uploads). HTTP 411. */
export class LengthRequired extends DomainError {
  readonly code = 'length_required';
}

/** The request body is larger than allowed. HTTP 413, refused before the body is read. */
export class PayloadTooLarge extends DomainError {
  readonly code = 'payload_too_large';
}
