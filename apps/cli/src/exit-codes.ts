import { ApiError, ControllerUnreachable } from '@ibex/client';
import { ValidationError } from '@ibex/spec';

/** ibexctl's exit codes (apps/cli/README.md "Exit codes"). */
export const EXIT = {
  /** Done; for `jobs watch`, the job succeeded. */
  ok: 0,
  /** The operation failed: a watched job ended failed/cancelled/timed out, a section failed, or an unexpected error. */
  failed: 1,
  /** Bad usage or bad input: unknown command or flag, an invalid spec file, a 400 from the API. */
  usage: 2,
  /** No token, or the controller refused it (401) or its role does not allow this (403). */
  auth: 3,
  /** The device, job or token does not exist (404). */
  notFound: 4,
  /** Refused because of the current state (409): e.g. cancelling a finished job. */
  conflict: 5,
  /** The controller cannot be reached, or Postgres/Redis behind it are down (503). */
  unavailable: 6,
} as const;

/** A user-facing failure with its exit code (message printed as `error: ...`). */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT.failed,
    readonly details: string[] = [],
  ) {
    super(message);
    this.name = 'CliError';
  }
}

export function exitCodeOf(err: unknown): number {
  if (err instanceof CliError) return err.exitCode;
  if (err instanceof ValidationError) return EXIT.usage;
  if (err instanceof ControllerUnreachable) return EXIT.unavailable;
  if (err instanceof ApiError) {
    if (err.status === 400 || err.status === 413) return EXIT.usage;
    if (err.status === 401 || err.status === 403) return EXIT.auth;
    if (err.status === 404) return EXIT.notFound;
    if (err.status === 409) return EXIT.conflict;
    if (err.status === 503) return EXIT.unavailable;
  }
  return EXIT.failed;
}

/** The lines printed for an error: the message, then one line per field it names. */
export function errorLines(err: unknown): string[] {
  if (err instanceof ApiError) {
    const lines = [`error: ${err.message}`, ...err.issues.map((i) => `  ${i.path || '(body)'}: ${i.message}`)];
    if (err.status === 401) lines.push('  (log in with `ibexctl login --server URL --token TOKEN`, or set IBEX_TOKEN)');
    if (err.requestId && err.status >= 500) lines.push(`  (request id ${err.requestId}: quote it when reporting this)`);
    return lines;
  }
  if (err instanceof ValidationError) return [`error: invalid ${err.what}:`, ...err.issues.map((i) => `  ${i.path || '(top level)'}: ${i.message}`)];
  if (err instanceof CliError) return [`error: ${err.message}`, ...err.details.map((d) => `  ${d}`)];
  if (err instanceof Error) return [`error: ${err.message}`];
  return [`error: ${String(err)}`];
}
