import { Redis } from 'ioredis';

/** The Redis the tests use (the controller's default). */
export const testRedisUrl = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';

/**
 * Removes every key under `prefix:` (BullMQ queues, presence, routing): what a test controller
 * or a bench run leaves in the shared Redis. One connection attempt, no retries, so a cleanup
 * against a Redis that is down fails at once instead of hanging the test's teardown.
 */
export async function deleteRedisPrefix(redisUrl: string, prefix: string): Promise<void> {
  const r = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
  try {
    await r.connect();
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) await r.del(...keys);
    } while (cursor !== '0');
  } finally {
    r.disconnect();
  }
}
