/**
 * Error kinds the agent tells apart (mender's split): a transient error means "try again later"
 * (the job result says `retryable`), a fatal one means "stop, revert, report". A usage error is
 * the operator's mistake on the command line or in a config/spec file (exit code 2).
 */
export class UsageError extends Error {
    name = 'UsageError';
}
export class TransientError extends Error {
    name = 'TransientError';
}
export class FatalError extends Error {
    name = 'FatalError';
}
/** errno codes that describe a passing condition rather than a wrong request. */
const TRANSIENT_CODES = new Set(['EAGAIN', 'EBUSY', 'EINTR', 'ENOSPC', 'ENOMEM', 'EMFILE', 'ENFILE', 'ETIMEDOUT', 'ECONNRESET', 'ECONNREFUSED']);
export function isTransient(err) {
    if (err instanceof TransientError)
        return true;
    if (err instanceof FatalError)
        return false;
    const code = err?.code;
    return typeof code === 'string' && TRANSIENT_CODES.has(code);
}
export function errorMessage(err) {
    return err instanceof Error ? err.message : String(err);
}
//# sourceMappingURL=errors.js.map