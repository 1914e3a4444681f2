// End to end: the controller as a real process, the built agent binary in its own network
// namespace (veth to the host) acting as a device, real Postgres and Redis. The steps run in
// order and share one device, as an operator would use them.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { credentials, Metadata, status as grpcStatus, type ServiceError } from '@grpc/grpc-js';
import { createTestDatabase, type TestDatabase } from '@ibex/migrate';
import { AgentServiceClient, type EnrollResponse } from '@ibex/proto';
import { deleteRedisPrefix, testRedisUrl } from '@ibex/test-support';
import pg from 'pg';
import { AgentProcess } from './helpers/agent-process.js';
import { ControllerProcess } from './helpers/controller-process.js';
import { waitFor } from './helpers/exec.js';
import { createNetns, type TestNetns } from './helpers/netns.js';

const DEVICE = 'e2e-device';

describe('platform end to end: controller process + agent binary in a network namespace', () => {
  let db: TestDatabase;
  let ns: TestNetns;
  let ctl: ControllerProcess;
  let agent: AgentProcess;
  let root: string;
  let sql: pg.Client;

  before(async () => {
    db = await createTestDatabase();
    sql = new pg.Client({ connectionString: db.url });
    await sql.connect();
    ns = await createNetns();
    root = await mkdtemp(join(tmpdir(), 'ibex-e2e-root-'));
    ctl = new ControllerProcess({
      databaseUrl: db.url,
      env: { IBEX_HEARTBEAT_INTERVAL_MS: '1000', IBEX_PRESENCE_FLUSH_MS: '200', IBEX_JOB_RETRY_BACKOFF_MS: '500', IBEX_LOG_LEVEL: 'warn' },
    });
    await ctl.start();
    agent = new AgentProcess(ns.prefix(), root);
  });

  after(async () => {
    await agent?.stop('SIGKILL').catch(() => {});
    await ctl?.stop('SIGKILL').catch(() => {});
    await sql?.end().catch(() => {});
    await ns?.destroy();
    if (ctl) await deleteRedisPrefix(testRedisUrl, ctl.redisPrefix);
    await db?.drop();
    if (root) await rm(root, { recursive: true, force: true });
  });

  const device = () => ctl.json(`/api/v1/devices/${DEVICE}`);
  const job = (id: string) => ctl.json(`/api/v1/jobs/${id}`);
  const jobEvents = async (id: string, kind: string) =>
    (await sql.query('SELECT "updateId" FROM job_event WHERE "jobId" = $1 AND kind = $2 ORDER BY id', [id, kind])).rows.map((r) => r.updateId as string);
  const createJob = (type: string, params: object = {}) => ctl.json(`/api/v1/devices/${DEVICE}/jobs`, { method: 'POST', json: { type, params } });

  it('enrolls with the CLI from inside its namespace and comes online with its facts', async () => {
    const tok = await ctl.json('/api/v1/enrollment-tokens', { method: 'POST', json: { description: 'e2e', maxUses: 1, labels: { site: 'lab' } } });
    const enroll = await agent.cli(['enroll', '--controller', `grpc://${ns.hostIp}:${ctl.grpcPort}`, '--token', tok.token, '--name', DEVICE]);
    assert.equal(enroll.code, 0, enroll.stderr);
    const cred = await stat(join(root, 'var/lib/ibex-agent/credential.json'));
    assert.equal(cred.mode & 0o777, 0o600);

    agent.start();
    const d = await waitFor('the device online with facts', async () => {
      const d = await device();
      return d.status === 'online' && d.facts ? d : undefined;
    });
    assert.deepEqual(d.labels, { site: 'lab' });
    assert.match(d.agentVersion, /^\d+\.\d+\.\d+/);
    // The facts come from inside the namespace: its veth with its address, nothing of the host's.
    const ifs = d.facts.interfaces as Array<{ name: string; addresses: string[] }>;
    const veth = ifs.find((i) => i.name === ns.nsIf);
    assert.ok(veth, `facts list ${ifs.map((i) => i.name).join(', ')}`);
    assert.ok(veth.addresses.some((a) => a.startsWith(`${ns.nsIp}/`)), JSON.stringify(veth));
    assert.ok(!ifs.some((i) => i.name === ns.hostIf));
    assert.ok(d.facts.kernel && d.facts.arch && d.facts.hostname);
  });

  it('delivers a desired revision, applies it under --root and reports it in sync', async () => {
    const put = await ctl.json(`/api/v1/devices/${DEVICE}/desired-state`, {
      method: 'PUT',
      json: { spec: { files: { entries: [{ path: '/etc/ibex-e2e/motd', content: 'hello from ibex\n', mode: '0640' }] } }, message: 'e2e' },
    });
    assert.equal(put.revision, 1);
    const state = await waitFor('revision 1 in sync', async () => {
      const s = await ctl.json(`/api/v1/devices/${DEVICE}/state`);
      return s.inSync && s.appliedRevision === 1 ? s : undefined;
    });
    assert.deepEqual(
      state.sections.map((s: { section: string; state: string; revision: number }) => [s.section, s.state, s.revision]),
      [['files', 'in_sync', 1]],
    );
    const file = join(root, 'etc/ibex-e2e/motd');
    assert.equal(await readFile(file, 'utf8'), 'hello from ibex\n');
    assert.equal((await stat(file)).mode & 0o777, 0o640);
  });

  it('runs a facts.collect job and records its result', async () => {
    const j = await createJob('facts.collect');
    const done = await waitFor('facts.collect succeeded', async () => {
      const x = await job(j.id);
      return ['succeeded', 'failed', 'rejected', 'timed_out'].includes(x.status) ? x : undefined;
    });
    assert.equal(done.status, 'succeeded', JSON.stringify(done));
    assert.equal(done.attempt, 1);
    assert.ok(done.result.interfaces.some((i: { name: string }) => i.name === ns.nsIf));
  });

  it('refuses bad input with a clear error at REST, gRPC and the CLI, changing nothing', async () => {
    // REST: a bad spec names the field; the revision does not move.
    const bad = await ctl.api(`/api/v1/devices/${DEVICE}/desired-state`, {
      method: 'PUT',
      json: { spec: { files: { entries: [{ path: 'etc/relative', content: 'x' }] } } },
    });
    assert.equal(bad.status, 400);
    const body = (await bad.json()) as { error: { issues: Array<{ path: string }> } };
    assert.ok(body.error.issues.some((i) => i.path === 'spec.files.entries[0].path'), JSON.stringify(body));
    assert.equal((await device()).desiredRevision, 1);
    const badJob = await ctl.api(`/api/v1/devices/${DEVICE}/jobs`, { method: 'POST', json: { type: 'facts.collect', params: { verbose: true } } });
    assert.equal(badJob.status, 400);

    // gRPC: an unknown enrollment token, and a stream that does not start with Hello.
    const client = new AgentServiceClient(`127.0.0.1:${ctl.grpcPort}`, credentials.createInsecure());
    try {
      const enroll = (enrollmentToken: string) =>
        new Promise<ServiceError>((resolve) =>
          client.enroll({ enrollmentToken, name: 'x', agentVersion: '0.0.0', facts: undefined, csrPem: '' }, (e: ServiceError | null, _r?: EnrollResponse) => resolve(e!)),
        );
      const malformed = await enroll('not-a-token');
      assert.equal(malformed.code, grpcStatus.INVALID_ARGUMENT);
      assert.match(malformed.details, /enrollment_token/);
      const unknown = await enroll(`ibxe_${'A'.repeat(40)}`);
      assert.equal(unknown.code, grpcStatus.UNAUTHENTICATED);
      assert.match(unknown.details, /enrollment token/i);

      const credential = JSON.parse(await readFile(join(root, 'var/lib/ibex-agent/credential.json'), 'utf8')).credential as string;
      const md = new Metadata();
      md.set('authorization', `Bearer ${credential}`);
      const call = client.connect(md);
      const ended = new Promise<ServiceError>((resolve) => call.on('error', resolve));
      call.on('data', () => {});
      call.write({ msg: { $case: 'heartbeat', value: { seq: 1, sentAtMs: Date.now() } } });
      const e2 = await ended;
      assert.equal(e2.code, grpcStatus.INVALID_ARGUMENT);
      assert.match(e2.details, /hello/i);
    } finally {
      client.close();
    }

    // CLI: a bad spec file names the file and the field; an unknown flag is named.
    const specFile = join(root, 'bad-spec.json');
    await writeFile(specFile, JSON.stringify({ files: { entries: [{ path: '/etc/x', mode: '9999', content: '' }] } }));
    const plan = await agent.cli(['plan', '--spec', specFile]);
    assert.equal(plan.code, 1, 'plan: 1 is an error (2 means changes)');
    assert.match(plan.stderr, /files\.entries\[0\]\.mode/);
    const flag = await agent.cli(['status', '--colour']);
    assert.equal(flag.code, 2);
    assert.match(flag.stderr, /--colour/);
    // The device was not disturbed: still online and in sync.
    assert.equal((await device()).status, 'online');
  });

  for (const point of ['job-result-before-commit', 'job-result-before-ack'] as const) {
    it(`the controller killed at ${point}: the agent reconnects, re-sends, and the result is recorded once`, async () => {
      await ctl.restart({ IBEX_CONTROLLER_FAILPOINTS: point });
      await waitFor('the agent back on the restarted controller', async () => (await device()).status === 'online', 30_000);
      const j = await createJob('facts.collect');
      const died = await ctl.exited(30_000);
      assert.equal(died.signal, 'SIGKILL', `controller should have died at ${point}; output:\n${ctl.logs.slice(-2000)}`);

      await ctl.start({});
      const done = await waitFor('the job to succeed after the restart', async () => {
        const x = await job(j.id);
        return x.status === 'succeeded' ? x : undefined;
      }, 60_000);
      assert.equal(done.attempt, 1);
      assert.deepEqual(await jobEvents(j.id, 'result'), [`${j.id}:1:result:1`]);
      assert.equal((await jobEvents(j.id, 'started')).length, 1, 'the job ran once');
      // Desired state survived the crashes and still reaches the agent.
      await ctl.json(`/api/v1/devices/${DEVICE}/desired-state`, {
        method: 'PUT',
        json: { spec: { files: { entries: [{ path: '/etc/ibex-e2e/motd', content: `after ${point}\n` }] } } },
      });
      await waitFor('the new revision applied', async () => (await ctl.json(`/api/v1/devices/${DEVICE}/state`)).inSync);
      assert.equal(await readFile(join(root, 'etc/ibex-e2e/motd'), 'utf8'), `after ${point}\n`);
    });
  }

  it('the agent SIGKILLed with a job result unacknowledged: re-sent once after restart, recorded once, not run again', async () => {
    await agent.stop();
    agent.start({ IBEX_AGENT_FAILPOINTS: 'job-result-journaled' });
    await waitFor('the agent online again', async () => (await device()).status === 'online', 30_000);
    const j = await createJob('facts.collect');
    const died = await agent.exited();
    assert.equal(died.signal, 'SIGKILL', agent.logs.slice(-2000));
    assert.notEqual((await job(j.id)).status, 'succeeded', 'the result must not have reached the controller before the crash');

    agent.logs = '';
    agent.start();
    const done = await waitFor('the re-sent result recorded', async () => {
      const x = await job(j.id);
      return x.status === 'succeeded' ? x : undefined;
    }, 30_000);
    assert.equal(done.attempt, 1);
    assert.deepEqual(await jobEvents(j.id, 'result'), [`${j.id}:1:result:1`]);
    assert.equal((await jobEvents(j.id, 'started')).length, 1, 'the job ran once');
    assert.equal(agent.events(/^job running$/).length, 0, 'the restarted agent must not run the job again');
  });

  it('a revoked device is cut off at once and refused when it comes back', async () => {
    await ctl.json(`/api/v1/devices/${DEVICE}/revoke`, { method: 'POST' });
    const status = await waitFor('the agent to see it was refused', async () => {
      const r = await agent.cli(['status', '--json']);
      const s = JSON.parse(r.stdout);
      return s.credentialRefused ? s : undefined;
    }, 30_000);
    assert.match(JSON.stringify(status), /re-enroll|revoked/i);
    const d = await device();
    assert.equal(d.status, 'revoked');
    assert.equal(d.connectedAt ?? null, null);

    // The credential no longer opens a stream.
    const credential = JSON.parse(await readFile(join(root, 'var/lib/ibex-agent/credential.json'), 'utf8')).credential as string;
    const client = new AgentServiceClient(`127.0.0.1:${ctl.grpcPort}`, credentials.createInsecure());
    try {
      const md = new Metadata();
      md.set('authorization', `Bearer ${credential}`);
      const call = client.connect(md);
      const err = await new Promise<ServiceError>((resolve) => call.on('error', resolve));
      call.on('data', () => {});
      assert.equal(err.code, grpcStatus.UNAUTHENTICATED);
    } finally {
      client.close();
    }
  });
});
