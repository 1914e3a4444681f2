// As root, on a real btrfs: a process running the real upgrade/rollback code is SIGKILLed at every
// step boundary (failpoints), then recovery runs as it does at agent start. Every run must end
// with `current` resolving to a complete read-only generation, and nothing half made left over.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, lstatSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it, type TestContext } from 'node:test';
import { silentLogger } from '../../common/log.js';
import { NodeSystemAdapter } from '../../system/node-system-adapter.js';
import { agentCommand } from '../../testing/agent-process.js';
import { type BtrfsVolume, makeBtrfsVolume, makeRootfsTarball, execArgv, sha256File } from '../../testing/btrfs-volume.js';
import { GenerationsRoot } from './generations-root.js';
import { init } from './init-adopt.js';
import { rollback } from './rollback.js';
import { markGood } from './trial-state.js';
import { upgrade } from './upgrade.js';
import type { Journal } from './generations-store.js';

const DRIVER = fileURLToPath(new URL('../../testing/generations-driver.js', import.meta.url));

function driver(root: string, op: string, request: unknown, failpoints = ''): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string; stdout: string }> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { ...process.env, IBEX_AGENT_FAILPOINTS: failpoints };
    const child = spawn(process.execPath, [DRIVER, JSON.stringify({ root, op, request })], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let stdout = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.stdout.on('data', (d) => (stdout += d));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stderr, stdout }));
  });
}

function manager(v: BtrfsVolume) {
  const [cmd, pre] = agentCommand();
  return new GenerationsRoot({ root: v.root, sys: new NodeSystemAdapter(), log: silentLogger, selfCommand: [cmd, ...pre] });
}

async function setup(t: TestContext) {
  const v = await makeBtrfsVolume(t);
  const tar = makeRootfsTarball(v.scratch, 'base', 'base');
  const m = manager(v);
  const first = (await init(m, { volume: v.volume, commons: ['@var@log'], fstab: 'x CURRENT_SNAPSHOTS_PATH\n', image: { kind: 'tarball', path: tar.slice(v.root.length), sha256: sha256File(tar) } })).current!;
  return { v, m, first, tar };
}

const isRo = (p: string) => execArgv(['btrfs', 'property', 'get', '-ts', p, 'ro']).trim() === 'ro=true';
const current0 = (v: BtrfsVolume) => readlinkSync(join(v.host, 'current/0')).replace('../../snapshots/', '');

function assertConsistent(v: BtrfsVolume, m: GenerationsRoot, opts: { halfDeleted?: string } = {}): string {
  const g0 = current0(v);
  assert.match(readlinkSync(join(v.host, 'current')), /^\.\/links\/[^/]+$/);
  assert.equal(lstatSync(join(v.host, 'snapshots', g0, '@')).ino, 256);
  assert.ok(isRo(join(v.host, 'snapshots', g0, '@')), 'current/0/@ is read-only');
  assert.ok(existsSync(join(v.host, 'current/0/@/bin/busybox')), 'current/0/@ is a complete root');
  assert.deepEqual(readdirSync(join(v.host, 'next')), [], 'next/ is empty');
  assert.equal(existsSync(m.store.journal.path), false, 'the journal is cleared');
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.split(' ')[4]?.startsWith(v.root));
  assert.equal(mounts.length, 1, `only the volume is mounted: ${mounts.join('\n')}`);
  // Every generation left on disk is complete (the crashed one either made it or is gone).
  // (Except a generation a killed GC left with its subvolume deleted and its directory not yet removed.)
  for (const id of readdirSync(join(v.host, 'snapshots'))) {
    if (id === opts.halfDeleted) assert.equal(existsSync(join(v.host, 'snapshots', id, '@')), false, `${id} lost its @`);
    else assert.ok(isRo(join(v.host, 'snapshots', id, '@')), `${id} is complete`);
  }
  return g0;
}

const UPGRADE_POINTS = ['gen-journaled', 'gen-snapshotted', 'gen-changed', 'gen-readonly', 'gen-linked', 'gen-next-linked', 'gen-switched'] as const;
const ROLLBACK_POINTS = ['gen-journaled', 'gen-linked', 'gen-next-linked', 'gen-switched'] as const;
const INIT_POINTS = ['gen-journaled', 'gen-readonly', 'gen-linked', 'gen-next-linked', 'gen-switched'] as const;

describe('generations: SIGKILL at every step boundary, then recovery', { concurrency: false }, () => {
  for (const [kind, points] of [
    ['commands', UPGRADE_POINTS],
    ['tarball', UPGRADE_POINTS],
  ] as const) {
    for (const fp of points) {
      it(`upgrade from ${kind}, killed at ${fp}`, async (t) => {
        const { v, m, first, tar } = await setup(t);
        const linksBefore = readdirSync(join(v.host, 'links'));
        const request =
          kind === 'commands'
            ? { from: { kind: 'commands' }, commands: [['/bin/busybox', 'touch', '/etc/upgraded']], trial: true }
            : { from: { kind: 'tarball', path: tar.slice(v.root.length), sha256: sha256File(tar) }, commands: [['/bin/busybox', 'touch', '/etc/upgraded']], trial: true };
        const r = await driver(v.root, 'upgrade', request, fp);
        assert.equal(r.signal, 'SIGKILL', `the driver must die at ${fp}: ${r.stderr}`);
        assert.match(r.stderr, new RegExp(`failpoint ${fp}`));
        const j = JSON.parse(readFileSync(m.store.journal.path, 'utf8')) as Journal;
        assert.equal(j.op, 'upgrade');
        const rec = await driver(v.root, 'recover', null);
        assert.equal(rec.code, 0, rec.stderr);
        const g0 = assertConsistent(v, m);
        const state = m.store.readState();
        if (fp === 'gen-switched') {
          // The rename happened: the upgrade is finished, on trial.
          assert.equal(g0, j.created);
          assert.ok(existsSync(join(v.host, 'current/0/@/etc/upgraded')));
          assert.equal(state.trial?.id, j.created);
          assert.equal(state.statuses[j.created!], 'trial');
          assert.deepEqual(readdirSync(join(v.host, 'snapshots')).sort(), [first, j.created].sort());
          // An upgrade is refused while a trial is pending: let this one pass its check first.
          assert.equal(await markGood(m, j.created!), true);
        } else {
          // Not switched: everything the upgrade made is gone, the volume is as before.
          assert.equal(g0, first);
          assert.deepEqual(readdirSync(join(v.host, 'snapshots')), [first]);
          assert.deepEqual(readdirSync(join(v.host, 'links')), linksBefore);
          assert.equal(state.trial, null);
        }
        // The layout stays usable: the next upgrade works.
        const again = await driver(v.root, 'upgrade', { from: { kind: 'commands' }, commands: [], trial: false });
        assert.equal(again.code, 0, again.stderr);
        assertConsistent(v, m);
      });
    }
  }

  // init was not journaled: a crash while the first generation was being made left it half made
  // on a volume with no config, which neither recovery nor GC (it needs a config) ever cleared.
  for (const fp of INIT_POINTS) {
    it(`init killed at ${fp}`, async (t) => {
      const v = await makeBtrfsVolume(t);
      const m = manager(v);
      const tar = makeRootfsTarball(v.scratch, 'base', 'base');
      const request = { volume: v.volume, commons: ['@var@log'], fstab: 'x CURRENT_SNAPSHOTS_PATH\n', image: { kind: 'tarball', path: tar.slice(v.root.length), sha256: sha256File(tar) } };
      const r = await driver(v.root, 'init', request, fp);
      assert.equal(r.signal, 'SIGKILL', `the driver must die at ${fp}: ${r.stderr}`);
      const j = JSON.parse(readFileSync(m.store.journal.path, 'utf8')) as Journal;
      assert.equal(j.op, 'init');
      const rec = await driver(v.root, 'recover', null);
      assert.equal(rec.code, 0, rec.stderr);
      assert.equal(existsSync(m.store.journal.path), false, 'the journal is cleared');
      if (fp === 'gen-switched') {
        assert.equal(assertConsistent(v, m), j.created);
        assert.equal(m.store.readState().lastGood, j.created);
        assert.equal(m.store.readState().statuses[j.created!], 'good');
        assert.equal(m.config()?.volume, v.volume);
        return;
      }
      assert.deepEqual(readdirSync(join(v.host, 'snapshots')), [], 'the half-made generation is gone');
      assert.equal(existsSync(join(v.host, 'current')), false, 'no layout');
      assert.equal(m.config(), undefined, 'not configured');
      const again = await driver(v.root, 'init', request);
      assert.equal(again.code, 0, again.stderr);
      const g0 = assertConsistent(v, m);
      assert.deepEqual(readdirSync(join(v.host, 'snapshots')), [g0], 'one generation: the new one');
    });
  }

  for (const fp of ROLLBACK_POINTS) {
    it(`rollback killed at ${fp}`, async (t) => {
      const { v, m, first } = await setup(t);
      const a = (await upgrade(m, { from: { kind: 'commands' }, commands: [], trial: true })).id;
      const r = await driver(v.root, 'rollback', { reason: 'crash test', markFromBad: true }, fp);
      assert.equal(r.signal, 'SIGKILL', r.stderr);
      assert.equal(JSON.parse(readFileSync(m.store.journal.path, 'utf8')).op, 'switch');
      const rec = await driver(v.root, 'recover', null);
      assert.equal(rec.code, 0, rec.stderr);
      const g0 = assertConsistent(v, m);
      const state = m.store.readState();
      if (fp === 'gen-switched') {
        assert.equal(g0, first);
        assert.equal(state.statuses[a], 'bad');
        assert.equal(state.lastRollback?.reason, 'crash test');
      } else {
        assert.equal(g0, a);
        assert.equal(state.statuses[a], 'trial');
      }
    });
  }

  it('GC killed half way through deleting a generation: the next GC finishes it, current untouched', async (t) => {
    const { v, m, first } = await setup(t);
    // Five upgrades: links 0..3 hold the last four; `first` and the first upgrade are unreferenced.
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await upgrade(m, { from: { kind: 'commands' }, commands: [], trial: false })).id);
    const victims = [first, ids[0]!].sort();
    const r = await driver(v.root, 'gc', null, 'gen-gc-deleted');
    assert.equal(r.signal, 'SIGKILL', r.stderr);
    const inv = (await m.inventory())!;
    const half = inv.generations.filter((g) => !g.complete).map((g) => g.id);
    assert.ok(half.length === 1 && existsSync(join(v.host, 'snapshots', half[0]!)), `one half-deleted generation is left: ${half}`);
    assert.ok(victims.includes(half[0]!));
    // GC keeps no journal: what a crash leaves must show as what it is. The half-deleted generation
    // is reported incomplete and never as current, linked or booted; current is untouched and complete.
    const h = inv.generations.find((g) => g.id === half[0])!;
    assert.deepEqual(
      { complete: h.complete, current: h.current, slot: h.slot, booted: h.booted, readOnly: h.readOnly, status: h.status },
      { complete: false, current: false, slot: null, booted: false, readOnly: false, status: 'unknown' },
    );
    assert.equal(inv.current, ids[4]);
    assert.equal(inv.generations.find((g) => g.id === inv.current)?.complete, true);
    const linked = inv.generations.filter((g) => g.slot !== null).sort((a, b) => a.slot! - b.slot!);
    assert.deepEqual(linked.map((g) => [g.slot, g.id, g.complete]), [ids[4], ids[3], ids[2], ids[1]].map((id, i) => [i, id, true]));
    assertConsistent(v, m, { halfDeleted: half[0] });
    // Nothing can link it again: a rollback to it is refused.
    await assert.rejects(rollback(m, { to: half[0] }), /is not complete/);
    const again = await driver(v.root, 'gc', null);
    assert.equal(again.code, 0, again.stderr);
    assert.ok(JSON.parse(again.stdout).deleted.includes(half[0]));
    assert.deepEqual(readdirSync(join(v.host, 'snapshots')).sort(), ids.slice(1).sort());
    assertConsistent(v, m);
  });

  it('upgrade killed while a chroot command runs: the command dies with it, no mount leaks, recovery discards the generation', async (t) => {
    const { v, m, first } = await setup(t);
    // A sleep of a length no other run uses: test runs on this machine may overlap, and ps sees them all.
    const secs = String(300 + Math.floor(Math.random() * 100_000));
    const running = () => execArgv(['ps', '-eo', 'args']).split('\n').some((l) => l.trim() === `/bin/busybox sleep ${secs}`);
    const child = spawn(process.execPath, [DRIVER, JSON.stringify({ root: v.root, op: 'upgrade', request: { from: { kind: 'commands' }, commands: [['/bin/busybox', 'sleep', secs]], trial: false } })], { stdio: 'ignore' });
    const exited = new Promise((ok) => child.on('close', ok));
    // Wait until the sleep runs inside the chroot (the snapshot comes first: slow on a loaded machine).
    const deadline = performance.now() + 60_000;
    let found = false;
    while (performance.now() < deadline && !found) {
      found = running();
      if (!found) await new Promise((ok) => setTimeout(ok, 100));
    }
    assert.ok(found, 'the command started in the chroot');
    child.kill('SIGKILL');
    await exited;
    const gone = performance.now() + 10_000;
    while (performance.now() < gone && running()) await new Promise((ok) => setTimeout(ok, 100));
    assert.equal(running(), false, 'the chroot command was killed with the upgrade (pdeathsig)');
    const rec = await driver(v.root, 'recover', null);
    assert.equal(rec.code, 0, rec.stderr);
    assert.equal(assertConsistent(v, m), first);
    assert.deepEqual(readdirSync(join(v.host, 'snapshots')), [first]);
  });
});
