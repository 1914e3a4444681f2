import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { FakeAgent } from '../../testing/fake-agent.js';
import { startTestController, type TestController } from '../../testing/test-controller.js';
import { waitFor } from '../../testing/wait-for.js';
import { JobTimerHandlers } from '../jobs/job-timer.handlers.js';
import { connectedDevice, filesSpec } from '../testing/fixtures.js';
import { DeliveryPass } from './delivery-pass.service.js';
import { SessionRegistry } from './session-registry.service.js';

// Delivery passes requested together run as one batch of queries (a rollout kicks thousands of
// devices at once): each device must still get exactly what a pass of its own would send it.
describe('delivery passes in batches', () => {
  let c: TestController;
  const agents: FakeAgent[] = [];
  before(async () => {
    c = await startTestController();
  });
  after(async () => {
    for (const a of agents) a.close();
    await c?.close();
  });

  async function devices(n: number) {
    const run = randomUUID().slice(0, 8);
    const out = [];
    for (let i = 0; i < n; i++) {
      const { device, agent } = await connectedDevice(c, `batch-${run}-${i}`);
      agents.push(agent);
      out.push({ id: device.deviceId, agent });
    }
    return out;
  }
  const sessionOf = (deviceId: string) => c.app.get(SessionRegistry).get(deviceId)!;
  const queued = (deviceId: string, extra: { expiresAt?: Date } = {}) =>
    c.prisma.job.create({ data: { deviceId, type: 'facts.collect', params: {}, timeoutMs: 60_000, maxAttempts: 3, expiresAt: extra.expiresAt ?? new Date(Date.now() + 3600_000) } });

  it('passes run together: one batch of queries, each device gets its revision and its jobs in order, each once', async () => {
    const ds = await devices(12);
    const jobs = new Map<string, string[]>();
    for (const d of ds) {
      await c.prisma.device.update({ where: { id: d.id }, data: { desiredRevision: 1 } });
      await c.prisma.desiredRevision.create({ data: { deviceId: d.id, revision: 1, spec: filesSpec(`for ${d.id}\n`) } });
      jobs.set(d.id, [(await queued(d.id)).id, (await queued(d.id)).id]);
    }
    const pass = c.app.get(DeliveryPass);
    const findMany = c.prisma.job.findMany.bind(c.prisma.job);
    let reads = 0;
    const ours = new Set(ds.map((d) => d.id));
    c.prisma.job.findMany = ((...a: Parameters<typeof findMany>) => {
      // Only reads of these devices' jobs (the job sweeper reads jobs too).
      const devs = (a[0]?.where?.deviceId as { in?: string[] } | undefined)?.in ?? [];
      if (devs.some((id) => ours.has(id))) reads++;
      return findMany(...a);
    }) as typeof findMany;
    try {
      await Promise.all(ds.map((d) => pass.run(sessionOf(d.id))));
    } finally {
      c.prisma.job.findMany = findMany;
    }
    assert.equal(reads, 1, 'the jobs of all 12 devices were read in one query');
    for (const d of ds) {
      await waitFor('the assignments', () => d.agent.all('assign').length === 2);
      assert.deepEqual(d.agent.all('assign').map((a) => [a.jobId, a.attempt]), jobs.get(d.id)!.map((id) => [id, 1]), 'its own jobs, oldest first, attempt 1');
      const desired = d.agent.all('desired');
      assert.deepEqual(desired.map((x) => x.revision), [1]);
      assert.match(desired[0]!.specJson, new RegExp(`for ${d.id}`));
      const rows = await c.prisma.job.findMany({ where: { id: { in: jobs.get(d.id)! } } });
      assert.deepEqual(new Set(rows.map((r) => `${r.status} ${r.attempt}`)), new Set(['delivered 1']));
    }
    // Another pass sends nothing new on the same streams.
    await Promise.all(ds.map((d) => pass.run(sessionOf(d.id))));
    await new Promise((r) => setTimeout(r, 200));
    for (const d of ds) assert.equal(d.agent.all('assign').length, 2);
  });

  it('a pass that fails for one device does not fail the others of its batch', async () => {
    const [bad, ...good] = await devices(4);
    const expired = await queued(bad!.id, { expiresAt: new Date(Date.now() - 1000) });
    const fine = await Promise.all(good.map((d) => queued(d.id)));
    const handlers = c.app.get(JobTimerHandlers);
    const expire = handlers.expire.bind(handlers);
    handlers.expire = async (jobId: string) => {
      if (jobId === expired.id) throw new Error('this one job cannot be expired (test)');
      return expire(jobId);
    };
    const pass = c.app.get(DeliveryPass);
    try {
      const results = await Promise.allSettled([bad!, ...good].map((d) => pass.run(sessionOf(d.id))));
      assert.equal(results[0]!.status, 'rejected');
      assert.deepEqual(results.slice(1).map((r) => r.status), ['fulfilled', 'fulfilled', 'fulfilled']);
    } finally {
      handlers.expire = expire;
    }
    for (const [i, d] of good.entries()) await waitFor('the good device\u2019s job', () => d.agent.all('assign').some((a) => a.jobId === fine[i]!.id));
  });
});
