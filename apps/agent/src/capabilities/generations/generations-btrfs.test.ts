// As root, on a real btrfs in a loop-device image: the generations library end to end.
import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createReadStream } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { silentLogger } from '../../common/log.js';
import { NodeSystemAdapter } from '../../system/node-system-adapter.js';
import { agentCommand } from '../../testing/agent-process.js';
import { type BtrfsVolume, listVolume, makeBtrfsVolume, makeRootfsTarball, execArgv, sha256File } from '../../testing/btrfs-volume.js';
import { GenerationsRoot, type GenerationsRootDeps } from './generations-root.js';
import { gc } from './gc.js';
import { adopt, init } from './init-adopt.js';
import { rollback } from './rollback.js';
import { upgrade } from './upgrade.js';
import { collectGenerationsInventory } from './inventory.js';

const FSTAB = 'UUID=x / btrfs subvol=CURRENT_SNAPSHOTS_PATH/@,ro,noatime 0 0\nUUID=x /var/log btrfs subvol=/commons/@var@log,rw 0 0\n';

function manager(v: BtrfsVolume, extra: Partial<GenerationsRootDeps> = {}): GenerationsRoot {
  const [cmd, pre] = agentCommand();
  return new GenerationsRoot({ root: v.root, sys: new NodeSystemAdapter(), log: silentLogger, selfCommand: [cmd, ...pre], ...extra });
}

/** A volume initialised from a BusyBox tarball; returns the first generation's id. */
async function initVolume(t: TestContext, opts: { fallbacks?: number } = {}) {
  const v = await makeBtrfsVolume(t);
  const tar = makeRootfsTarball(v.scratch, 'base', 'base');
  const m = manager(v);
  const inv = await init(m, { volume: v.volume, commons: ['@var@log', '@home'], fstab: FSTAB, fallbacks: opts.fallbacks, image: { kind: 'tarball', path: tar.slice(v.root.length), sha256: sha256File(tar) } });
  return { v, m, first: inv.current! };
}

const slotsOf = (v: BtrfsVolume) => [0, 1, 2, 3].map((i) => readlinkSync(join(v.host, 'current', String(i))).replace('../../snapshots/', ''));
const isRo = (path: string) => execArgv(['btrfs', 'property', 'get', '-ts', path, 'ro']).trim() === 'ro=true';
const mountsUnder = (dir: string) => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.split(' ')[4]?.startsWith(dir));

/** The invariant every test (and every crash) must leave: current resolves to a complete read-only generation. */
function assertConsistent(v: BtrfsVolume): string {
  const target = readlinkSync(join(v.host, 'current'));
  assert.match(target, /^\.\/links\/[^/]+$/);
  const g0 = readlinkSync(join(v.host, 'current/0')).replace('../../snapshots/', '');
  assert.ok(isRo(join(v.host, 'snapshots', g0, '@')), `current/0 (${g0}) must be read-only`);
  assert.equal(lstatSync(join(v.host, 'snapshots', g0, '@')).ino, 256, 'current/0/@ must be a subvolume');
  assert.ok(existsSync(join(v.host, 'current/0/@/bin/busybox')), 'current/0/@ must hold the root');
  assert.equal(existsSync(join(v.host, 'next/current')), false, 'no next/current left');
  return g0;
}

describe('generations on a real btrfs (loop device)', { concurrency: false }, () => {
  it('init refuses an image whose sha256 does not match and leaves the volume untouched', async (t) => {
    const v = await makeBtrfsVolume(t);
    const tar = makeRootfsTarball(v.scratch, 'base', 'base');
    const before = listVolume(v.host);
    await assert.rejects(init(manager(v), { volume: v.volume, commons: ['@home'], fstab: FSTAB, image: { kind: 'tarball', path: tar.slice(v.root.length), sha256: '0'.repeat(64) } }), /has sha256 [0-9a-f]{64}, expected 0{64}; nothing was changed/);
    assert.equal(listVolume(v.host), before);
  });

  it('init lays out the wiki layout: snapshots/<id>/@ read-only, links 0..3, current, next, commons, fstab', async (t) => {
    const { v, m, first } = await initVolume(t);
    assert.match(first, /^\d{14}[A-Za-z]{8}$/);
    assert.deepEqual(slotsOf(v), [first, first, first, first]);
    assert.ok(isRo(join(v.host, 'snapshots', first, '@')));
    assert.equal(realpathSync(join(v.host, 'current/0/@')), join(v.host, 'snapshots', first, '@'));
    assert.equal(lstatSync(join(v.host, 'commons/@var@log')).ino, 256);
    assert.ok(lstatSync(join(v.host, 'next')).isDirectory());
    assert.equal(readFileSync(join(v.host, 'current/0/@/etc/fstab'), 'utf8'), FSTAB.replace('CURRENT_SNAPSHOTS_PATH', `/snapshots/${first}`));
    assert.equal(readFileSync(join(v.host, 'current/0/@/etc/marker'), 'utf8'), 'base\n');
    const inv = await collectGenerationsInventory(manager(v));
    assert.ok(inv);
    assert.equal(inv.current, first);
    assert.equal(inv.lastGood, first);
    assert.deepEqual(inv.generations.map((g) => [g.id, g.status, g.current, g.slot, g.readOnly, g.complete]), [[first, 'good', true, 0, true, true]]);
    await assert.rejects(init(m, { volume: v.volume, commons: [], image: { kind: 'empty' } }), /already has a layout.*adopt/);
  });

  it('upgrades by commands in a chroot with /proc and /dev mounted privately; the new root is read-only and current; nothing leaks', async (t) => {
    const { v, m, first } = await initVolume(t);
    const r = await upgrade(m, {
      from: { kind: 'commands' },
      commands: [
        ['/bin/busybox', 'touch', '/etc/upgraded'],
        ['/bin/busybox', 'cp', '/proc/version', '/etc/proc-version'],
        ['/bin/busybox', 'dd', 'if=/dev/zero', 'of=/etc/zeros', 'bs=1', 'count=3'],
      ],
      trial: true,
    });
    assert.equal(r.from, first);
    assert.deepEqual(slotsOf(v), [r.id, first, first, first]);
    const g = join(v.host, 'snapshots', r.id, '@');
    assert.ok(existsSync(join(g, 'etc/upgraded')));
    assert.match(readFileSync(join(g, 'etc/proc-version'), 'utf8'), /^Linux version/);
    assert.equal(readFileSync(join(g, 'etc/zeros')).length, 3);
    assert.equal(existsSync(join(v.host, 'snapshots', first, '@/etc/upgraded')), false, 'the old generation is untouched');
    assert.match(readFileSync(join(g, 'etc/fstab'), 'utf8'), new RegExp(`subvol=/snapshots/${r.id}/@`));
    assert.throws(() => writeFileSync(join(g, 'etc/x'), 'x'), /EROFS/);
    assert.deepEqual(mountsUnder(v.root).map((l) => l.split(' ')[4]), [v.host], 'no proc/sys/dev mount leaked into the host');
    assertConsistent(v);
    const inv = r.inventory;
    assert.equal(inv.current, r.id);
    assert.equal(inv.trial?.id, r.id);
    assert.equal(inv.generations.find((x) => x.id === r.id)?.status, 'trial');
    assert.equal(inv.generations.find((x) => x.id === first)?.slot, 1);
    assert.equal(existsSync(m.store.journal.path), false);
  });

  it('a failing command changes nothing: the new snapshot is removed and current stays', async (t) => {
    const { v, m } = await initVolume(t);
    const before = listVolume(v.host);
    await assert.rejects(upgrade(m, { from: { kind: 'commands' }, commands: [['/bin/busybox', 'touch', '/etc/a'], ['/bin/busybox', 'false']], trial: false }), /commands\[1\] \(\/bin\/busybox false\) failed.*exit 1.*nothing was switched/);
    assert.equal(listVolume(v.host), before);
    assert.equal(existsSync(m.store.journal.path), false);
  });

  it('a cancelled upgrade (job cancel or timeout) kills the running command and changes nothing', async (t) => {
    const { v, m } = await initVolume(t);
    const before = listVolume(v.host);
    const ac = new AbortController();
    const sleeping = () => execArgv(['ps', '-eo', 'args']).split('\n').some((l) => l.trim() === '/bin/busybox sleep 301');
    const p = upgrade(m, { from: { kind: 'commands' }, commands: [['/bin/busybox', 'sleep', '301']], trial: false }, undefined, ac.signal);
    const until = Date.now() + 15_000;
    while (Date.now() < until && !sleeping()) await new Promise((ok) => setTimeout(ok, 100));
    assert.ok(sleeping(), 'the command runs');
    ac.abort();
    await assert.rejects(p, /abort/i);
    const gone = Date.now() + 10_000;
    while (Date.now() < gone && sleeping()) await new Promise((ok) => setTimeout(ok, 100));
    assert.equal(sleeping(), false, 'the command was killed');
    assert.equal(listVolume(v.host), before);
    assert.equal(existsSync(m.store.journal.path), false);
  });

  it('upgrades from a tarball (path and http URL) verified by sha256; a mismatch is refused and changes nothing', async (t) => {
    const { v, m, first } = await initVolume(t);
    const tar = makeRootfsTarball(v.scratch, 'next', 'next-image');
    const before = listVolume(v.host);
    const bad = '0'.repeat(64);
    // A device path reaching the host through an absolute symlink resolves inside --root (where the file is not).
    symlinkSync('/', join(v.scratch, 'host'));
    await assert.rejects(upgrade(m, { from: { kind: 'tarball', path: `/scratch/host${tar}`, sha256: sha256File(tar) }, commands: [], trial: false }), /cannot be read/);
    symlinkSync('next.tar.gz', join(v.scratch, 'link.tar.gz'));
    await assert.rejects(upgrade(m, { from: { kind: 'tarball', path: '/scratch/link.tar.gz', sha256: sha256File(tar) }, commands: [], trial: false }), /path: \/scratch\/link.tar.gz is a symlink/);
    assert.equal(listVolume(v.host), before);
    await assert.rejects(upgrade(m, { from: { kind: 'tarball', path: tar.slice(v.root.length), sha256: bad }, commands: [], trial: false }), /has sha256 [0-9a-f]{64}, expected 0{64}; nothing was changed/);
    assert.equal(listVolume(v.host), before);
    const r = await upgrade(m, { from: { kind: 'tarball', path: tar.slice(v.root.length), sha256: sha256File(tar) }, commands: [['/bin/busybox', 'touch', '/etc/after-tar']], trial: false });
    assert.equal(readFileSync(join(v.host, 'current/0/@/etc/marker'), 'utf8'), 'next-image\n');
    assert.ok(existsSync(join(v.host, 'current/0/@/etc/after-tar')));
    assert.deepEqual(slotsOf(v), [r.id, first, first, first]);
    assert.equal(r.inventory.generations.find((g) => g.id === r.id)?.status, 'good');

    const server = createServer((req, res) => {
      if (req.url !== '/image.tar.gz') return res.writeHead(404).end();
      res.writeHead(200);
      createReadStream(tar).pipe(res);
    });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    t.after(() => server.close());
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/image.tar.gz`;
    const before2 = listVolume(v.host);
    await assert.rejects(upgrade(m, { from: { kind: 'tarball', url, sha256: bad }, commands: [], trial: false }), /expected 0{64}; nothing was changed/);
    assert.equal(listVolume(v.host), before2);
    assert.deepEqual(execArgv(['ls', '-A', m.store.downloadsDir]).trim(), '', 'the rejected download is removed');
    // What a crash between the download and the journal leaves behind goes with the next upgrade.
    writeFileSync(join(m.store.downloadsDir, 'crashed.part'), 'partial');
    const r2 = await upgrade(m, { from: { kind: 'tarball', url, sha256: sha256File(tar) }, commands: [], trial: false });
    assert.deepEqual(slotsOf(v), [r2.id, r.id, first, first]);
    assert.deepEqual(execArgv(['ls', '-A', m.store.downloadsDir]).trim(), '');
  });

  it('upgrades from a btrfs send stream; a mismatch is refused and changes nothing', async (t) => {
    const { v, m, first } = await initVolume(t);
    // A stream made the way a build host would: a read-only subvolume with the image, sent to a file.
    const img = join(v.host, 'build-img');
    execArgv(['btrfs', 'subvolume', 'create', img]);
    execArgv(['tar', '-x', '-z', '-f', makeRootfsTarball(v.scratch, 'sent', 'from-stream'), '-C', img]);
    execArgv(['btrfs', 'property', 'set', '-ts', img, 'ro', 'true']);
    const stream = join(v.scratch, 'image.btrfs');
    execArgv(['btrfs', 'send', '-q', '-f', stream, img]);
    execArgv(['btrfs', 'subvolume', 'delete', img]);
    const before = listVolume(v.host);
    await assert.rejects(upgrade(m, { from: { kind: 'sendStream', path: stream.slice(v.root.length), sha256: 'f'.repeat(64) }, commands: [], trial: false }), /expected f{64}; nothing was changed/);
    assert.equal(listVolume(v.host), before);
    const r = await upgrade(m, { from: { kind: 'sendStream', path: stream.slice(v.root.length), sha256: sha256File(stream) }, commands: [], trial: false });
    assert.equal(readFileSync(join(v.host, 'current/0/@/etc/marker'), 'utf8'), 'from-stream\n');
    assert.match(readFileSync(join(v.host, 'current/0/@/etc/fstab'), 'utf8'), new RegExp(`/snapshots/${r.id}/@`));
    assert.deepEqual(execArgv(['ls', '-A', join(v.host, 'snapshots', r.id)]).trim(), '@', 'the received subvolume is gone, only @ stays');
    assert.deepEqual(slotsOf(v), [r.id, first, first, first]);
    assertConsistent(v);
  });

  it('rolls back to the previous and to a named generation, and refuses unknown or incomplete ones', async (t) => {
    const { v, m, first } = await initVolume(t);
    const cmd = (name: string) => ({ from: { kind: 'commands' as const }, commands: [['/bin/busybox', 'touch', `/etc/${name}`]], trial: false });
    const a = (await upgrade(m, cmd('a'))).id;
    const b = (await upgrade(m, cmd('b'))).id;
    assert.deepEqual(slotsOf(v), [b, a, first, first]);
    let inv = await rollback(m, { reason: 'operator' });
    assert.equal(inv.current, a);
    assert.deepEqual(slotsOf(v), [a, b, first, first]);
    inv = await rollback(m, { to: first });
    assert.equal(inv.current, first);
    assert.deepEqual(slotsOf(v), [first, a, b, b]);
    assert.equal(realpathSync(join(v.host, 'current/0/@')), join(v.host, 'snapshots', first, '@'));
    await assert.rejects(rollback(m, { to: 'nope' }), /to: generation nope does not exist/);
    mkdirSync(join(v.host, 'snapshots/half'));
    execArgv(['btrfs', 'subvolume', 'create', join(v.host, 'snapshots/half/@')]);
    await assert.rejects(rollback(m, { to: 'half' }), /to: generation half is not complete/);
    assertConsistent(v);
  });

  it('GC keeps current, its slots, last-good and anything mounted; deletes half-made and unreferenced generations', async (t) => {
    const { v, m, first } = await initVolume(t, { fallbacks: 1 });
    const cmd = { from: { kind: 'commands' as const }, commands: [], trial: false };
    const a = (await upgrade(m, cmd)).id;
    const b = (await upgrade(m, cmd)).id;
    const c = (await upgrade(m, cmd)).id;
    // links have 0..1 now: c, b. `first` and `a` are unreferenced; last-good is c (no trial).
    assert.deepEqual([0, 1].map((i) => readlinkSync(join(v.host, 'current', String(i))).replace('../../snapshots/', '')), [c, b]);
    // Half-made generations a crash could leave: a writable @, and an empty directory.
    mkdirSync(join(v.host, 'snapshots/20990101000000halfmade'));
    execArgv(['btrfs', 'subvolume', 'create', join(v.host, 'snapshots/20990101000000halfmade/@')]);
    mkdirSync(join(v.host, 'snapshots/20990101000000emptydir'));
    // `a` is mounted elsewhere (the way a boot would mount it): it must survive.
    const mnt = join(v.scratch, 'mnt-a');
    mkdirSync(mnt);
    execArgv(['mount', '-t', 'btrfs', '-o', `ro,subvol=snapshots/${a}/@`, v.device, mnt]);
    let r = await gc(m);
    assert.deepEqual(r.deleted.sort(), [first, '20990101000000emptydir', '20990101000000halfmade'].sort());
    assert.deepEqual(r.kept.find((k) => k.id === a)?.why, ['mounted']);
    assert.deepEqual(r.kept.find((k) => k.id === c)?.why, ['current', 'last-known-good']);
    assert.ok(existsSync(join(v.host, 'snapshots', a, '@/bin/busybox')));
    assert.deepEqual(execArgv(['ls', join(v.host, 'links')]).trim().split('\n').length, 1, 'only the current links directory stays');
    execArgv(['umount', mnt]);
    r = await gc(m);
    assert.deepEqual(r.deleted, [a]);
    assert.deepEqual(execArgv(['ls', join(v.host, 'snapshots')]).trim().split('\n').sort(), [b, c].sort());
    // A trial and its way back are protected too, and so is last-known-good: back to b (c stays
    // last-known-good), then a trial upgrade from b pushes c out of the links.
    await rollback(m, { to: b });
    const d = (await upgrade(m, { ...cmd, trial: true })).id;
    r = await gc(m);
    assert.deepEqual(r.deleted, []);
    assert.deepEqual(r.kept.find((k) => k.id === c)?.why, ['last-known-good']);
    assert.deepEqual(r.kept.find((k) => k.id === b)?.why, ['slot 1', 'trial fallback']);
    assert.deepEqual(r.kept.find((k) => k.id === d)?.why, ['current', 'trial']);
    assertConsistent(v);
  });

  it('adopts a layout built with the wiki\'s exact commands without changing it, then upgrades it', async (t) => {
    const v = await makeBtrfsVolume(t);
    const mnt = v.host;
    const gen = '20210411212549sdBXyLxg';
    const links = '20210411213742qwrXAJBz';
    // The wiki's commands, in order (as argv).
    execArgv(['mkdir', `${mnt}/next`]);
    execArgv(['mkdir', `${mnt}/commons`]);
    for (const c of ['@var@tmp', '@var@cache', '@var@log', '@home']) execArgv(['btrfs', 'subvolume', 'create', `${mnt}/commons/${c}`]);
    execArgv(['mkdir', `${mnt}/snapshots`]);
    execArgv(['mkdir', `${mnt}/links`]);
    execArgv(['mkdir', `${mnt}/snapshots/${gen}`]);
    execArgv(['btrfs', 'subvolume', 'create', `${mnt}/snapshots/${gen}/@`]);
    execArgv(['mkdir', `${mnt}/links/${links}`]);
    for (const i of [0, 1, 2, 3]) execArgv(['ln', '-s', `../../snapshots/${gen}`, `${mnt}/links/${links}/${i}`]);
    execArgv(['ln', '-s', `./links/${links}`, `${mnt}/current`]);
    writeFileSync(`${mnt}/fstab`, FSTAB);
    // (the wiki's apk --initdb add alpine-base: a BusyBox root here)
    execArgv(['tar', '-x', '-z', '-f', makeRootfsTarball(v.scratch, 'wiki', 'wiki'), '-C', `${mnt}/snapshots/${gen}/@`]);
    execArgv(['btrfs', 'property', 'set', '-ts', `${mnt}/snapshots/${gen}/@`, 'ro', 'true']);
    const before = listVolume(mnt);
    const m = manager(v);
    const inv = await adopt(m, { volume: v.volume });
    assert.equal(listVolume(mnt), before, 'adopt changed nothing on the volume');
    assert.equal(inv.current, gen);
    assert.equal(inv.lastGood, gen);
    assert.equal(inv.generations[0]?.createdAtMs, Date.UTC(2021, 3, 11, 21, 25, 49));
    assert.equal(m.config()?.fallbacks, 3);
    const r = await upgrade(m, { from: { kind: 'commands' }, commands: [['/bin/busybox', 'touch', '/etc/x']], trial: false });
    assert.deepEqual(slotsOf(v), [r.id, gen, gen, gen]);
    assertConsistent(v);
  });

  it('adopt refuses a volume that is not the wiki layout, naming what is wrong', async (t) => {
    const v = await makeBtrfsVolume(t);
    await assert.rejects(adopt(manager(v), { volume: v.volume }), /volume: \/vol\/root does not hold the wiki's layout: .*current is missing/);
    await assert.rejects(adopt(manager(v), { volume: '/nowhere' }), /volume: \/nowhere is not a mounted btrfs filesystem/);
  });

  it('knows the booted generation from a real mountinfo captured in a mount namespace, and GC never deletes it', async (t) => {
    const { v, m, first } = await initVolume(t, { fallbacks: 0 });
    const a = (await upgrade(m, { from: { kind: 'commands' }, commands: [], trial: false })).id;
    // Boot `first` the way the boot entry does (subvol=current/N/@ resolves through the links):
    // mount it, chroot into it in a private mount + pid namespace and read its mountinfo.
    const bootDir = join(v.scratch, 'boot');
    mkdirSync(bootDir);
    execArgv(['mount', '-t', 'btrfs', '-o', `ro,subvol=snapshots/${first}/@`, v.device, bootDir]);
    const mi = execArgv(['unshare', '--mount', '--propagation', 'private', '--pid', '--fork', '--mount-proc', `--root=${bootDir}`, '/bin/busybox', 'cat', '/proc/self/mountinfo']);
    execArgv(['umount', bootDir]);
    const file = join(v.scratch, 'mountinfo');
    writeFileSync(file, mi);
    assert.match(mi, new RegExp(`/snapshots/${first}/@ / `));
    const booted = manager(v, { mountinfoPath: file });
    const inv = (await booted.inventory())!;
    assert.equal(inv.booted, first);
    assert.equal(inv.current, a);
    // In creation order (two generations made within one second have tied id timestamps).
    assert.deepEqual(inv.generations.map((g) => [g.id, g.booted, g.current]), [
      [first, true, false],
      [a, false, true],
    ]);
    const r = await gc(booted);
    assert.ok(r.kept.find((k) => k.id === first)?.why.includes('booted'));
    assert.ok(existsSync(join(v.host, 'snapshots', first, '@')));
    // Without a readable mountinfo the booted generation is unknown: GC refuses and deletes nothing.
    await upgrade(m, { from: { kind: 'commands' }, commands: [], trial: false });
    const before = listVolume(v.host);
    await assert.rejects(gc(manager(v, { mountinfoPath: join(v.scratch, 'no-such-mountinfo') })), /cannot read .*no-such-mountinfo: GC cannot tell which generations are booted or mounted; nothing was deleted/);
    assert.equal(listVolume(v.host), before);
  });
});
