// Two controller processes against the same Postgres and Redis: the agent's stream is held by
// replica A, the operator talks to replica B. Work created through B reaches the device through
// Redis pub/sub routing; nothing is kept in one process's memory.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createTestDatabase, type TestDatabase } from '@ibex/migrate';
import { deleteRedisPrefix, testRedisUrl } from '@ibex/test-support';
import { AgentProcess } from './helpers/agent-process.js';
import { ControllerProcess } from './helpers/controller-process.js';
import { waitFor } from './helpers/exec.js';
import { createNetns, type TestNetns } from './helpers/netns.js';

const DEVICE = 'replica-device';

describe('two controller processes sharing Postgres and Redis', () => {
  let db: TestDatabase;
  let ns: TestNetns;
  let a: ControllerProcess;
  let b: ControllerProcess;
  let agent: AgentProcess;
  let root: string;

  before(async () => {
    db = await createTestDatabase();
    ns = await createNetns();
    root = await mkdtemp(join(tmpdir(), 'ibex-e2e-replicas-'));
    const env = { IBEX_HEARTBEAT_INTERVAL_MS: '1000', IBEX_PRESENCE_FLUSH_MS: '200', IBEX_LOG_LEVEL: 'warn' };
    a = new ControllerProcess({ databaseUrl: db.url, env: { ...env, IBEX_REPLICA_ID: 'replica-a' } });
    await a.start();
    b = new ControllerProcess({ databaseUrl: db.url, redisPrefix: a.redisPrefix, env: { ...env, IBEX_REPLICA_ID: 'replica-b' } });
    await b.start();
    agent = new AgentProcess(ns.prefix(), root);
  });

  after(async () => {
    await agent?.stop('SIGKILL').catch(() => {});
    await a?.stop('SIGKILL').catch(() => {});
    await b?.stop('SIGKILL').catch(() => {});
    await ns?.destroy();
    if (a) await deleteRedisPrefix(testRedisUrl, a.redisPrefix);
    await db?.drop();
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('the device connects to replica A and B sees it online', async () => {
    const tok = await b.json('/api/v1/enrollment-tokens', { method: 'POST', json: { maxUses: 1 } });
    const enroll = await agent.cli(['enroll', '--controller', `grpc://${ns.hostIp}:${a.grpcPort}`, '--token', tok.token, '--name', DEVICE]);
    assert.equal(enroll.code, 0, enroll.stderr);
    agent.start();
    await waitFor('online as seen through B', async () => (await b.json(`/api/v1/devices/${DEVICE}`)).status === 'online');
  });

  it('a job created through B is delivered by A and its result is visible on both', async () => {
    const job = await b.json(`/api/v1/devices/${DEVICE}/jobs`, { method: 'POST', json: { type: 'facts.collect' } });
    const done = await waitFor('the job done', async () => {
      const j = await b.json(`/api/v1/jobs/${job.id}`);
      return j.status === 'succeeded' ? j : undefined;
    });
    assert.equal(done.attempt, 1);
    assert.equal((await a.json(`/api/v1/jobs/${job.id}`)).status, 'succeeded');
  });

  it('a desired revision set through B is applied by the device on A', async () => {
    await b.json(`/api/v1/devices/${DEVICE}/desired-state`, {
      method: 'PUT',
      json: { spec: { files: { entries: [{ path: '/etc/replicas', content: 'set through B\n' }] } } },
    });
    await waitFor('in sync', async () => (await a.json(`/api/v1/devices/${DEVICE}/state`)).inSync);
    assert.equal(await readFile(join(root, 'etc/replicas'), 'utf8'), 'set through B\n');
  });

  /** From the REST answer to the stream end as A records it (connectedAt cleared), polled through B. */
  async function streamEndMs(device: string, revoke: () => Promise<unknown>): Promise<number> {
    const t0 = Date.now();
    await revoke();
    await waitFor('the stream ended', async () => (await b.json(`/api/v1/devices/${device}`)).connectedAt === null, 5000, 20);
    return Date.now() - t0;
  }

  /** Stops the agent, enrolls it again as `name` through A, starts it, waits until B sees it online. */
  async function reenroll(name: string): Promise<void> {
    await agent.stop();
    const tok = await b.json('/api/v1/enrollment-tokens', { method: 'POST', json: { maxUses: 1 } });
    const enroll = await agent.cli(['enroll', '--force', '--controller', `grpc://${ns.hostIp}:${a.grpcPort}`, '--token', tok.token, '--name', name]);
    assert.equal(enroll.code, 0, enroll.stderr);
    agent.start();
    await waitFor(`${name} online`, async () => (await b.json(`/api/v1/devices/${name}`)).status === 'online');
  }

  it('revoking through B closes the stream held by A at once', async () => {
    const ms = await streamEndMs(DEVICE, () => b.json(`/api/v1/devices/${DEVICE}/revoke`, { method: 'POST' }));
    console.log(`device revocation through replica B ended the stream on replica A after ${ms} ms`);
    assert.ok(ms < 1000, `took ${ms} ms`);
    await waitFor('the agent refused', async () => JSON.parse((await agent.cli(['status', '--json'])).stdout).credentialRefused === true, 5000);
    const d = await a.json(`/api/v1/devices/${DEVICE}`);
    assert.equal(d.status, 'revoked');
  });

  it('revoking a device credential through B ends the stream A holds within 1 s', async () => {
    await reenroll('replica-device-2');
    const identity = await b.json('/api/v1/devices/replica-device-2/identity');
    assert.equal(identity.credentials.length, 1);
    const ms = await streamEndMs('replica-device-2', () => b.json(`/api/v1/devices/replica-device-2/credentials/${identity.credentials[0].id}/revoke`, { method: 'POST' }));
    console.log(`credential revocation through replica B ended the stream on replica A after ${ms} ms`);
    assert.ok(ms < 1000, `took ${ms} ms`);
    await waitFor('the agent refused', async () => JSON.parse((await agent.cli(['status', '--json'])).stdout).credentialRefused === true, 5000);
    assert.equal((await b.json('/api/v1/devices/replica-device-2')).status, 'offline', 'the device itself is not revoked');
  });

  it('a revocation whose pub/sub message is lost (written straight to Postgres) still ends the stream within 1 s', async () => {
    await reenroll('replica-device-3');
    const pg = await import('pg');
    const sql = new pg.default.Client({ connectionString: db.url });
    await sql.connect();
    try {
      const ms = await streamEndMs('replica-device-3', () =>
        sql.query(`UPDATE device_credential SET "revokedAt" = now() AT TIME ZONE 'UTC' WHERE "deviceId" = (SELECT id FROM device WHERE name = 'replica-device-3')`),
      );
      console.log(`a credential revoked in Postgres only was noticed by replica A's sweep after ${ms} ms`);
      assert.ok(ms < 1000, `took ${ms} ms`);
    } finally {
      await sql.end();
    }
  });
});
