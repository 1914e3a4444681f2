/**
 * How the operator-facing services (REST) reach agents without knowing where their streams
 * are. Implemented by the gateway side (gRPC streams + Redis pub/sub routing + BullMQ);
 * services only call these after their database change has committed.
 *
 * Every method is a hint to re-read state, never the payload itself: the replica holding the
 * device's stream reconciles from Postgres ("reconcile from what you read, not from the event").
 * Calling one for an offline device is harmless; the device gets its work when it reconnects.
 */
export interface AgentDelivery {
  /**
   * New work may exist for the device (a job, a cancellation, a desired revision): deliver it.
   * Never throws: Postgres already holds the work, so a failure (Redis down) is logged and only
   * delays delivery to the device's next Hello; it does not fail the operator's request.
   */
  kick(deviceId: string): Promise<void>;
  /**
   * Close the device's stream at once (revoked or deleted); it will not be let back in. With a
   * scope, only a stream that was let in with that credential or certificate.
   */
  disconnect(deviceId: string, reason: string, scope?: DisconnectScope): Promise<void>;
}
export interface DisconnectScope {
  credentialId?: string;
  certificateId?: string;
}
export const AGENT_DELIVERY = Symbol('AGENT_DELIVERY');

/**
 * Time-driven parts of the job lifecycle (BullMQ): expiry of undelivered jobs, per-attempt
 * timeouts, retries with backoff. Implemented by the gateway side. Never throws, like `kick`
 * (the periodic sweep and the device's next Hello catch up on what a failed call missed).
 */
export interface JobScheduler {
  /** A job row was created (status queued): schedule its expiry and try to deliver it now. */
  jobCreated(job: { id: string; deviceId: string; expiresAt: Date }): Promise<void>;
  /** An operator asked to cancel a job that was already delivered: tell the agent. */
  cancelRequested(job: { id: string; deviceId: string }): Promise<void>;
}
export const JOB_SCHEDULER = Symbol('JOB_SCHEDULER');
