import { createServer } from 'node:net';

/**
 * A TCP port free right now on `host` (bound to port 0, then released), for tests and
 * benchmarks that start servers (controller, redis-server). Here because every package that
 * starts one already depends on @ibex/migrate for its test database.
 */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}
