import type { Logger } from '@nestjs/common';
import { isTransient, isUnavailable } from './grpc-status.js';

/**
 * Stores what agents sent, a batch in one transaction (`store`). When that fails: for a batch
 * of one, Postgres unreachable, or contention, every item fails (the gateway retries contention,
 * an agent re-sends what was never acknowledged); anything else may be one item the database
 * refuses, and must not fail the others: `one` stores them one by one. Returns what `store`
 * returned, or undefined when the batch was not stored as a whole.
 */
export async function storeBatch<Q extends { reject(err: unknown): void }, R>(
  batch: Q[],
  what: string,
  log: Logger,
  store: (batch: Q[]) => Promise<R>,
  one: (item: Q) => Promise<void>,
): Promise<{ stored: R } | undefined> {
  try {
    return { stored: await store(batch) };
  } catch (err) {
    if (batch.length === 1 || isUnavailable(err) || isTransient(err)) {
      for (const q of batch) q.reject(err);
      return undefined;
    }
    log.warn(`storing ${batch.length} ${what} in one transaction failed (${(err as Error).message}); storing them one by one`);
    for (const q of batch) await one(q);
    return undefined;
  }
}
