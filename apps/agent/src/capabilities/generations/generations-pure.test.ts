import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { renderGrub, renderRefind, renderSystemdBoot } from './boot-entries.js';
import { chrootArgv } from './chroot-exec.js';
import { GenerationsStore, type Journal } from './generations-store.js';
import { idTimestampMs, isValidId, newId, parseCurrentTarget, parseSlotTarget, renderFstab, shiftSlots } from './layout.js';
import { bootedGeneration, mountedGenerations, parseMountinfo, volumeSource } from './mountinfo.js';

describe('generations layout (pure)', () => {
  it('makes the wiki ids: UTC timestamp + 8 letters, and reads the time back', () => {
    const id = newId(new Date(Date.UTC(2021, 3, 11, 21, 25, 49)));
    assert.match(id, /^20210411212549[A-Za-z]{8}$/);
    assert.equal(idTimestampMs(id), Date.UTC(2021, 3, 11, 21, 25, 49));
    assert.equal(idTimestampMs('hand-made'), null);
  });

  it('parses current and slot link targets, refusing anything that could escape', () => {
    assert.equal(parseCurrentTarget('./links/20210411213742qwrXAJBz'), '20210411213742qwrXAJBz');
    assert.equal(parseCurrentTarget('links/abc'), 'abc');
    assert.equal(parseCurrentTarget('./links/../etc'), undefined);
    assert.equal(parseCurrentTarget('/etc'), undefined);
    assert.equal(parseSlotTarget('../../snapshots/g1'), 'g1');
    assert.equal(parseSlotTarget('../../snapshots/..'), undefined);
    assert.equal(parseSlotTarget('../../../snapshots/g1'), undefined);
    assert.equal(isValidId('a/b'), false);
  });

  it('shifts the slots the wiki way: new at 0, old 0..2 at 1..3; the first generation fills all four', () => {
    assert.deepEqual(shiftSlots('g1', [], 3), ['g1', 'g1', 'g1', 'g1']);
    assert.deepEqual(shiftSlots('g2', ['g1', 'g1', 'g1', 'g1'], 3), ['g2', 'g1', 'g1', 'g1']);
    assert.deepEqual(shiftSlots('g5', ['g4', 'g3', 'g2', 'g1'], 3), ['g5', 'g4', 'g3', 'g2']);
    // A rollback to g3 puts it first and keeps the others in order.
    assert.deepEqual(shiftSlots('g3', ['g5', 'g4', 'g3', 'g2'], 3), ['g3', 'g5', 'g4', 'g2']);
    assert.deepEqual(shiftSlots('g2', ['g1'], 1), ['g2', 'g1']);
  });

  it('renders the fstab template with CURRENT_SNAPSHOTS_PATH replaced everywhere', () => {
    const t = 'UUID=x / btrfs subvol=CURRENT_SNAPSHOTS_PATH/@,ro 0 0\n# CURRENT_SNAPSHOTS_PATH\n';
    assert.equal(renderFstab(t, 'g2'), 'UUID=x / btrfs subvol=/snapshots/g2/@,ro 0 0\n# /snapshots/g2\n');
  });

  it('runs chroot commands as argv through unshare with a private mount namespace', () => {
    const a = chrootArgv(['/usr/bin/ibex-agent'], '/vol/snapshots/g2/@', ['apk', 'upgrade', '-h']);
    assert.deepEqual(a.slice(0, 12), ['setpriv', '--pdeathsig', 'KILL', '--', 'unshare', '--mount', '--propagation', 'private', '--pid', '--fork', '--kill-child', '--']);
    assert.deepEqual(a.slice(12), ['/usr/bin/ibex-agent', 'chroot-exec', '/vol/snapshots/g2/@', '--', 'apk', 'upgrade', '-h']);
  });
});

// Lines as a real kernel prints them (the volume at /vol/root, the root from subvol=current/0/@).
const MOUNTINFO = [
  '22 1 0:21 /snapshots/20210411212549sdBXyLxg/@ / ro,noatime shared:1 - btrfs /dev/sda2 ro,space_cache=v2,subvolid=256,subvol=/snapshots/20210411212549sdBXyLxg/@',
  '23 22 0:5 / /dev rw,nosuid shared:2 - devtmpfs devtmpfs rw,size=4k',
  '30 22 0:21 /commons/@var@log /var/log rw,noatime shared:3 - btrfs /dev/sda2 rw,subvolid=258,subvol=/commons/@var@log',
  '31 22 0:21 / /vol/root rw,noatime shared:4 - btrfs /dev/sda2 rw,subvolid=5,subvol=/',
  '32 22 0:21 /snapshots/g0ld/@ /mnt/old\\040gen rw shared:5 - btrfs /dev/sda2 rw,subvolid=300,subvol=/snapshots/g0ld/@',
  '33 22 0:30 /snapshots/other/@ /mnt/x rw shared:6 - btrfs /dev/sdb1 rw,subvol=/snapshots/other/@',
].join('\n');

describe('mountinfo', () => {
  const mounts = parseMountinfo(MOUNTINFO);
  it('decodes fields and escapes', () => {
    assert.equal(mounts.length, 6);
    assert.equal(mounts[4]!.mountPoint, '/mnt/old gen');
    assert.equal(mounts[0]!.fsType, 'btrfs');
    assert.equal(mounts[0]!.source, '/dev/sda2');
  });

  it('finds the booted generation from the root mount, on the volume\'s device only', () => {
    const src = volumeSource(mounts, '/vol/root');
    assert.equal(src, '/dev/sda2');
    assert.equal(bootedGeneration(mounts, '/', src), '20210411212549sdBXyLxg');
    assert.equal(bootedGeneration(mounts, '/', '/dev/sdb1'), undefined);
    assert.equal(bootedGeneration(mounts, '/nowhere', src), undefined);
  });

  it('lists every generation mounted anywhere on the volume', () => {
    assert.deepEqual([...mountedGenerations(mounts, '/dev/sda2')].sort(), ['20210411212549sdBXyLxg', 'g0ld']);
  });

  it('falls back to the subvol= option when the root field is not a generation path', () => {
    const m = parseMountinfo('40 1 0:21 / /r ro - btrfs /dev/sda2 ro,subvol=/snapshots/g9/@');
    assert.equal(bootedGeneration(m, '/r', undefined), 'g9');
  });
});

describe('boot entries', () => {
  const input = { title: 'Alpine Linux', rootUuid: 'b9ff5e7b', volumeLabel: 'ROOT', kernel: '/boot/vmlinuz-lts', initrd: '/boot/initramfs-lts', options: 'quiet', slots: 4 };

  it('renders the wiki rEFInd entry with three fallbacks', () => {
    const r = renderRefind(input);
    assert.match(r, /^menuentry "Alpine Linux" \{\n {4}icon \/EFI\/refind\/icons\/os_linux.png\n {4}volume "ROOT"\n {4}loader \/current\/0\/@\/boot\/vmlinuz-lts\n/);
    assert.match(r, /options "root=UUID=b9ff5e7b rootfstype=btrfs rootflags=subvol=\/current\/0\/@ ro quiet"/);
    assert.equal(r.match(/submenuentry "Boot fallback \d"/g)?.length, 3);
    assert.match(r, /loader \/current\/3\/@\/boot\/vmlinuz-lts/);
  });

  it('renders one GRUB menuentry per slot', () => {
    const g = renderGrub(input);
    assert.equal(g.match(/^menuentry /gm)?.length, 4);
    assert.match(g, /linux \/current\/2\/@\/boot\/vmlinuz-lts root=UUID=b9ff5e7b rootfstype=btrfs rootflags=subvol=\/current\/2\/@ ro quiet/);
  });

  it('renders systemd-boot entries per generation with a boot counter on the trial one', () => {
    const e = renderSystemdBoot(input, ['g3', 'g2', 'g1', 'g1'], { id: 'g3', bootsLeft: 2 });
    assert.deepEqual(e.map((x) => x.file), ['ibex-0-g3+2.conf', 'ibex-1-g2.conf', 'ibex-2-g1.conf']);
    assert.match(e[0]!.text, /linux \/ibex\/g3\/vmlinuz-lts\ninitrd \/ibex\/g3\/initramfs-lts\noptions root=UUID=b9ff5e7b rootfstype=btrfs rootflags=subvol=\/snapshots\/g3\/@ ro quiet/);
  });
});

describe('generations store records', () => {
  it('refuses a journal or config whose ids or volume could reach outside the volume, naming the field', (t) => {
    const root = mkdtempSync(join(tmpdir(), `ibex-gen-store-${process.pid}-`));
    t.after(() => rmSync(root, { recursive: true, force: true }));
    const store = new GenerationsStore(root);
    const journal = { op: 'upgrade', links: 'L1', created: 'G1', to: 'G1', from: 'G0', trial: false, reason: null, markFromBad: false, download: null, startedAtMs: 1 };
    store.journal.write(journal as Journal);
    assert.equal(store.journal.read()?.links, 'L1');
    store.journal.write({ ...journal, links: '../../etc', created: '..' } as Journal);
    assert.throws(() => store.journal.read(), (e: Error) => /links/.test(e.message) && /created/.test(e.message));
    store.writeConfig({ volume: '/vol/../etc', fallbacks: 3, health: { deadlineSec: 60, boots: 2, checks: [], requireBoot: false } });
    assert.throws(() => store.readConfig(), /volume/);
  });
});
