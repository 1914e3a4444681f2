import { exec } from './exec.js';

/** Deletes every Redis key under `prefix:` (BullMQ, presence, routing) with redis-cli. */
export async function deleteRedisPrefix(prefix: string): Promise<void> {
  const scan = await exec('redis-cli', ['-h', '127.0.0.1', '--scan', '--pattern', `${prefix}:*`]);
  const keys = scan.stdout.split('\n').filter(Boolean);
  for (let i = 0; i < keys.length; i += 500) {
    await exec('redis-cli', ['-h', '127.0.0.1', 'del', ...keys.slice(i, i + 500)]);
  }
}
