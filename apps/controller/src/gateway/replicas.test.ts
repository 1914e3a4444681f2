import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import { deleteRedisPrefix } from '@ibex/test-support';
import { AGENT_DELIVERY, type AgentDelivery } from '../delivery/agent-delivery.port.js';
import { FakeAgent } from '../testing/fake-agent.js';
import { startTestController, type TestController } from '../testing/test-controller.js';
import { PrismaService } from '../prisma/prisma.service.js';
import { waitFor } from '../testing/wait-for.js';
import { SessionRegistry } from './connect/session-registry.service.js';
import { createJob, enrollDevice } from './testing/fixtures.js';

const env = { IBEX_OFFLINE_AFTER_MS: '60000', IBEX_PRESENCE_FLUSH_MS: '100' };

describe('two controller replicas sharing Postgres and Redis', () => {
  let a: TestController;
  let b: TestController;
  const agents: FakeAgent[] = [];
  const connect = async (c: TestController, credential: string) => {
    const agent = await FakeAgent.connect(c.grpcAddress, credential);
    agents.push(agent);
    return agent;
  };

  before(async () => {
    a = await startTestController({ env: { ...env, IBEX_REPLICA_ID: 'replica-a' } });
    b = await startTestController({ db: a.db, redisPrefix: a.config.redisPrefix, env: { ...env, IBEX_REPLICA_ID: 'replica-b' } });
  });
  after(async () => {
    for (const agent of agents) agent.close();
    await b?.close();
    await a?.close();
  });

  it('delivers a job created through replica B to the device connected to replica A', async () => {
    const device = await enrollDevice(a, 'on-a');
    const agent = await connect(a, device.deviceId && device.credential);
    const j = await createJob(b, device.deviceId);
    assert.equal((await agent.next('assign', (x) => x.jobId === j.id)).attempt, 1);
  });

  it('ends the stream on replica A with UNAUTHENTICATED when replica B disconnects the device', async () => {
    const device = await enrollDevice(a, 'revoked-on-b');
    const agent = await connect(a, device.credential);
    await b.app.get<AgentDelivery>(AGENT_DELIVERY).disconnect(device.deviceId, 'device revoked by an operator');
    const end = await agent.ended;
    assert.equal(end.code, status.UNAUTHENTICATED);
    assert.equal(end.details, 'device revoked by an operator');
  });

  it('closes the older stream on replica A when the device connects to replica B, keeping B as its holder', async () => {
    const device = await enrollDevice(a, 'moving');
    const old = await connect(a, device.credential);
    const fresh = await connect(b, device.credential);
    const end = await old.ended;
    assert.equal(end.code, status.ABORTED);
    assert.equal(end.details, 'replaced by a newer connection');
    await waitFor('replica A to drop its session', () => a.app.get(SessionRegistry).get(device.deviceId) === undefined);
    const row = await a.prisma.device.findUniqueOrThrow({ where: { id: device.deviceId } });
    assert.equal(row.connectedTo, 'replica-b');
    assert.ok(row.connectedAt, "A's stream end did not clear B's connection");
    assert.equal(fresh.endStatus, undefined, 'the new stream is open');
    // And B now routes: a job reaches the new stream.
    const j = await createJob(a, device.deviceId);
    await fresh.next('assign', (x) => x.jobId === j.id);
  });

  it('closes the older stream when the device connects twice to the same replica', async () => {
    const device = await enrollDevice(a, 'twice');
    const old = await connect(a, device.credential);
    const fresh = await connect(a, device.credential);
    assert.equal((await old.ended).code, status.ABORTED);
    const j = await createJob(b, device.deviceId);
    await fresh.next('assign', (x) => x.jobId === j.id);
  });
});

describe('controller shutdown', () => {
  it('ends streams with UNAVAILABLE so agents reconnect, flushes presence and clears connectedAt', async () => {
    // Flushes are a minute apart here: only the shutdown flush can write the heartbeat below.
    const c = await startTestController({ env: { ...env, IBEX_PRESENCE_FLUSH_MS: '60000' } });
    let agent: FakeAgent | undefined;
    let closed = false;
    try {
      const device = await enrollDevice(c, 'shut-down');
      agent = await FakeAgent.connect(c.grpcAddress, device.credential);
      const connectedAt = (await c.prisma.device.findUniqueOrThrow({ where: { id: device.deviceId } })).lastSeenAt!;
      await sleep(5);
      agent.heartbeat(1);
      // Messages are handled in order: once this update (for a job it does not have) is
      // acked, the heartbeat was handled.
      const probe = `${randomUUID()}:1:log:0`;
      agent.send({ $case: 'jobUpdate', value: { updateId: probe, jobId: probe.slice(0, 36), attempt: 1, update: { $case: 'log', value: { lines: [] } } } });
      await agent.acked(probe);

      const closing = c.app.close();
      const end = await agent.ended;
      assert.equal(end.code, status.UNAVAILABLE);
      assert.equal(end.details, 'controller shutting down');
      await closing;
      closed = true;
      const prisma = new PrismaService(c.config);
      try {
        const row = await prisma.device.findUniqueOrThrow({ where: { id: device.deviceId } });
        assert.equal(row.connectedAt, null);
        assert.ok(row.lastSeenAt! > connectedAt, 'the last heartbeat was flushed on shutdown');
      } finally {
        await prisma.$disconnect();
      }
    } finally {
      agent?.close();
      if (!closed) await c.app.close();
      await c.db.drop();
      await deleteRedisPrefix(c.config.redisUrl, c.config.redisPrefix);
    }
  });
});
