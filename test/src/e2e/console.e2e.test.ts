// End to end, at the device's console: the built agent binary in its own network namespace, a
// real btrfs volume on a loop device under its --root, the controller as a process. With the
// agent service stopped, an operator initialises, upgrades, rolls back and garbage-collects the
// generations at the console; `status` shows the inventory; when the agent runs again, the
// controller gets the facts and each job as an audit entry by the device, once, also when the
// agent dies right after the controller acknowledged a report. The steps run in order and share
// one device.
import assert from 'node:assert/strict';
import { readlink, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createTestDatabase, type TestDatabase } from '@ibex/migrate';
import { deleteRedisPrefix, testRedisUrl } from '@ibex/test-support';
import { AgentProcess } from './helpers/agent-process.js';
import { createBtrfs, rootfsTarball, type TestBtrfs } from './helpers/btrfs.js';
import { ControllerProcess } from './helpers/controller-process.js';
import { waitFor } from './helpers/exec.js';
import { createNetns, type TestNetns } from './helpers/netns.js';

const DEVICE = 'e2e-console';
const CONSOLE_JOBS = ['generations.init', 'generations.upgrade', 'generations.upgrade', 'generations.rollback', 'generations.gc'];

interface AuditEntry {
  actor: { type: string; id: string | null; name: string | null };
  action: string;
  target: { type: string; id: string } | null;
  data: { changeId: string; type: string; outcome: string; params: Record<string, unknown>; output: Record<string, unknown> | null; user: string | null };
}

describe('generations at the console end to end: jobs run without the agent service, reported at its next connection', () => {
  let db: TestDatabase;
  let ns: TestNetns;
  let ctl: ControllerProcess;
  let agent: AgentProcess;
  let vol: TestBtrfs;
  let deviceId = '';
  const gens: string[] = [];

  before(async () => {
    db = await createTestDatabase();
    ns = await createNetns();
    vol = await createBtrfs();
    ctl = new ControllerProcess({ databaseUrl: db.url, env: { IBEX_HEARTBEAT_INTERVAL_MS: '1000', IBEX_PRESENCE_FLUSH_MS: '200', IBEX_LOG_LEVEL: 'warn' } });
    await ctl.start();
    agent = new AgentProcess(ns.prefix(), vol.root);
  });

  after(async () => {
    await agent?.stop('SIGKILL').catch(() => {});
    await ctl?.stop('SIGKILL').catch(() => {});
    await ns?.destroy();
    if (ctl) await deleteRedisPrefix(testRedisUrl, ctl.redisPrefix);
    await db?.drop();
    await vol?.destroy();
  });

  const current0 = async () => (await readlink(join(vol.host, 'current/0'))).replace('../../snapshots/', '');
  const params = async (name: string, p: unknown) => {
    const f = join(vol.scratch, `${name}.json`);
    await writeFile(f, JSON.stringify(p));
    return f;
  };
  const consoleJob = async (args: string[]) => {
    const r = await agent.cli(args);
    assert.equal(r.code, 0, `ibex-agent ${args.join(' ')}: ${r.stdout}\n${r.stderr}`);
    return r;
  };
  const audit = async () => (await ctl.json<{ items: AuditEntry[] }>(`/api/v1/audit?action=device.local_job&targetType=device&targetId=${deviceId}&limit=100`)).items;

  it('enrolls the device; the agent service is not running', async () => {
    const tok = await ctl.json('/api/v1/enrollment-tokens', { method: 'POST', json: { description: 'e2e console', maxUses: 1 } });
    const enroll = await agent.cli(['enroll', '--controller', `grpc://${ns.hostIp}:${ctl.grpcPort}`, '--token', tok.token, '--name', DEVICE]);
    assert.equal(enroll.code, 0, enroll.stderr);
    deviceId = (await ctl.json(`/api/v1/devices/${DEVICE}`)).id;
    assert.equal((await ctl.json(`/api/v1/devices/${DEVICE}`)).status, 'offline');
  });

  it('init, upgrade twice, rollback and gc at the console; status shows the inventory and five jobs to report', async () => {
    const image = await rootfsTarball(vol.scratch, 'base', 'base');
    await consoleJob(['generations', 'init', '--params', await params('init', { volume: vol.volume, fallbacks: 1, image: { kind: 'tarball', path: '/scratch/base.tar.gz', sha256: image.sha256 } })]);
    gens.push(await current0());
    for (const file of ['one', 'two']) {
      const up = await consoleJob(['generations', 'upgrade', '--json', '--params', await params(file, { from: { kind: 'commands' }, commands: [['/bin/busybox', 'touch', `/etc/${file}`]], trial: false })]);
      const result = JSON.parse(up.stdout.trim().split('\n').at(-1)!) as { event: string; outcome: string; output: { id: string } };
      assert.deepEqual([result.event, result.outcome], ['result', 'succeeded']);
      gens.push(result.output.id);
    }
    const [a, b, c] = gens as [string, string, string];
    assert.equal(await current0(), c);
    await consoleJob(['generations', 'rollback', '--reason', 'e2e: back one']);
    assert.equal(await current0(), b);
    const gc = await consoleJob(['generations', 'gc']);
    assert.match(gc.stdout, new RegExp(`deleted: ${a}\\n`));

    const s = JSON.parse((await consoleJob(['status', '--json'])).stdout);
    assert.equal(s.running, false);
    assert.equal(s.generations.current, b);
    assert.deepEqual(
      s.generations.generations.map((g: { id: string; status: string; slot: number | null }) => [g.id, g.status, g.slot]),
      [
        [b, 'good', 0],
        [c, 'good', 1],
      ],
    );
    assert.equal(s.pendingLocalChanges, 5);
    const text = (await consoleJob(['status'])).stdout;
    assert.match(text, new RegExp(`generations on /vol/root: 2, current ${b}, booted -, last good ${c}`));
    assert.match(text, /local jobs: {2}5 run at the console, 5 not yet reported to the controller/);
    assert.deepEqual(await audit(), [], 'nothing reached the controller yet');
  });

  it('the next connection brings the inventory and each job as an audit entry by the device, once, across a crash after the Ack', async () => {
    const [, b] = gens as [string, string, string];
    // The agent dies (SIGKILL) right after the controller acknowledged the first report, before
    // it journaled that: it sends them all again at its next connection.
    agent.start({ IBEX_AGENT_FAILPOINTS: 'local-change-reported' });
    const died = await agent.exited();
    assert.equal(died.signal, 'SIGKILL', agent.logs.slice(-2000));
    assert.ok((await audit()).length >= 1, 'the first report was recorded before the Ack');

    agent.start();
    await waitFor('the device online', async () => (await ctl.json(`/api/v1/devices/${DEVICE}`)).status === 'online', 30_000);
    const g = await ctl.json(`/api/v1/devices/${DEVICE}/generations`);
    assert.equal(g.current, b, 'the inventory came with the Hello');
    const entries = await waitFor('five audit entries', async () => {
      const x = await audit();
      return x.length >= 5 ? x : undefined;
    }, 30_000);
    const s = await waitFor('every local change acknowledged', async () => {
      const st = JSON.parse((await agent.cli(['status', '--json'])).stdout);
      return st.pendingLocalChanges === 0 ? st : undefined;
    }, 30_000);
    assert.deepEqual(s.localJobs.map((j: { reported: boolean }) => j.reported), [true, true, true, true, true]);
    const final = await audit();
    assert.equal(final.length, 5, 'each job recorded once, though the first was sent twice');
    assert.deepEqual(new Set(final.map((e) => e.data.changeId)), new Set(entries.map((e) => e.data.changeId)));
    // Newest first; the actor is the device.
    assert.deepEqual(final.map((e) => e.data.type).reverse(), CONSOLE_JOBS);
    for (const e of final) {
      assert.deepEqual([e.actor.type, e.actor.id, e.actor.name, e.action], ['device', deviceId, DEVICE, 'device.local_job']);
      assert.equal(e.data.outcome, 'succeeded');
      assert.ok(e.data.user, 'who ran it');
    }
    const rollback = final.find((e) => e.data.type === 'generations.rollback')!;
    assert.equal(rollback.data.params['reason'], 'e2e: back one');
    assert.equal(rollback.data.output?.['current'], b);
    // current is the first upgrade's root (its command's file is there), the second one's is not.
    await stat(join(vol.host, 'current/0/@/etc/one'));
    await assert.rejects(stat(join(vol.host, 'current/0/@/etc/two')));
  });
});
