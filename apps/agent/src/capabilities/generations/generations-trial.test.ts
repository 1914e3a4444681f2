// As root, on a real btrfs: trial generations are committed by a passing health check and
// rolled back by themselves when a check fails, the deadline passes or the boots run out.
import assert from 'node:assert/strict';
import { mkdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { silentLogger } from '../../common/log.js';
import { NodeSystemAdapter } from '../../system/node-system-adapter.js';
import { agentCommand } from '../../testing/agent-process.js';
import { type BtrfsVolume, makeBtrfsVolume, makeRootfsTarball, execArgv, sha256File } from '../../testing/btrfs-volume.js';
import { GenerationsRoot, type GenerationsRootDeps } from './generations-root.js';
import { adopt, init } from './init-adopt.js';
import { upgrade } from './upgrade.js';
import { TrialMonitor } from './trial-monitor.js';
import { killWithCommandLine, pidsWithCommandLine } from '../../testing/processes.js';

function manager(v: BtrfsVolume, extra: Partial<GenerationsRootDeps> = {}) {
  const [cmd, pre] = agentCommand();
  return new GenerationsRoot({ root: v.root, sys: new NodeSystemAdapter(), log: silentLogger, selfCommand: [cmd, ...pre], ...extra });
}

async function setup(t: TestContext, health: { checks?: string[][]; deadlineSec?: number; boots?: number; requireBoot?: boolean }) {
  const v = await makeBtrfsVolume(t);
  const tar = makeRootfsTarball(v.scratch, 'base', 'base');
  const m = manager(v);
  const first = (await init(m, { volume: v.volume, commons: [], image: { kind: 'tarball', path: tar.slice(v.root.length), sha256: sha256File(tar) }, health })).current!;
  const next = (await upgrade(m, { from: { kind: 'commands' }, commands: [['/bin/busybox', 'touch', '/etc/new']], trial: true })).id;
  return { v, m, first, next };
}

const current0 = (v: BtrfsVolume) => readlinkSync(join(v.host, 'current/0')).replace('../../snapshots/', '');

describe('generations trial and health', { concurrency: false }, () => {
  it('a failed health check rolls back by itself: previous generation current again, the trial marked bad, reason reported', async (t) => {
    const { v, m, first, next } = await setup(t, { checks: [['true'], ['ls', '/run/ibex-test-no-such-service']] });
    assert.equal(current0(v), next);
    const seen: string[] = [];
    const mon = new TrialMonitor(m, { sys: new NodeSystemAdapter(), log: silentLogger, onChanged: (o) => seen.push(`${o.outcome}: ${o.reason}`) });
    t.after(() => mon.stop());
    await mon.controllerReached();
    assert.equal(current0(v), first);
    const inv = (await m.inventory())!;
    assert.equal(inv.current, first);
    assert.equal(inv.trial, null);
    assert.equal(inv.generations.find((g) => g.id === next)?.status, 'bad');
    assert.equal(inv.lastGood, first);
    assert.equal(seen.length, 1);
    assert.match(seen[0]!, /^rolled-back: health check ls \/run\/ibex-test-no-such-service failed \(exit 2\): ls: cannot access/);
    assert.equal(m.store.readState().lastRollback?.reason, seen[0]!.replace('rolled-back: ', ''));
  });

  it('a passing health check makes the trial good and last-known-good', async (t) => {
    const { v, m, next } = await setup(t, { checks: [['true']] });
    const mon = new TrialMonitor(m, { sys: new NodeSystemAdapter(), log: silentLogger });
    t.after(() => mon.stop());
    await mon.controllerReached();
    assert.equal(current0(v), next);
    const inv = (await m.inventory())!;
    assert.equal(inv.generations.find((g) => g.id === next)?.status, 'good');
    assert.equal(inv.lastGood, next);
    assert.equal(inv.trial, null);
    assert.equal(mon.outcomes[0]?.outcome, 'good');
  });

  it('a trial that does not reach the controller within the deadline is rolled back by the timer', async (t) => {
    const { v, m, first, next } = await setup(t, { deadlineSec: 1 });
    const mon = new TrialMonitor(m, { sys: new NodeSystemAdapter(), log: silentLogger });
    t.after(() => mon.stop());
    mon.arm();
    const until = Date.now() + 10_000;
    while (Date.now() < until && mon.outcomes.length === 0) await new Promise((ok) => setTimeout(ok, 100));
    assert.equal(current0(v), first);
    assert.equal(m.store.readState().statuses[next], 'bad');
    assert.match(mon.outcomes[0]?.reason ?? '', /did not reach the controller within 1 s/);
  });

  it('stop() kills a running health check at once, records no verdict after it, and leaves the trial pending for the next start', async (t) => {
    // A check that would pass after a few seconds: without stop() cutting it short it would mark the trial good.
    const secs = `4.${process.pid}${Math.floor(Math.random() * 1e6)}`;
    const { v, m, next } = await setup(t, { checks: [['sleep', secs]], deadlineSec: 3600 });
    const checkPids = () => pidsWithCommandLine(`sleep ${secs}`);
    const running = () => checkPids().length > 0;
    t.after(() => killWithCommandLine(`sleep ${secs}`));
    const mon = new TrialMonitor(m, { sys: new NodeSystemAdapter(), log: silentLogger });
    t.after(() => mon.stop());
    const checking = mon.controllerReached();
    const until = Date.now() + 10_000;
    while (Date.now() < until && !running()) await new Promise((ok) => setTimeout(ok, 50));
    assert.ok(running(), 'the check runs');
    const t0 = Date.now();
    await mon.stop();
    assert.ok(Date.now() - t0 < 2000, `stop() returned in ${Date.now() - t0} ms, not when the check ended`);
    await checking;
    assert.equal(running(), false, 'the check process was killed');
    // Past the moment the check would have passed: still no verdict.
    await new Promise((ok) => setTimeout(ok, 4500));
    assert.deepEqual(mon.outcomes, []);
    assert.equal(m.store.readState().trial?.id, next, 'the trial is still pending on disk');
    assert.equal(m.store.readState().statuses[next], 'trial');
    assert.equal(current0(v), next);
    // The next start re-arms it: its check runs again and (now passing) commits it.
    m.store.writeConfig({ ...m.requireConfig(), health: { ...m.requireConfig().health, checks: [['true']] } });
    const again = new TrialMonitor(m, { sys: new NodeSystemAdapter(), log: silentLogger });
    t.after(() => again.stop());
    await again.start();
    await again.controllerReached();
    assert.equal(again.outcomes[0]?.outcome, 'good');
    assert.equal(m.store.readState().statuses[next], 'good');
  });

  it('an upgrade (or adopting another volume) while a trial is pending is refused, naming the trial and what to do; nothing changes', async (t) => {
    const { v, m, first, next } = await setup(t, { checks: [['true']], deadlineSec: 3600 });
    const before = execArgv(['ls', join(v.host, 'snapshots')]);
    for (const trial of [true, false]) {
      await assert.rejects(
        upgrade(m, { from: { kind: 'commands' }, commands: [['/bin/busybox', 'touch', '/etc/third']], trial }),
        new RegExp(`^FatalError: cannot upgrade: generation ${next} is still on trial \\(its health check is pending \\(deadline [^)]+\\)\\); wait until it is good .* or roll it back to ${first} with generations\\.rollback, then try again$`),
      );
    }
    assert.equal(execArgv(['ls', join(v.host, 'snapshots')]), before, 'no generation was made');
    assert.equal(current0(v), next);
    assert.equal(m.store.journal.read(), undefined);
    // The same btrfs mounted at a second path: adopting it would carry this volume's trial over.
    const other = join(v.root, 'vol/other');
    mkdirSync(other);
    execArgv(['mount', '-t', 'btrfs', '-o', 'subvolid=5', v.device, other]);
    await assert.rejects(adopt(m, { volume: '/vol/other' }), new RegExp(`cannot adopt /vol/other: generation ${next} is still on trial`));
    assert.equal(m.requireConfig().volume, v.volume);
    // Re-adopting the same volume (new settings) keeps the trial and is allowed.
    await adopt(m, { volume: v.volume, fallbacks: 2, health: { checks: [['true']], deadlineSec: 3600 } });
    assert.equal(m.store.readState().trial?.id, next);
    // Once the trial is good, upgrading works again.
    const mon = new TrialMonitor(m, { sys: new NodeSystemAdapter(), log: silentLogger });
    t.after(() => mon.stop());
    await mon.controllerReached();
    assert.equal(m.store.readState().statuses[next], 'good');
    const third = await upgrade(m, { from: { kind: 'commands' }, commands: [['/bin/busybox', 'touch', '/etc/third']], trial: true });
    assert.equal(third.from, next);
    assert.equal(m.store.readState().trial?.previous, next, 'the new trial falls back to a confirmed generation');
  });

  it('boot counting: each boot of the trial generation counts once; booting it with none left switches back', async (t) => {
    const { v, first, next } = await setup(t, { boots: 1, deadlineSec: 3600 });
    // The trial generation booted: a mountinfo whose root mount is snapshots/<next>/@ (captured for real).
    const bootDir = join(v.scratch, 'boot');
    mkdirSync(bootDir);
    execArgv(['mount', '-t', 'btrfs', '-o', `ro,subvol=current/0/@`, v.device, bootDir]);
    const mi = execArgv(['unshare', '--mount', '--propagation', 'private', '--pid', '--fork', '--mount-proc', `--root=${bootDir}`, '/bin/busybox', 'cat', '/proc/self/mountinfo']);
    execArgv(['umount', bootDir]);
    const mountinfoPath = join(v.scratch, 'mountinfo');
    writeFileSync(mountinfoPath, mi);
    const bootIdPath = join(v.scratch, 'boot_id');
    const boot = async (id: string) => {
      writeFileSync(bootIdPath, id + '\n');
      const m = manager(v, { mountinfoPath, bootIdPath });
      const mon = new TrialMonitor(m, { sys: new NodeSystemAdapter(), log: silentLogger });
      await mon.start();
      await mon.stop();
      return m;
    };
    let m = await boot('boot-1');
    assert.equal(m.store.readState().trial?.bootsLeft, 0);
    assert.equal(current0(v), next);
    m = await boot('boot-1'); // an agent restart in the same boot does not count
    assert.equal(m.store.readState().trial?.bootsLeft, 0);
    assert.equal(current0(v), next);
    m = await boot('boot-2');
    assert.equal(current0(v), first);
    assert.equal(m.store.readState().statuses[next], 'bad');
    assert.match(m.store.readState().lastRollback?.reason ?? '', /booted 1 time\(s\) without passing its health check/);
  });

  it('requireBoot: reaching the controller before the reboot does not commit the trial; after booting it, it does', async (t) => {
    const { v, m, next } = await setup(t, { requireBoot: true, deadlineSec: 1, checks: [['true']] });
    const before = new TrialMonitor(m, { sys: new NodeSystemAdapter(), log: silentLogger });
    t.after(() => before.stop());
    before.arm();
    await before.controllerReached();
    await new Promise((ok) => setTimeout(ok, 1500));
    assert.equal(m.store.readState().trial?.awaitingBoot, true, 'still waiting for the boot, the 1 s deadline does not run yet');
    assert.equal(current0(v), next);
    assert.deepEqual(before.outcomes, []);
    await before.stop();
    // Now the device boots the trial generation.
    const bootDir = join(v.scratch, 'boot');
    mkdirSync(bootDir);
    execArgv(['mount', '-t', 'btrfs', '-o', 'ro,subvol=current/0/@', v.device, bootDir]);
    const mi = execArgv(['unshare', '--mount', '--propagation', 'private', '--pid', '--fork', '--mount-proc', `--root=${bootDir}`, '/bin/busybox', 'cat', '/proc/self/mountinfo']);
    execArgv(['umount', bootDir]);
    writeFileSync(join(v.scratch, 'mountinfo'), mi);
    writeFileSync(join(v.scratch, 'boot_id'), 'boot-after-switch\n');
    const booted = manager(v, { mountinfoPath: join(v.scratch, 'mountinfo'), bootIdPath: join(v.scratch, 'boot_id') });
    const mon = new TrialMonitor(booted, { sys: new NodeSystemAdapter(), log: silentLogger });
    t.after(() => mon.stop());
    await mon.start();
    assert.equal(booted.store.readState().trial?.awaitingBoot, false);
    await mon.controllerReached();
    assert.equal(booted.store.readState().statuses[next], 'good');
    assert.equal(booted.store.readState().lastGood, next);
  });
});
