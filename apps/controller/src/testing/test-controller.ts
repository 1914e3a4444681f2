import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { INestApplication } from '@nestjs/common';
import { createTestDatabase, freePort, type TestDatabase } from '@ibex/migrate';
import { deleteRedisPrefix } from '@ibex/test-support';
import { createApp } from '../app.js';
import { loadConfig, type Config } from '../config/config.js';
import { randomBase62 } from '../common/secrets.js';
import { GrpcServer } from '../gateway/grpc-server.service.js';
import { PrismaService } from '../prisma/prisma.service.js';

export interface TestController {
  app: INestApplication;
  config: Config;
  /** http://127.0.0.1:PORT */
  baseUrl: string;
  /** 127.0.0.1:PORT of the gRPC gateway */
  grpcAddress: string;
  adminToken: string;
  prisma: PrismaService;
  db: TestDatabase;
  /** fetch against the REST API with the admin token (path relative to baseUrl). */
  api(path: string, init?: RequestInit & { json?: unknown; token?: string | null }): Promise<Response>;
  close(): Promise<void>;
}

export interface TestControllerOptions {
  /** Share a database (two replicas); by default each controller gets a fresh one. */
  db?: TestDatabase;
  /** Share a Redis prefix (two replicas); by default unique per controller. */
  redisPrefix?: string;
  adminToken?: string;
  env?: Record<string, string>;
}

/**
 * A real controller in this process: fresh migrated database, its own Redis prefix, REST and
 * gRPC on free loopback ports. `close()` removes everything it created.
 */
export async function startTestController(opts: TestControllerOptions = {}): Promise<TestController> {
  const ownDb = !opts.db;
  const db = opts.db ?? (await createTestDatabase());
  const redisPrefix = opts.redisPrefix ?? `ibex-test-${randomBase62(10)}`;
  const adminToken = opts.adminToken ?? `ibx_${randomBase62(40)}`;
  const artifactsDir = await mkdtemp(join(tmpdir(), 'ibex-artifacts-'));
  const config = loadConfig({
    DATABASE_URL: db.url,
    REDIS_URL: process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379',
    IBEX_REDIS_PREFIX: redisPrefix,
    IBEX_HTTP_HOST: '127.0.0.1',
    IBEX_HTTP_PORT: '0',
    IBEX_GRPC_HOST: '127.0.0.1',
    // A fixed port rather than 0: the enrollment command shows the configured one.
    IBEX_GRPC_PORT: String(await freePort()),
    IBEX_ADMIN_TOKEN: adminToken,
    IBEX_MIGRATE_ON_START: 'false',
    IBEX_LOG_LEVEL: process.env['IBEX_TEST_LOG_LEVEL'] ?? 'error',
    IBEX_ARTIFACTS_DIR: artifactsDir,
    // Never the host's /var/lib: removed with the artifacts at close().
    IBEX_IMAGE_DIR: join(artifactsDir, 'images'),
    ...opts.env,
  });
  let app: INestApplication | undefined;
  try {
    app = await createApp(config);
    await app.listen(0, '127.0.0.1');
  } catch (err) {
    await app?.close().catch(() => {});
    if (ownDb) await db.drop();
    await rm(artifactsDir, { recursive: true, force: true });
    throw err;
  }
  const port = (app.getHttpServer().address() as AddressInfo).port;
  const baseUrl = `http://127.0.0.1:${port}`;
  const grpcAddress = `127.0.0.1:${app.get(GrpcServer).port}`;
  const started = app;
  return {
    app,
    config,
    baseUrl,
    grpcAddress,
    adminToken,
    prisma: app.get(PrismaService),
    db,
    api(path, init = {}) {
      const { json, token, ...rest } = init;
      const headers = new Headers(rest.headers);
      if (token !== null) headers.set('authorization', `Bearer ${token ?? adminToken}`);
      if (json !== undefined) headers.set('content-type', 'application/json');
      return fetch(`${baseUrl}${path}`, { ...rest, headers, ...(json !== undefined ? { body: JSON.stringify(json) } : {}) });
    },
    async close() {
      await started.close();
      if (ownDb) await db.drop();
      if (!opts.redisPrefix) await deleteRedisPrefix(config.redisUrl, redisPrefix);
      await rm(artifactsDir, { recursive: true, force: true });
    },
  };
}
