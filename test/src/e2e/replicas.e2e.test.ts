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

  it('revoking through B closes the stream held by A at once', async () => {
    await b.json(`/api/v1/devices/${DEVICE}/revoke`, { method: 'POST' });
    await waitFor('the agent refused', async () => JSON.parse((await agent.cli(['status', '--json'])).stdout).credentialRefused === true, 5000);
    const d = await a.json(`/api/v1/devices/${DEVICE}`);
    assert.equal(d.status, 'revoked');
  });
});
