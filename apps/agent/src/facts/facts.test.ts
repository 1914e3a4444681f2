import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Facts as ProtoFacts } from '@ibex/proto';
import { factsSchema, type GenerationsInventory } from '@ibex/spec';
import { silentLogger } from '../common/log.js';
import { collectFacts, toProtoFacts } from './facts-collect.js';
import { FilesystemSizes } from './filesystem-sizes.js';
import { GenerationsFacts } from './generations-facts.js';
import { parseIfFlagsUp, parseMemTotal, parseMountinfo, parseOsRelease, parseUptime } from './facts-parse.js';

const OS_RELEASE = `PRETTY_NAME="Alpine Linux v3.20"
NAME="Alpine Linux"
ID=alpine
VERSION_ID=3.20.3
HOME_URL="https://alpinelinux.org/"
# a comment
`;

const MOUNTINFO = `22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw,errors=remount-ro
23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
24 22 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw
25 22 0:5 / /dev rw,nosuid shared:8 - devtmpfs udev rw,size=8000k
40 22 259:1 / /boot/efi ro,relatime shared:30 - vfat /dev/nvme0n1p1 ro,fmask=0077
41 22 0:45 / /mnt/usb\\040disk rw,relatime - btrfs /dev/sda1 rw,space_cache=v2,subvolid=5
42 22 0:46 / /run rw,nosuid,nodev shared:5 - tmpfs tmpfs rw,size=1600k,mode=755
43 41 0:47 / /mnt/usb\\040disk ro,relatime - btrfs /dev/sda2 ro
garbage line
`;

describe('facts parsers', () => {
  it('reads os-release, with quotes and comments', () => {
    assert.deepEqual(parseOsRelease(OS_RELEASE), { id: 'alpine', versionId: '3.20.3', prettyName: 'Alpine Linux v3.20' });
    assert.deepEqual(parseOsRelease('NAME=OpenWrt\nID="openwrt"\n'), { id: 'openwrt', versionId: '', prettyName: 'OpenWrt' });
  });

  it('reads mountinfo: skips pseudo filesystems, unescapes, keeps the top mount, sees read-only', () => {
    assert.deepEqual(parseMountinfo(MOUNTINFO), [
      { device: '/dev/nvme0n1p2', mountpoint: '/', fstype: 'ext4', readOnly: false },
      { device: '/dev/nvme0n1p1', mountpoint: '/boot/efi', fstype: 'vfat', readOnly: true },
      { device: 'tmpfs', mountpoint: '/run', fstype: 'tmpfs', readOnly: false },
      { device: '/dev/sda2', mountpoint: '/mnt/usb disk', fstype: 'btrfs', readOnly: true },
    ]);
  });

  it('reads meminfo, uptime and interface flags', () => {
    assert.equal(parseMemTotal('MemTotal:       16314660 kB\nMemFree: 1 kB\n'), 16314660 * 1024);
    assert.equal(parseMemTotal('nothing'), undefined);
    assert.equal(parseUptime('12345.67 23456.78\n'), 12345);
    assert.equal(parseUptime(''), undefined);
    assert.equal(parseIfFlagsUp('0x1003\n'), true);
    assert.equal(parseIfFlagsUp('0x1002\n'), false);
  });
});

describe('facts from a fixture tree', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ibex-facts-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const put = (p: string, text: string) => {
    mkdirSync(join(dir, p, '..'), { recursive: true });
    writeFileSync(join(dir, p), text);
  };
  put('etc/os-release', OS_RELEASE);
  put('proc/sys/kernel/hostname', 'edge-router\n');
  put('proc/sys/kernel/osrelease', '6.6.0-ibex\n');
  put('proc/uptime', '100.5 50.0\n');
  put('proc/meminfo', 'MemTotal: 1024 kB\n');
  put('proc/self/mountinfo', MOUNTINFO);
  put('sys/class/net/eth0/address', 'aa:bb:cc:dd:ee:ff\n');
  put('sys/class/net/eth0/mtu', '1500\n');
  put('sys/class/net/eth0/flags', '0x1003\n');
  put('sys/class/net/wlan0/address', '11:22:33:44:55:66\n');
  put('sys/class/net/wlan0/mtu', '2304\n');
  put('sys/class/net/wlan0/flags', '0x1002\n');

  it('assembles facts that fit the shared schema', async () => {
    const facts = await collectFacts({
      root: dir,
      hostRoot: dir,
      agentVersion: '1.2.3',
      now: () => 42,
      networkInterfaces: () => ({
        eth0: [
          { address: '192.0.2.10', netmask: '255.255.255.0', family: 'IPv4', mac: 'aa:bb:cc:dd:ee:ff', internal: false, cidr: '192.0.2.10/24' },
          { address: 'fe80::1', netmask: 'ffff:ffff:ffff:ffff::', family: 'IPv6', mac: 'aa:bb:cc:dd:ee:ff', internal: false, cidr: 'fe80::1/64', scopeid: 2 },
        ],
      }),
      sizes: new FilesystemSizes({ statfs: async (p) => (p === '/' ? { blocks: 1000, bfree: 250, bsize: 4096 } : { blocks: 10, bfree: 10, bsize: 512 }) }),
    });
    assert.equal(factsSchema.safeParse(facts).success, true);
    assert.equal(facts.hostname, 'edge-router');
    assert.equal(facts.kernel, '6.6.0-ibex');
    assert.deepEqual(facts.osRelease, { id: 'alpine', versionId: '3.20.3', prettyName: 'Alpine Linux v3.20' });
    assert.equal(facts.uptimeSeconds, 100);
    assert.equal(facts.memoryTotalBytes, 1024 * 1024);
    assert.equal(facts.collectedAtMs, 42);
    assert.equal(facts.agentVersion, '1.2.3');
    assert.deepEqual(facts.interfaces, [
      { name: 'eth0', mac: 'aa:bb:cc:dd:ee:ff', mtu: 1500, up: true, addresses: ['192.0.2.10/24', 'fe80::1/64'] },
      { name: 'wlan0', mac: '11:22:33:44:55:66', mtu: 2304, up: false, addresses: [] },
    ]);
    assert.deepEqual(facts.filesystems[0], { device: '/dev/nvme0n1p2', mountpoint: '/', fstype: 'ext4', sizeBytes: 4096000, usedBytes: 3072000, readOnly: false });
    assert.equal(facts.filesystems.length, 4);
  });

  it('works on this machine', async () => {
    const facts = await collectFacts({ root: '/', agentVersion: '0' });
    assert.ok(facts.hostname && facts.kernel && facts.cpuCount > 0 && facts.memoryTotalBytes > 0);
    assert.ok(facts.filesystems.some((f) => f.mountpoint === '/' && f.sizeBytes > 0));
    assert.ok(facts.interfaces.some((i) => i.name === 'lo'));
  });

  const inventory: GenerationsInventory = {
    volume: '/mnt/volume',
    current: 'g2',
    booted: 'g1',
    lastGood: 'g1',
    trial: { id: 'g2', deadlineAtMs: 2000, bootsLeft: 1 },
    generations: [
      { id: 'g2', createdAtMs: 1000, status: 'trial', booted: false, current: true, slot: 0, readOnly: true, complete: true },
      { id: 'g1', createdAtMs: 500, status: 'good', booted: true, current: false, slot: 1, readOnly: true, complete: true },
    ],
    collectedAtMs: 1500,
  };

  it('carries the generations inventory as JSON in proto Facts (empty without one), through the wire encoding', async () => {
    const withInv = await collectFacts({ root: '/', agentVersion: '0', generations: inventory });
    assert.deepEqual(withInv.generations, inventory);
    const wire = ProtoFacts.decode(ProtoFacts.encode(toProtoFacts(withInv)).finish());
    assert.deepEqual(JSON.parse(wire.generationsJson), inventory);
    assert.equal(wire.hostname, withInv.hostname);

    const without = toProtoFacts(await collectFacts({ root: '/', agentVersion: '0' }));
    assert.equal(without.generationsJson, '');
    assert.equal('generations' in without, false);
  });

  it('reports no inventory when the collector fails or returns one the controller would refuse', async () => {
    let next: () => Promise<unknown> = async () => inventory;
    const g = new GenerationsFacts(() => next() as Promise<GenerationsInventory | undefined>, silentLogger);
    assert.deepEqual(await g.refresh(), inventory);
    assert.deepEqual(g.current, inventory);
    next = async () => ({ ...inventory, generations: [{ ...inventory.generations[0], status: 'fine' }] });
    assert.equal(await g.refresh(), undefined);
    assert.equal(g.current, undefined);
    next = async () => inventory;
    await g.refresh();
    next = async () => {
      throw new Error('btrfs: no such device');
    };
    assert.equal(await g.refresh(), undefined);
    assert.equal(g.current, undefined);
  });
});
