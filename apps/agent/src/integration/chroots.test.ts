import assert from 'node:assert/strict';
import { existsSync, readFileSync, readlinkSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseMountinfo } from '../capabilities/generations/mountinfo.js';
import { type ChrootWorld, chrootWorld } from '../testing/chroot-world.js';

/**
 * The chroots capability as root, every mount inside a private mount namespace (chroot-world.ts):
 * the host's mount table is compared before and after each test.
 */

/** The test process's (the host's) mount points below a directory: other tests on the machine mount elsewhere. */
const hostMountsBelow = (dir: string) => parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8')).map((m) => m.mountPoint).filter((m) => m.startsWith(`${dir}/`));

function spec(w: ChrootWorld, path: string, extra: Record<string, unknown> = {}) {
  return {
    path,
    release: '3.20',
    arch: 'x86_64',
    source: { path: '/srv/rootfs.tar.gz', sha256: w.rootfs.sha256 },
    hostname: 'alpine-box',
    packages: ['curl'],
    users: [{ name: 'admin', uid: 1000, gid: 100 }],
    groups: [{ name: 'users', gid: 100, members: ['admin'] }],
    services: ['ticker'],
    boot: { kind: 'merlin', jffs: '/jffs', disk: '/tmp/mnt/sda1' },
    ...extra,
  };
}

/** Pids whose root is the chroot (its processes). */
function processesIn(host: string): number[] {
  const out: number[] = [];
  for (const p of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      const r = readlinkSync(`/proc/${p}/root`);
      if (r === host || r.startsWith(`${host}/`)) out.push(Number(p));
    } catch {}
  }
  return out;
}

const ok = (r: { code: number | null; stdout: string; stderr: string }) => assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);

describe('chroots capability (private mount namespace, busybox root filesystem)', () => {
  it('installs, maps accounts, mounts, starts OpenRC services inside, enters, and a second apply changes nothing', async (t) => {
    const w = chrootWorld(t);
    const path = '/x/my alpine';
    const s = { alpine: spec(w, path) };
    const plan = await w.agent('plan', s);
    assert.equal(plan.code, 2, plan.stdout + plan.stderr);
    assert.match(plan.stdout, /install Alpine \(x86_64\)/);
    ok(await w.agent('apply', s));

    const host = w.host(path);
    assert.equal(readFileSync(join(host, 'etc/hostname'), 'utf8'), 'alpine-box\n');
    assert.equal(readFileSync(join(host, 'etc/resolv.conf'), 'utf8'), 'nameserver 192.0.2.53\n');
    assert.match(readFileSync(join(host, 'etc/passwd'), 'utf8'), /^admin:x:1000:100:admin:\/home\/admin:\/bin\/sh$/m);
    assert.match(readFileSync(join(host, 'etc/group'), 'utf8'), /^users:x:100:admin$/m);
    assert.match(readFileSync(join(host, 'lib/apk/db/installed'), 'utf8'), /^P:curl$/m);
    assert.deepEqual(w.mountsBelow(path).map((m) => m.slice(host.length)).filter((m) => !m.startsWith('/sys/') && !m.startsWith('/dev/')), ['/proc', '/sys', '/dev', '/run']);
    // OpenRC ran the default runlevel only, after softlevel existed; the service runs chrooted.
    assert.equal(readFileSync(join(host, 'var/log/openrc.calls'), 'utf8'), 'default\n');
    // /run is the chroot's own tmpfs, seen only in the namespace.
    const pid = Number(w.sh(['cat', join(host, 'run/ticker.pid')]).stdout);
    assert.equal(readlinkSync(`/proc/${pid}/root`), host);
    assert.deepEqual(processesIn(host), [pid], 'the service is the chroot\'s only process');
    assert.equal(w.sh(['test', '-e', join(host, 'run/openrc/softlevel')]).code, 0);
    assert.ok(!existsSync(join(host, 'run/openrc')), 'outside the namespace, /run of the chroot is the empty directory');
    // The host's mount table is as it was: everything stayed in the namespace.
    assert.deepEqual(hostMountsBelow(w.root), []);
    assert.ok(w.mountsBelow(path).length >= 4, 'while the namespace has them');
    // The Merlin hooks are marked blocks.
    const postMount = readFileSync(w.host('/jffs/scripts/post-mount'), 'utf8');
    assert.match(postMount, /^#!\/bin\/sh\n# >>> ibex-chroot alpine >>>\nif \[ "\$1" = '\/tmp\/mnt\/sda1' \]; then .* 'chroot' 'up' '\/x\/my alpine' '--root' .*; fi\n# <<< ibex-chroot alpine <<<\n$/);

    const again = await w.agent('apply', s);
    ok(again);
    const plan2 = await w.agent('plan', s);
    assert.equal(plan2.code, 0, `a second plan must be empty:\n${plan2.stdout}`);
    assert.equal(readFileSync(join(host, 'var/log/openrc.calls'), 'utf8'), 'default\n', 'OpenRC is not run again');

    const enter = await w.agentRaw(['chroot', 'enter', 'alpine', '--root', w.root, '--', 'sh', '-c', 'echo "$(hostname -F /etc/hostname 2>/dev/null; cat /etc/hostname) uid=$(id -u admin) $HOME"']);
    ok(enter);
    assert.equal(enter.stdout.trim(), 'alpine-box uid=1000 /root');
    // The generated enter-chroot script does the same.
    const script = w.sh([join(host, 'enter-chroot'), 'cat', '/etc/alpine-release']);
    assert.equal(script.stdout.trim(), '3.20.0', script.stderr);
  });

  it('after a reboot the mounts are gone, and the post-mount hook brings them and the services back', async (t) => {
    const w = chrootWorld(t);
    const s = { alpine: spec(w, '/x/alpine') };
    ok(await w.agent('apply', s));
    w.ns.reboot();
    assert.deepEqual(w.mountsBelow('/x/alpine'), []);
    const plan = await w.agent('plan', s);
    assert.equal(plan.code, 2);
    assert.match(plan.stdout, /mount proc on \/proc/);
    // Another disk mounted: the hook does nothing.
    const other = w.sh(['/bin/busybox', 'sh', w.host('/jffs/scripts/post-mount'), '/tmp/mnt/sdb1']);
    assert.equal(other.code, 0, other.stderr);
    assert.deepEqual(w.mountsBelow('/x/alpine'), []);
    const hook = w.sh(['/bin/busybox', 'sh', w.host('/jffs/scripts/post-mount'), '/tmp/mnt/sda1']);
    assert.equal(hook.code, 0, hook.stderr);
    assert.ok(w.mountsBelow('/x/alpine').includes(w.host('/x/alpine/run')));
    assert.equal(processesIn(w.host('/x/alpine')).length, 1, 'the ticker runs again');
    const plan2 = await w.agent('plan', s);
    assert.equal(plan2.code, 0, plan2.stdout);
    // services-stop (before a reboot) takes it down cleanly.
    const stop = w.sh(['/bin/busybox', 'sh', w.host('/jffs/scripts/services-stop')]);
    assert.equal(stop.code, 0, stop.stderr);
    assert.deepEqual(w.mountsBelow('/x/alpine'), []);
    assert.deepEqual(processesIn(w.host('/x/alpine')), []);
  });

  it('teardown refuses while a process holds a mount busy, leaves the sibling /x/alpine-2 alone, and finishes once it is gone', async (t) => {
    const w = chrootWorld(t);
    const s = { alpine: spec(w, '/x/alpine', { boot: { kind: 'none' } }), two: spec(w, '/x/alpine-2', { boot: { kind: 'none' } }) };
    ok(await w.agent('apply', s));
    const siblingMounts = w.mountsBelow('/x/alpine-2');
    assert.ok(siblingMounts.length >= 4);
    // A host shell with its working directory in the chroot's /dev (the research's EBUSY case).
    const holder = w.sh(['sh', '-c', `cd '${w.host('/x/alpine/dev')}' && (sleep 1000 </dev/null >/dev/null 2>&1 &) && echo started`]);
    assert.equal(holder.code, 0, holder.stderr);
    const absent = { alpine: { path: '/x/alpine', ensure: 'absent' }, two: s.two };
    const r = await w.agent('apply', absent);
    assert.notEqual(r.code, 0);
    assert.match(r.stdout + r.stderr, /cannot unmount everything below .*\/x\/alpine: still mounted .*\/x\/alpine\/dev.*pid \d+ \(sleep\): its working directory is .*Nothing was deleted/s);
    assert.ok(existsSync(w.host('/x/alpine/etc/passwd')), 'nothing was deleted');
    assert.ok(existsSync('/dev/null'), 'the host /dev is intact');
    assert.deepEqual(processesIn(w.host('/x/alpine')), [], 'the chroot\'s own processes were stopped');
    for (const p of w.ns.members()) {
      try {
        if (readlinkSync(`/proc/${p}/cwd`).startsWith(w.host('/x/alpine/dev'))) process.kill(p, 'SIGKILL');
      } catch {}
    }
    ok(await w.agent('apply', absent));
    assert.ok(!existsSync(w.host('/x/alpine')));
    assert.deepEqual(w.mountsBelow('/x/alpine'), []);
    assert.deepEqual(w.mountsBelow('/x/alpine-2'), siblingMounts, 'the sibling keeps its mounts');
    assert.equal(processesIn(w.host('/x/alpine-2')).length, 1, 'the sibling keeps its service');
    assert.ok(existsSync('/dev/null'));
    const plan = await w.agent('plan', absent);
    assert.equal(plan.code, 0, plan.stdout);
  });

  it('a wrong checksum is refused before anything is written', async (t) => {
    const w = chrootWorld(t);
    const s = { alpine: spec(w, '/x/alpine', { source: { path: '/srv/rootfs.tar.gz', sha256: 'b'.repeat(64) } }) };
    const r = await w.agent('apply', s);
    assert.notEqual(r.code, 0);
    assert.match(r.stdout + r.stderr, new RegExp(`has sha256 ${w.rootfs.sha256}, expected ${'b'.repeat(64)}; nothing was changed`));
    assert.ok(!existsSync(w.host('/x')), 'no chroot, no staging directory');
    assert.ok(!existsSync(w.host('/jffs')), 'no hooks');
    assert.deepEqual(w.mountsBelow('/x'), []);
  });

  it('a crash in the middle of an install is undone at the next start, then the install completes', async (t) => {
    const w = chrootWorld(t);
    const s = { alpine: spec(w, '/x/alpine') };
    const crash = await w.agent('apply', s, { IBEX_AGENT_FAILPOINTS: 'chroot-extracted' });
    assert.equal(crash.code, null, crash.stderr);
    assert.ok(existsSync(w.host('/x/alpine.ibex-installing/etc/passwd')), 'the staging directory was left');
    assert.ok(!existsSync(w.host('/x/alpine')));
    const r = await w.agent('apply', s);
    ok(r);
    assert.match(r.stderr, /reverting an apply that was interrupted/);
    assert.ok(!existsSync(w.host('/x/alpine.ibex-installing')));
    assert.ok(existsSync(w.host('/x/alpine/.ibex-chroot.json')));
    assert.equal((await w.agent('plan', s)).code, 0);
  });
});

describe('chroots capability: a crash with live mounts', () => {
  it('an agent killed right after the first mount of a fresh install unmounts and removes it at the next start', async (t) => {
    const w = chrootWorld(t);
    const s = { alpine: spec(w, '/x/alpine') };
    const crash = await w.agent('apply', s, { IBEX_AGENT_FAILPOINTS: 'chroot-mounted' });
    assert.equal(crash.code, null, crash.stderr);
    assert.deepEqual(w.mountsBelow('/x/alpine'), [w.host('/x/alpine/proc')], 'killed with /proc mounted in the chroot');
    const r = await w.agent('apply', s);
    ok(r);
    assert.match(r.stderr, /reverting an apply that was interrupted/);
    assert.match(r.stderr, /step section=chroots step="chroot alpine: install Alpine/, 'the half-made chroot was removed and installed again');
    assert.equal((await w.agent('plan', s)).code, 0);
    assert.equal(w.mountsBelow('/x/alpine').filter((m) => m === w.host('/x/alpine/proc')).length, 1, 'one /proc, not a stale one beneath');
  });
});

describe('chroots capability: a crash in the middle of a teardown', () => {
  it('an agent killed after unmounting, before deleting, leaves a consistent chroot that the next apply finishes removing', async (t) => {
    const w = chrootWorld(t);
    ok(await w.agent('apply', { alpine: spec(w, '/x/alpine') }));
    const absent = { alpine: { path: '/x/alpine', ensure: 'absent', boot: { kind: 'merlin', jffs: '/jffs', disk: '/tmp/mnt/sda1' } } };
    const crash = await w.agent('apply', absent, { IBEX_AGENT_FAILPOINTS: 'chroot-unmounted' });
    assert.equal(crash.code, null, crash.stderr);
    assert.deepEqual(w.mountsBelow('/x/alpine'), []);
    assert.ok(existsSync(w.host('/x/alpine/.ibex-chroot.json')), 'not deleted yet: still an Ibex chroot');
    const r = await w.agent('apply', absent);
    ok(r);
    // The start undid the interrupted apply (the hook blocks came back), then the apply removed everything.
    assert.match(r.stderr, /reverting an apply that was interrupted/);
    assert.ok(!existsSync(w.host('/x/alpine')));
    assert.doesNotMatch(readFileSync(w.host('/jffs/scripts/post-mount'), 'utf8'), /ibex-chroot/);
    assert.equal((await w.agent('plan', absent)).code, 0);
  });
});

describe('chroots capability: reconciling a chroot that is there', () => {
  it('drops a service and a package, adds then removes a read-only bind, switches the boot hooks, and each result plans empty', async (t) => {
    const w = chrootWorld(t);
    const { mkdirSync, writeFileSync } = await import('node:fs');
    // Entware's line in post-mount must survive everything the agent does there.
    mkdirSync(w.host('/jffs/scripts'), { recursive: true });
    writeFileSync(w.host('/jffs/scripts/post-mount'), '#!/bin/sh\n. /jffs/addons/amtm/mount-entware.mod # Added by amtm\n');
    mkdirSync(w.host('/srv/share'), { recursive: true });
    writeFileSync(w.host('/srv/share/hello.txt'), 'hello from the host\n');
    const base = spec(w, '/x/alpine');
    ok(await w.agent('apply', { alpine: base }));
    const host = w.host('/x/alpine');

    const withBind = { ...base, services: [], packages: [], mounts: [{ source: '/srv/share', target: '/mnt/share', readOnly: true }] };
    const plan = await w.agent('plan', { alpine: withBind });
    assert.match(plan.stdout, /OpenRC disable ticker; stop ticker;/);
    assert.match(plan.stdout, /apk del curl/);
    assert.match(plan.stdout, /mount \S+\/srv\/share on \/mnt\/share \(read-only\)/);
    ok(await w.agent('apply', { alpine: withBind }));
    assert.deepEqual(processesIn(host), [], 'the service stopped');
    assert.doesNotMatch(readFileSync(join(host, 'lib/apk/db/installed'), 'utf8'), /P:curl/);
    const read = await w.agentRaw(['chroot', 'enter', '/x/alpine', '--root', w.root, '--', 'cat', '/mnt/share/hello.txt']);
    assert.equal(read.stdout, 'hello from the host\n', read.stderr);
    const write = await w.agentRaw(['chroot', 'enter', '/x/alpine', '--root', w.root, '--', 'touch', '/mnt/share/new']);
    assert.notEqual(write.code, 0, 'the bind is read-only');
    assert.equal((await w.agent('plan', { alpine: withBind })).code, 0);

    const openrcBoot = { ...withBind, mounts: [], boot: { kind: 'openrc' } };
    ok(await w.agent('apply', { alpine: openrcBoot }));
    assert.ok(!w.mountsBelow('/x/alpine').includes(join(host, 'mnt/share')), 'the bind is unmounted');
    assert.equal(readFileSync(w.host('/jffs/scripts/post-mount'), 'utf8'), '#!/bin/sh\n. /jffs/addons/amtm/mount-entware.mod # Added by amtm\n', 'only the block went');
    assert.doesNotMatch(readFileSync(w.host('/jffs/scripts/services-stop'), 'utf8'), /ibex-chroot/);
    assert.match(readFileSync(w.host('/etc/local.d/ibex-chroot-alpine.stop'), 'utf8'), /^exec .*'chroot' 'down' '\/x\/alpine' '--root' /m);
    assert.equal((await w.agent('plan', { alpine: openrcBoot })).code, 0);

    const systemdBoot = { ...openrcBoot, boot: { kind: 'systemd' } };
    ok(await w.agent('apply', { alpine: systemdBoot }));
    assert.ok(!existsSync(w.host('/etc/local.d/ibex-chroot-alpine.start')));
    assert.match(readFileSync(w.host('/etc/systemd/system/ibex-chroot-alpine.service'), 'utf8'), /^ExecStart=".*" "chroot" "up" "\/x\/alpine" "--root" /m);
    assert.equal(readlinkSync(w.host('/etc/systemd/system/multi-user.target.wants/ibex-chroot-alpine.service')), '/etc/systemd/system/ibex-chroot-alpine.service');
    assert.equal((await w.agent('plan', { alpine: systemdBoot })).code, 0);
  });

  it('a bind target that is a symlink inside the chroot is refused: mount would follow it on the host', async (t) => {
    const w = chrootWorld(t);
    const { mkdirSync, symlinkSync } = await import('node:fs');
    mkdirSync(w.host('/srv/share'), { recursive: true });
    mkdirSync(w.host('/outside'), { recursive: true });
    const base = spec(w, '/x/alpine', { services: [], packages: [], boot: { kind: 'none' } });
    ok(await w.agent('apply', { alpine: base }));
    // An absolute link means the chroot's own /outside inside it, but /outside of the host to mount(8).
    symlinkSync(w.host('/outside'), w.host('/x/alpine/mnt'));
    const r = await w.agent('apply', { alpine: { ...base, mounts: [{ source: '/srv/share', target: '/mnt/share' }] } });
    assert.notEqual(r.code, 0);
    assert.match(r.stdout, /the mount target \/mnt\/share inside the chroot .* is or goes through a symlink/);
    assert.deepEqual(w.ns.mounts().map((m) => m.mountPoint).filter((m) => m.startsWith(w.host('/outside'))), []);
    assert.ok(!existsSync(w.host('/outside/share')));
  });

  it('a Merlin hook script that is a symlink is refused, and its target is left as it was', async (t) => {
    const w = chrootWorld(t);
    const { mkdirSync, symlinkSync, writeFileSync } = await import('node:fs');
    mkdirSync(w.host('/jffs/scripts'), { recursive: true });
    writeFileSync(w.host('/jffs/entware-post-mount'), '#!/bin/sh\necho entware\n');
    symlinkSync('/jffs/entware-post-mount', w.host('/jffs/scripts/post-mount'));
    const r = await w.agent('apply', { alpine: spec(w, '/x/alpine', { services: [], packages: [] }) });
    assert.notEqual(r.code, 0);
    assert.match(r.stdout, /\/jffs\/scripts\/post-mount is a symlink \(to \/jffs\/entware-post-mount\)/);
    assert.equal(readlinkSync(w.host('/jffs/scripts/post-mount')), '/jffs/entware-post-mount');
    assert.equal(readFileSync(w.host('/jffs/entware-post-mount'), 'utf8'), '#!/bin/sh\necho entware\n');
    assert.ok(!existsSync(w.host('/x/alpine')), 'the apply was undone');
  });

  it('a step that fails undoes the whole apply, a fresh install included', async (t) => {
    const w = chrootWorld(t);
    const s = { alpine: spec(w, '/x/alpine', { services: ['no-such-service'] }) };
    const r = await w.agent('apply', s);
    assert.notEqual(r.code, 0);
    assert.match(r.stdout, /has no OpenRC service no-such-service .*add the package that provides it/);
    assert.match(r.stdout, /the previous state was restored/);
    assert.ok(!existsSync(w.host('/x/alpine')));
    assert.deepEqual(w.mountsBelow('/x'), []);
    assert.ok(!existsSync(w.host('/jffs/scripts/post-mount')));
  });

  it('downloads the tarball from a URL, verified while it streams', async (t) => {
    const w = chrootWorld(t);
    const { createServer } = await import('node:http');
    const body = readFileSync(w.rootfs.tarball);
    const server = createServer((_, res) => res.end(body)).listen(0, '127.0.0.1');
    t.after(() => server.close());
    await new Promise((r) => server.once('listening', r));
    const port = (server.address() as { port: number }).port;
    const s = { alpine: spec(w, '/x/alpine', { source: { url: `http://127.0.0.1:${port}/rootfs.tar.gz`, sha256: w.rootfs.sha256 }, services: [], packages: [], boot: { kind: 'none' } }) };
    ok(await w.agent('apply', s));
    assert.ok(existsSync(w.host('/x/alpine/bin/busybox')));
    assert.equal((await w.agent('plan', s)).code, 0);
  });
});

describe('chroots capability: the disk it goes on', () => {
  // This machine's kernel has no vfat (nor exfat): there the planner's unit test (chroot-plan.test.ts) is what checks the refusal.
  const vfat = readFileSync('/proc/filesystems', 'utf8').split('\n').some((l) => l.trim().split(/\s+/).pop() === 'vfat');
  it('a vfat USB disk is refused with what to do, and nothing is written to it', { skip: vfat ? false : 'the kernel has no vfat filesystem' }, async (t) => {
    const w = chrootWorld(t);
    const { execFileSync } = await import('node:child_process');
    const { mkdirSync } = await import('node:fs');
    const img = w.host('/usb.img');
    execFileSync('truncate', ['-s', '32M', img]);
    execFileSync('mkfs.vfat', [img], { stdio: 'ignore' });
    mkdirSync(w.host('/tmp/mnt/sda1'), { recursive: true });
    const m = w.sh(['mount', '-o', 'loop', img, w.host('/tmp/mnt/sda1')]);
    assert.equal(m.code, 0, m.stderr);
    const loop = execFileSync('losetup', ['-j', img], { encoding: 'utf8' }).split(':')[0];
    t.after(() => {
      try {
        if (loop) execFileSync('losetup', ['-d', loop], { stdio: 'ignore' });
      } catch {}
    });
    const s = { alpine: spec(w, '/tmp/mnt/sda1/alpine') };
    const r = await w.agent('apply', s);
    assert.notEqual(r.code, 0);
    assert.match(r.stdout, /\/tmp\/mnt\/sda1\/alpine is on a vfat filesystem \(\/tmp\/mnt\/sda1\), which has no Unix owners or permissions: .* format the disk as ext4/);
    assert.deepEqual(w.sh(['ls', '-A', w.host('/tmp/mnt/sda1')]).stdout, '', 'nothing was written to the disk');
    assert.ok(!existsSync(w.host('/jffs')));
  });
});
