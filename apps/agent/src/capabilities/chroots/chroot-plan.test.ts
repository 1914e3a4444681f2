import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chrootsSectionSchema } from '@ibex/spec';
import { apkStaticArgv, tarArgv } from './chroot-install.js';
import { type ChrootActual, bootHooks, isAtOrBelow, mergeAccounts, planChroots, withBlock } from './chroot-plan.js';
import { mountsBelow } from './chroot-runtime.js';
import { parseMountinfo } from '../../system/mountinfo.js';

const SHA = 'c'.repeat(64);
const agent = { self: ['/opt/bin/ibex-agent'], flags: [] };
const section = (extra: Record<string, unknown> = {}) => chrootsSectionSchema.parse({ alpine: { path: '/tmp/mnt/sda1/alpine', source: { url: 'http://c/r.tar.gz', sha256: SHA }, ...extra } });
const absentActual = (extra: Partial<ChrootActual> = {}): ChrootActual => ({
  hostPath: '/tmp/mnt/sda1/alpine',
  state: 'absent',
  stagingLeft: false,
  fsType: 'ext4',
  diskMount: '/tmp/mnt/sda1',
  mounts: [],
  files: {},
  packages: null,
  services: {},
  hostResolv: 'nameserver 1.1.1.1\n',
  hooks: {},
  bindSources: [],
  ...extra,
});

describe('chroots planner', () => {
  it('a chroot on vfat or exFAT is refused with what to do', () => {
    for (const fsType of ['vfat', 'exfat']) {
      const steps = planChroots(section(), { chroots: { alpine: absentActual({ fsType }) }, agentCommand: agent });
      assert.equal(steps.length, 1);
      assert.equal(steps[0]!.action, 'refuse');
      assert.match((steps[0] as { reason: string }).reason, new RegExp(`${fsType} filesystem .* no Unix owners or permissions.*format the disk as ext4`));
    }
  });

  it('a directory that is not an Ibex chroot is never installed over nor deleted', () => {
    const present = planChroots(section(), { chroots: { alpine: absentActual({ state: 'foreign' }) }, agentCommand: agent });
    assert.deepEqual(present.map((s) => s.action), ['refuse']);
    const absent = planChroots(section({ ensure: 'absent' }), { chroots: { alpine: absentActual({ state: 'foreign', mounts: ['/tmp/mnt/sda1/alpine/proc'] }) }, agentCommand: agent });
    assert.deepEqual(absent.map((s) => s.action), ['refuse']);
  });

  it('an absent chroot is installed, then configured, mounted, started and hooked in that order', () => {
    const steps = planChroots(section({ services: ['sshd'], packages: ['openssh'], boot: { kind: 'merlin' } }), { chroots: { alpine: absentActual() }, agentCommand: agent });
    assert.deepEqual([...new Set(steps.map((s) => s.action))], ['install', 'write-file', 'mount', 'packages', 'services', 'hook']);
  });

  it('installs from a resolved artifact with its sha256; an unresolved reference (a console apply) is refused with what to do', () => {
    const artifact = { id: '3f1c2b9e-0d4a-4c57-9a8e-5b6f7e8d9c0a', name: 'alpine-root', version: '3.21.0', sha256: SHA, size: 42 };
    const steps = planChroots(section({ source: { artifact } }), { chroots: { alpine: absentActual() }, agentCommand: agent });
    assert.deepEqual(steps[0], { ...steps[0], action: 'install', source: { kind: 'tarball', artifact, sha256: SHA } });
    const ref = planChroots(section({ source: { artifact: 'alpine-root@3.21.0' } }), { chroots: { alpine: absentActual() }, agentCommand: agent });
    assert.deepEqual(ref.map((s) => s.action), ['refuse']);
    assert.match((ref[0] as { reason: string }).reason, /artifact alpine-root@3\.21\.0, which only the controller resolves .* apply it through the controller/);
  });

  it('an already absent chroot plans nothing', () => {
    assert.deepEqual(planChroots(section({ ensure: 'absent' }), { chroots: { alpine: absentActual() }, agentCommand: agent }), []);
  });
});

describe('boot hook blocks', () => {
  it('are inserted once, updated in place, and removed leaving what others wrote', () => {
    const entware = '#!/bin/sh\n. /jffs/addons/amtm/mount-entware.mod # Added by amtm\n';
    const once = withBlock(entware, 'alpine', 'echo up')!;
    assert.equal(once, `${entware}# >>> ibex-chroot alpine >>>\necho up\n# <<< ibex-chroot alpine <<<\n`);
    assert.equal(withBlock(once, 'alpine', 'echo up'), once, 'idempotent');
    const other = withBlock(once, 'alpine-2', 'echo two')!;
    const updated = withBlock(other, 'alpine', 'echo up again')!;
    assert.match(updated, /amtm[\s\S]*echo up again[\s\S]*echo two/);
    assert.equal(withBlock(withBlock(updated, 'alpine', null), 'alpine-2', null), entware);
    assert.equal(withBlock(null, 'alpine', 'x'), '#!/bin/sh\n# >>> ibex-chroot alpine >>>\nx\n# <<< ibex-chroot alpine <<<\n');
  });

  it('merlin hooks start on post-mount of the disk and stop on unmount and services-stop, quoting the path', () => {
    const h = bootHooks('alpine', "/tmp/mnt/my disk/it's", { kind: 'merlin', jffs: '/jffs' }, '/tmp/mnt/my disk', agent);
    assert.deepEqual(h.blocks.map((b) => b.file), ['/jffs/scripts/post-mount', '/jffs/scripts/unmount', '/jffs/scripts/services-stop']);
    assert.equal(h.blocks[0]!.block, `if [ "$1" = '/tmp/mnt/my disk' ]; then '/opt/bin/ibex-agent' 'chroot' 'up' '/tmp/mnt/my disk/it'\\''s'; fi`);
  });
});

describe('mount matching', () => {
  it('decodes escaped mount points and matches exact components only', () => {
    const info = [
      '30 27 0:40 / /x/alpine/proc rw - proc proc rw',
      '31 27 0:41 / /x/alpine-2/proc rw - proc proc rw',
      '32 27 0:42 / /x/my\\040alpine/dev rw - devtmpfs dev rw',
      '33 27 0:43 / /x/alpine rw - ext4 /dev/sda1 rw',
    ].join('\n');
    const m = parseMountinfo(info);
    assert.deepEqual(mountsBelow(m, '/x/alpine').map((e) => e.mountPoint), ['/x/alpine/proc', '/x/alpine']);
    assert.deepEqual(mountsBelow(m, '/x/my alpine').map((e) => e.mountPoint), ['/x/my alpine/dev']);
    assert.ok(!isAtOrBelow('/x/alpine-2', '/x/alpine'));
  });
});

describe('install command lines', () => {
  it('apk.static installs alpine-base into the staging root for the arch', () => {
    assert.deepEqual(apkStaticArgv('/data/backup/chroot-a.input', '/mnt/alpine.ibex-installing', 'aarch64'), [
      '/data/backup/chroot-a.input', '--arch', 'aarch64', '--root', '/mnt/alpine.ibex-installing', '--initdb', '--update-cache', '--no-progress', 'add', 'alpine-base',
    ]);
  });

  it('tar keeps numeric owners with GNU tar and picks the decompressor from the magic bytes', () => {
    assert.deepEqual(tarArgv('/f', '/d', Uint8Array.from([0x1f, 0x8b]), true), ['tar', '-x', '-z', '-p', '--numeric-owner', '-f', '/f', '-C', '/d']);
    assert.deepEqual(tarArgv('/f', '/d', Uint8Array.from([0xfd, 0x37, 0x7a, 0x58, 0x5a]), false), ['tar', '-x', '-J', '-p', '-f', '/f', '-C', '/d']);
  });
});

describe('accounts', () => {
  it('replaces a same-named line and appends new ones, keeping the rest', () => {
    const r = mergeAccounts('root:x:0:0:root:/root:/bin/ash\nadmin:x:1001:1001::/home/admin:/bin/ash\n', 'root:x:0:root\n', [{ name: 'admin', uid: 0, gid: 0, shell: '/bin/sh' }], [{ name: 'users', gid: 100, members: ['admin'] }]);
    assert.equal(r.passwd, 'root:x:0:0:root:/root:/bin/ash\nadmin:x:0:0:admin:/root:/bin/sh\n');
    assert.equal(r.group, 'root:x:0:root\nusers:x:100:admin\n');
  });
});
