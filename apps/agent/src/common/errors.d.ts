/**
 * Error kinds the agent tells apart (mender's split): a transient error means "try again later"
 * (the job result says `retryable`), a fatal one means "stop, revert, report". A usage error is
 * the operator's mistake on the command line or in a config/spec file (exit code 2).
 */
export declare class UsageError extends Error {
    name: string;
}
export declare class TransientError extends Error {
    name: string;
}
export declare class FatalError extends Error {
    name: string;
}
export declare function isTransient(err: unknown): boolean;
export declare function errorMessage(err: unknown): string;
