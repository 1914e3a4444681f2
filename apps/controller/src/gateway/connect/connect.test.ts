import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import pg from 'pg';
import { FakeAgent, sampleFacts } from '../../testing/fake-agent.js';
import { createTestDatabase } from '@ibex/migrate';
import { startTestController, type TestController } from '../../testing/test-controller.js';
import { waitFor } from '../../testing/wait-for.js';
import { connectedDevice, enrollDevice } from '../testing/fixtures.js';

const REENROLL = /re-enroll with `ibex-agent enroll`/;

describe('Connect', () => {
  let c: TestController;
  const agents: FakeAgent[] = [];
  const track = (a: FakeAgent): FakeAgent => (agents.push(a), a);

  before(async () => {
    c = await startTestController({ env: { IBEX_HELLO_TIMEOUT_MS: '300', IBEX_HEARTBEAT_INTERVAL_MS: '200', IBEX_PRESENCE_FLUSH_MS: '100', IBEX_OFFLINE_AFTER_MS: '60000' } });
  });
  after(async () => {
    for (const a of agents) a.close();
    await c?.close();
  });

  it('refuses a missing, unknown or revoked credential and a revoked device with UNAUTHENTICATED', async () => {
    const missing = await track(new FakeAgent(c.grpcAddress, null)).ended;
    assert.equal(missing.code, status.UNAUTHENTICATED);
    assert.match(missing.details, /authorization metadata is missing/);
    assert.match(missing.details, REENROLL);

    const unknown = await track(new FakeAgent(c.grpcAddress, `ibxd_${'A'.repeat(40)}`)).ended;
    assert.equal(unknown.code, status.UNAUTHENTICATED);
    assert.equal(unknown.details, 'device credential is not recognised or was revoked; re-enroll with `ibex-agent enroll`');

    const a = await enrollDevice(c, 'revoked-credential');
    await c.prisma.deviceCredential.updateMany({ where: { deviceId: a.deviceId }, data: { revokedAt: new Date() } });
    assert.equal((await track(new FakeAgent(c.grpcAddress, a.credential)).ended).code, status.UNAUTHENTICATED);

    const b = await enrollDevice(c, 'revoked-device');
    await c.prisma.device.update({ where: { id: b.deviceId }, data: { revokedAt: new Date() } });
    const refused = await track(new FakeAgent(c.grpcAddress, b.credential)).ended;
    assert.equal(refused.code, status.UNAUTHENTICATED);
    assert.match(refused.details, REENROLL);
    assert.equal((await c.prisma.device.findUniqueOrThrow({ where: { id: b.deviceId } })).connectedAt, null);
  });

  it('ends a stream that sends no Hello in time, or something else first, with INVALID_ARGUMENT', async () => {
    const d = await enrollDevice(c, 'silent');
    const silent = await track(new FakeAgent(c.grpcAddress, d.credential)).ended;
    assert.equal(silent.code, status.INVALID_ARGUMENT);
    assert.match(silent.details, /no Hello within 300 ms/);

    const rude = track(new FakeAgent(c.grpcAddress, d.credential));
    rude.heartbeat(1);
    const end = await rude.ended;
    assert.equal(end.code, status.INVALID_ARGUMENT);
    assert.match(end.details, /first message on a stream must be a Hello, got heartbeat/);
    assert.equal((await c.prisma.device.findUniqueOrThrow({ where: { id: d.deviceId } })).connectedAt, null, 'nothing recorded');
  });

  it('welcomes the agent, records the connection and its facts, and shows it online', async () => {
    const d = await enrollDevice(c, 'welcomed');
    const agent = track(new FakeAgent(c.grpcAddress, d.credential));
    const facts = { ...sampleFacts('welcomed-host'), kernel: '6.12.1' };
    const before = Date.now();
    agent.hello({ agentVersion: '0.2.0', bootId: 'boot-42', facts, lastReceivedRevision: 0, lastAppliedRevision: 0 });
    const welcome = await agent.next('welcome');
    assert.deepEqual(
      { ...welcome, serverTimeMs: 0, reconnectWindowMs: 0 },
      { deviceId: d.deviceId, deviceName: 'welcomed', heartbeatIntervalMs: 200, serverTimeMs: 0, controllerVersion: c.config.version, artifactsUrl: c.config.artifacts.url, reconnectWindowMs: 0 },
    );
    assert.ok(welcome.reconnectWindowMs >= 4, 'at least this device at 250 a second');
    assert.ok(Math.abs(welcome.serverTimeMs - before) < 5000);

    const row = await c.prisma.device.findUniqueOrThrow({ where: { id: d.deviceId } });
    assert.ok(row.connectedAt && row.lastSeenAt);
    assert.equal(row.connectedTo, c.config.replicaId);
    assert.equal(row.bootId, 'boot-42');
    assert.equal(row.agentVersion, '0.2.0');
    assert.equal((row.facts as { kernel: string }).kernel, '6.12.1');
    assert.ok(Date.now() - row.lastSeenAt.getTime() < c.config.offlineAfterMs, 'online: connected and seen recently');

    agent.send({ $case: 'facts', value: { facts: { ...facts, kernel: '6.12.2' } } });
    agent.heartbeat(1); // processed after the facts report: once it is seen, the facts are stored
    await waitFor('the new facts', async () => ((await c.prisma.device.findUniqueOrThrow({ where: { id: d.deviceId } })).facts as { kernel: string }).kernel === '6.12.2');
  });

  it('clears connectedAt when the agent goes away', async () => {
    const { device, agent } = await connectedDevice(c, 'leaving');
    agent.close();
    await waitFor('connectedAt cleared', async () => (await c.prisma.device.findUniqueOrThrow({ where: { id: device.deviceId } })).connectedAt === null);
  });

  it('ends the stream with INVALID_ARGUMENT naming the field on a message it cannot use, changing nothing', async () => {
    const { device, agent } = await connectedDevice(c, 'sloppy');
    track(agent);
    agent.send({ $case: 'stateReport', value: { reportId: 'r1', revision: 1, sections: [{ section: 'files', state: 0, error: '', detailJson: '', observedAtMs: 0 }] } });
    const end = await agent.ended;
    assert.equal(end.code, status.INVALID_ARGUMENT);
    assert.match(end.details, /^invalid StateReport: sections\[0\]\.state: must be a SectionState/);
    assert.equal(await c.prisma.deviceSectionState.count({ where: { deviceId: device.deviceId } }), 0);

    const again = track(await FakeAgent.connect(c.grpcAddress, device.credential));
    again.hello();
    const second = await again.ended;
    assert.equal(second.code, status.INVALID_ARGUMENT);
    assert.match(second.details, /a second Hello/);

    const empty = track(await FakeAgent.connect(c.grpcAddress, device.credential));
    empty.send({ $case: 'jobUpdate', value: { updateId: 'u1', jobId: 'not-a-uuid', attempt: 1, update: undefined } });
    const third = await empty.ended;
    assert.equal(third.code, status.INVALID_ARGUMENT);
    assert.match(third.details, /job_id: must be a job id/);
    assert.match(third.details, /update: is required/);
  });

  it('does not take an agent whose messages wait behind a slow one for a quiet agent', async () => {
    const busy = await startTestController({ env: { IBEX_HEARTBEAT_INTERVAL_MS: '100', IBEX_OFFLINE_AFTER_MS: '600', IBEX_PRESENCE_FLUSH_MS: '100' } });
    const locker = new pg.Client({ connectionString: busy.db.url });
    let agent: FakeAgent | undefined;
    let beating: NodeJS.Timeout | undefined;
    try {
      ({ agent } = await connectedDevice(busy, 'busy'));
      const id = (await busy.prisma.device.findUniqueOrThrow({ where: { name: 'busy' } })).id;
      // The device row locked elsewhere: the report's writes wait for it, and the heartbeats
      // sent meanwhile wait behind the report on the stream.
      await locker.connect();
      await locker.query('BEGIN');
      await locker.query('SELECT id FROM device WHERE id = $1 FOR UPDATE', [id]);
      agent.send({ $case: 'stateReport', value: { reportId: 'r-slow', revision: 1, sections: [] } });
      let seq = 0;
      beating = setInterval(() => agent!.heartbeat(++seq), 100);
      const ended = await Promise.race([agent.ended, new Promise((r) => setTimeout(r, 1800, undefined))]);
      assert.equal(ended, undefined, `the stream ended while its messages waited: ${JSON.stringify(ended)}`);
      await locker.query('COMMIT');
      await agent.acked('r-slow');
      assert.equal(agent.endStatus, undefined);
    } finally {
      clearInterval(beating);
      await locker.query('ROLLBACK').catch(() => {});
      await locker.end().catch(() => {});
      agent?.close();
      await busy.close();
    }
  });

  it('asks agents in the Welcome to spread their reconnects over the fleet size / IBEX_RECONNECT_RATE', async () => {
    const db = await createTestDatabase();
    let ctl: TestController | undefined;
    const opened: FakeAgent[] = [];
    try {
      ctl = await startTestController({ db });
      const devices: Awaited<ReturnType<typeof enrollDevice>>[] = [];
      for (const name of ['w1', 'w2', 'w3', 'w4', 'w5']) devices.push(await enrollDevice(ctl, name));
      await ctl.prisma.device.update({ where: { id: devices[4]!.deviceId }, data: { revokedAt: new Date() } });
      await ctl.close();
      // Restarted on the same database: it counts 4 devices not revoked at start.
      ctl = await startTestController({ db, env: { IBEX_RECONNECT_RATE: '2' } });
      const c2 = ctl;
      const windowOf = async (credential: string) => {
        const a = new FakeAgent(c2.grpcAddress, credential);
        opened.push(a);
        a.hello();
        return (await a.next('welcome')).reconnectWindowMs;
      };
      // 4 devices at 2 a second: a 2 s window (the count is read off the Hello's path, so the
      // first Welcome may still carry the streams-open figure).
      await waitFor('a Welcome with the fleet-wide window', async () => ((await windowOf(devices[0]!.credential)) === 2000 ? true : undefined), { timeoutMs: 5000 });
      assert.equal(await windowOf(devices[1]!.credential), 2000);
    } finally {
      for (const a of opened) a.close();
      await ctl?.close();
      await db.drop();
    }
  });

  it('ends a stream that has gone quiet, so a vanished agent does not hold a session', async () => {
    const quiet = await startTestController({ env: { IBEX_HEARTBEAT_INTERVAL_MS: '100', IBEX_OFFLINE_AFTER_MS: '400' } });
    let agent: FakeAgent | undefined;
    try {
      ({ agent } = await connectedDevice(quiet, 'quiet'));
      const end = await agent.ended; // it sends nothing after Hello
      assert.equal(end.code, status.UNAVAILABLE);
      assert.match(end.details, /no message from the agent for 400 ms/);
    } finally {
      agent?.close();
      await quiet.close();
    }
  });
});
