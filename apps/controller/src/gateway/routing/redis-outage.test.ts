import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import type { JobScheduler } from '../../delivery/agent-delivery.port.js';
import { FakeAgent } from '../../testing/fake-agent.js';
import { PrivateRedis } from '../../testing/redis-server.js';
import { SessionRegistry } from '../connect/session-registry.service.js';
import { startTestController, type TestController } from '../../testing/test-controller.js';
import { createJob, enrollDevice } from '../testing/fixtures.js';

/**
 * Redis pub/sub keeps nothing: a kick published while the holder's subscriber is cut off is
 * lost. The controller here uses a private redis-server (the machine's Redis is shared and
 * stays up), killed and started again on the same port. The lost kick is modelled exactly: the
 * job is created with a scheduler that publishes nothing, so only the catch-up pass after the
 * subscriber reconnects can deliver it (the 30 s sweeper never delivers a fresh job).
 */
describe('Redis outage', { skip: !PrivateRedis.available() && 'redis-server is not installed' }, () => {
  let redis: PrivateRedis;
  let c: TestController;
  const agents: FakeAgent[] = [];

  before(async () => {
    redis = await PrivateRedis.start();
    c = await startTestController({ env: { REDIS_URL: redis.url, IBEX_OFFLINE_AFTER_MS: '60000' } });
  });
  after(async () => {
    for (const a of agents) a.close();
    // Redis must be up for the controller to close cleanly (BullMQ, the prefix cleanup).
    await redis?.start().catch(() => {});
    // Bounded: a controller that cannot reach Redis would wait for it forever, and hold the suite.
    await Promise.race([c?.close(), sleep(30_000, undefined, { ref: false }).then(() => Promise.reject(new Error('the controller did not close within 30 s (is Redis back?)')))]).finally(() => redis?.close());
  });

  it('after Redis comes back, a delivery pass runs for the devices connected here: a job whose kick was lost is delivered', { timeout: 60_000 }, async () => {
    const device = await enrollDevice(c, 'through-outage');
    const agent = await FakeAgent.connect(c.grpcAddress, device.credential);
    agents.push(agent);
    // The connect's own delivery pass must be over, or it would find the job created below.
    await c.app.get(SessionRegistry).get(device.deviceId)!.passesDone();

    await redis.stop();
    const noKick: JobScheduler = { jobCreated: async () => {}, cancelRequested: async () => {} };
    const j = await createJob(c, device.deviceId, { type: 'facts.collect' }, noKick);
    await sleep(500);
    assert.equal(agent.all('assign').filter((a) => a.jobId === j.id).length, 0, 'nothing announced the job');
    assert.equal((await c.prisma.job.findUniqueOrThrow({ where: { id: j.id } })).status, 'queued');

    await redis.start();
    const a = await agent.next('assign', (x) => x.jobId === j.id, 20_000);
    assert.equal(a.attempt, 1);
    assert.equal((await c.prisma.job.findUniqueOrThrow({ where: { id: j.id } })).status, 'delivered');
  });
});
