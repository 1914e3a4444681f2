import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { freePort } from '@ibex/migrate';
import { expectStatus } from '../../testing/api-fixtures.js';
import { startTestController, type TestController } from '../../testing/test-controller.js';

describe('health checks', () => {
  let c: TestController;
  before(async () => (c = await startTestController()));
  after(() => c?.close());

  it('/healthz says the process is alive, without a token', async () => {
    const body = await expectStatus(await c.api('/healthz', { token: null }), 200);
    assert.equal(body.status, 'ok');
    assert.equal(body.replicaId, c.config.replicaId);
  });

  it('/readyz is 200 when Postgres and Redis answer', async () => {
    const body = await expectStatus(await c.api('/readyz', { token: null }), 200);
    assert.equal(body.ready, true);
    assert.equal(body.checks.postgres.ok, true);
    assert.equal(body.checks.redis.ok, true);
  });
});

describe('health checks without Redis', () => {
  let c: TestController;
  let redisUrl: string;
  before(async () => {
    // A loopback port nothing listens on (bound, then released).
    redisUrl = `redis://127.0.0.1:${await freePort()}`;
    // A fixed prefix: nothing is written to this Redis, so there is nothing to clean up.
    c = await startTestController({ env: { REDIS_URL: redisUrl }, redisPrefix: 'ibex-test-no-redis' });
  });
  after(async () => {
    await c?.close();
  });

  it('/readyz is 503 naming Redis, and the process is still alive', async () => {
    const res = await c.api('/readyz', { token: null });
    const body = await expectStatus(res, 503);
    assert.equal(body.ready, false);
    assert.equal(body.checks.postgres.ok, true);
    assert.equal(body.checks.redis.ok, false);
    assert.match(body.message, /Redis is unavailable/);
    assert.ok(body.checks.redis.error.includes(redisUrl), body.checks.redis.error);
    await expectStatus(await c.api('/healthz', { token: null }), 200);
  });
});
