// End to end, generations: the controller as a process, the built agent binary in its own
// network namespace, a real btrfs volume on a loop device under the agent's --root. An
// operator initialises the layout, upgrades by commands, sees the inventory through REST
// (the new generation current and on trial; the device killed before its health check
// passed; good once the agent is back and reconnected), and rolls back through REST. The steps run
// in order and share one device.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createTestDatabase, type TestDatabase } from '@ibex/migrate';
import { deleteRedisPrefix, testRedisUrl } from '@ibex/test-support';
import { AgentProcess } from './helpers/agent-process.js';
import { createBtrfs, rootfsTarball, type TestBtrfs } from './helpers/btrfs.js';
import { ControllerProcess } from './helpers/controller-process.js';
import { exec, waitFor } from './helpers/exec.js';
import { createNetns, type TestNetns } from './helpers/netns.js';

const DEVICE = 'e2e-generations';
const FINISHED = ['succeeded', 'failed', 'rejected', 'timed_out', 'cancelled', 'expired'];

interface Generation {
  id: string;
  status: string;
  current: boolean;
  booted: boolean;
  slot: number | null;
  complete: boolean;
}
interface Generations {
  supported: boolean;
  current: string | null;
  lastGood: string | null;
  trial: { id: string } | null;
  generations: Generation[];
  collectedAt: string | null;
}

describe('generations end to end: REST inventory and rollback of a real btrfs volume', () => {
  let db: TestDatabase;
  let ns: TestNetns;
  let ctl: ControllerProcess;
  let agent: AgentProcess;
  let vol: TestBtrfs;
  /** Job types this controller offers. */
  let jobTypes: string[] = [];
  let first = '';
  let second = '';

  before(async () => {
    db = await createTestDatabase();
    ns = await createNetns();
    vol = await createBtrfs();
    ctl = new ControllerProcess({ databaseUrl: db.url, env: { IBEX_HEARTBEAT_INTERVAL_MS: '1000', IBEX_PRESENCE_FLUSH_MS: '200', IBEX_LOG_LEVEL: 'warn' } });
    await ctl.start();
    agent = new AgentProcess(ns.prefix(), vol.root);
    jobTypes = ((await ctl.json('/api/v1/job-types')) as { items: Array<{ type: string }> }).items.map((t) => t.type);
  });

  after(async () => {
    await openGate();
    await agent?.stop('SIGKILL').catch(() => {});
    await ctl?.stop('SIGKILL').catch(() => {});
    await ns?.destroy();
    if (ctl) await deleteRedisPrefix(testRedisUrl, ctl.redisPrefix);
    await db?.drop();
    await vol?.destroy();
  });

  const generations = () => ctl.json<Generations>(`/api/v1/devices/${DEVICE}/generations`);
  const finished = (id: string, timeoutMs = 120_000) =>
    waitFor(`job ${id} to finish`, async () => {
      const j = await ctl.json(`/api/v1/jobs/${id}`);
      return FINISHED.includes(j.status) ? j : undefined;
    }, timeoutMs, 250);
  const runJob = async (type: string, params: object) => {
    const j = await ctl.json(`/api/v1/devices/${DEVICE}/jobs`, { method: 'POST', json: { type, params } });
    const done = await finished(j.id);
    assert.equal(done.status, 'succeeded', `${type}: ${JSON.stringify({ status: done.status, error: done.error, logs: done.logs })}\nagent log:\n${agent.logs.slice(-3000)}`);
    return done;
  };
  /** The health-check gate: while the test holds this lock exclusively, the check waits. */
  const gatePath = () => join(vol.scratch, 'health.lock');
  let gate: ChildProcess | undefined;
  const closeGate = async () => {
    await writeFile(gatePath(), '');
    // flock holds the lock while cat runs; cat ends at EOF on its stdin, so closing it releases
    // the lock and ends both (also if this test process dies).
    gate = spawn('/usr/bin/flock', ['--exclusive', gatePath(), '/bin/cat'], { stdio: ['pipe', 'ignore', 'ignore'] });
    await waitFor('the gate closed', async () => (await exec('/usr/bin/flock', ['--nonblock', '--shared', gatePath(), '/bin/true'])).code !== 0);
  };
  const openGate = async () => {
    const g = gate;
    gate = undefined;
    if (!g || g.exitCode !== null) return;
    const gone = new Promise((r) => g.once('exit', r));
    g.stdin?.end();
    await gone;
  };
  const marker = (id: string) => readFile(join(vol.host, 'snapshots', id, '@/etc/marker'), 'utf8');

  it('enrolls, comes online, and reports no generations before the layout exists', async () => {
    const tok = await ctl.json('/api/v1/enrollment-tokens', { method: 'POST', json: { description: 'e2e generations', maxUses: 1 } });
    const enroll = await agent.cli(['enroll', '--controller', `grpc://${ns.hostIp}:${ctl.grpcPort}`, '--token', tok.token, '--name', DEVICE]);
    assert.equal(enroll.code, 0, enroll.stderr);
    agent.start();
    await waitFor('the device online', async () => (await ctl.json(`/api/v1/devices/${DEVICE}`)).status === 'online', 30_000);
    const g = await generations();
    assert.equal(g.supported, false);
    assert.deepEqual(g.generations, []);
    const refused = await ctl.api(`/api/v1/devices/${DEVICE}/generations/rollback`, { method: 'POST', json: {} });
    assert.equal(refused.status, 409);
  });

  it('initialises the layout from a tarball: one good generation, current, visible through REST', async () => {
    for (const t of ['generations.init', 'generations.upgrade', 'generations.rollback']) assert.ok(jobTypes.includes(t), `job type ${t} (GET /api/v1/job-types)`);
    const image = await rootfsTarball(vol.scratch, 'base', 'base');
    await runJob('generations.init', {
      volume: vol.volume,
      commons: ['@var@log'],
      image: { kind: 'tarball', path: '/scratch/base.tar.gz', sha256: image.sha256 },
      // The trial's check waits for the test's gate (a shared flock), so the trial is observable.
      health: { deadlineSec: 600, checks: [['/usr/bin/flock', '--shared', gatePath(), '/bin/true']] },
    });
    const g = await waitFor('the inventory with the first generation', async () => {
      const x = await generations();
      return x.supported && x.current ? x : undefined;
    });
    first = g.current!;
    assert.equal(g.generations.length, 1);
    assert.deepEqual(
      g.generations.map((x) => [x.id, x.status, x.current, x.slot, x.complete]),
      [[first, 'good', true, 0, true]],
    );
    assert.equal(g.lastGood, first);
    assert.equal(await marker(first), 'base\n');
  });

  it('upgrades by commands: the new generation current and on trial, good once the agent is back and its check passes', async () => {
    assert.ok(first, 'needs the layout from the previous step');
    const before = Date.parse((await generations()).collectedAt!);
    await closeGate();
    const up = await runJob('generations.upgrade', { from: { kind: 'commands' }, commands: [['/bin/busybox', 'sed', '-i', 's/base/upgraded/', '/etc/marker']], trial: true });
    // Right after the switch (the job's output): the new generation is current and on trial.
    const atSwitch = up.result.inventory as Generations & { trial: { id: string } | null };
    assert.equal(atSwitch.current, up.result.id);
    assert.equal(atSwitch.trial?.id, up.result.id);
    assert.equal(atSwitch.generations.find((x) => x.id === up.result.id)?.status, 'trial');
    assert.equal(up.result.from, first);
    // The agent reports its facts right after the switch: the new generation shows at once.
    const g = await waitFor('the inventory after the upgrade', async () => {
      const x = await generations();
      return x.current && x.current !== first && Date.parse(x.collectedAt!) > before ? x : undefined;
    });
    second = g.current!;
    const byId = new Map(g.generations.map((x) => [x.id, x]));
    assert.equal(byId.get(second)?.slot, 0);
    assert.equal(byId.get(first)?.slot, 1, 'the old generation is the first fallback');
    assert.equal(byId.get(first)?.current, false);
    assert.equal(await marker(second), 'upgraded\n');
    assert.equal(await marker(first), 'base\n', 'the old generation is untouched');

    // On trial: the health check (reach the controller, then the configured check) waits for
    // the gate. The device dies before it passes (SIGKILL, as a power cut).
    assert.equal(byId.get(second)?.status, 'trial');
    assert.equal(g.trial?.id, second);
    assert.equal(g.lastGood, first);
    assert.equal((await ctl.json(`/api/v1/devices/${DEVICE}`)).generations.trial, second);
    await agent.stop('SIGKILL');
    const stillTrial = await generations();
    assert.equal(stillTrial.trial?.id, second);
    assert.equal(stillTrial.generations.find((y) => y.id === second)?.status, 'trial');

    // It comes back and reconnects; with the gate open the check passes: good, last good.
    await openGate();
    const restartedAt = Date.now();
    agent.start();
    const good = await waitFor('the new generation marked good after the reconnection', async () => {
      const x = await generations();
      return Date.parse(x.collectedAt!) > restartedAt && x.trial === null && x.generations.find((y) => y.id === second)?.status === 'good' ? x : undefined;
    }, 60_000);
    assert.equal(good.current, second);
    assert.equal(good.lastGood, second);
    assert.equal(agent.events(/generations: good/).length, 1, 'the restarted agent committed the trial');
  });

  it('rolls back through REST: the previous generation is current again', async () => {
    assert.ok(second, 'needs the upgrade from the previous step');
    const bad = await ctl.api(`/api/v1/devices/${DEVICE}/generations/rollback`, { method: 'POST', json: { to: second } });
    assert.equal(bad.status, 400, 'the current generation is not a rollback target');
    const missing = await ctl.api(`/api/v1/devices/${DEVICE}/generations/rollback`, { method: 'POST', json: { to: 'no-such-generation' } });
    assert.equal(missing.status, 400);
    assert.match(((await missing.json()) as { error: { issues: Array<{ path: string }> } }).error.issues[0]!.path, /^to$/);

    const res = await ctl.api(`/api/v1/devices/${DEVICE}/generations/rollback`, { method: 'POST', json: { reason: 'e2e: back to the base image' } });
    assert.equal(res.status, 201);
    const job = (await res.json()) as { id: string; type: string };
    assert.equal(job.type, 'generations.rollback');
    const done = await finished(job.id);
    assert.equal(done.status, 'succeeded', `${JSON.stringify({ error: done.error, logs: done.logs })}\nagent log:\n${agent.logs.slice(-3000)}`);
    assert.equal(done.result.current, first, 'the job output is the inventory after the switch');

    const g = await waitFor('the inventory after the rollback', async () => {
      const x = await generations();
      return x.current === first ? x : undefined;
    });
    assert.equal(g.generations.find((x) => x.id === first)?.current, true);
    assert.equal(g.generations.find((x) => x.id === second)?.current, false);
    // On the volume: `current` resolves to the first generation's root.
    assert.equal(await readFile(join(vol.host, 'current/0/@/etc/marker'), 'utf8'), 'base\n');
    const view = await ctl.json(`/api/v1/devices/${DEVICE}`);
    assert.equal(view.generations.current, first);
  });
});
