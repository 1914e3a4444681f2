import type { Logger } from '@nestjs/common';

/**
 * Runs an AGENT_DELIVERY / JOB_SCHEDULER call after the change committed. Those calls are hints:
 * Postgres already holds the truth and the gateway reconciles from it when the device
 * (re)connects, so a failure delays delivery but does not undo or fail the operator's request.
 */
export async function sendHint(log: Logger, what: string, call: () => Promise<void>): Promise<void> {
  try {
    await call();
  } catch (err) {
    log.warn(`${what} failed (${err instanceof Error ? err.message : String(err)}); the device gets the change when it next connects`);
  }
}
