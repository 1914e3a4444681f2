import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstatSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { type ImageSpecInput, imageSpecSchema } from '@ibex/spec';
import { buildImageToFile } from './image-builder.js';
import { LocalImageSourceResolver } from './image-source-resolver.js';
import { makeBusyboxRootfs } from './testing/busybox-rootfs.js';
import { findKernel } from './testing/qemu-boot.js';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx0ZXN0a2V5 alice@laptop';

describe('image build: the assembled tree, as GNU cpio lists and unpacks it', () => {
  let work: string;
  let rootfs: string;
  let spec: ImageSpecInput;
  const { release } = findKernel();

  before(() => {
    work = mkdtempSync(join(tmpdir(), 'ibex-image-build-'));
    rootfs = makeBusyboxRootfs();
    const fakeAgent = join(work, 'ibex-agent');
    writeFileSync(fakeAgent, '#!/bin/sh\necho agent\n');
    spec = {
      name: 'build-test',
      base: { path: rootfs },
      hostname: 'vm-build-1',
      users: [
        { name: 'root', uid: 0, authorizedKeys: [KEY] },
        { name: 'alice', uid: 1000, groups: ['wheel'], passwordHash: '$6$salt$hash', authorizedKeys: [KEY] },
      ],
      network: { interfaces: [{ name: 'lo', method: 'loopback' }, { name: 'eth0', method: 'static', addresses: ['192.168.50.10/24'], gateway: '192.168.50.1', dns: { servers: ['192.168.50.1'] } }] },
      services: { default: ['networking', { name: 'net.eth0', of: 'networking' }] },
      kernel: { release, modules: ['virtio_net'] },
      files: [
        { path: '/etc/motd', content: 'welcome\n' },
        { path: '/opt/data', type: 'directory', mode: '0750', uid: 1000, gid: 1000 },
        { path: '/opt/data/link', type: 'symlink', target: '../../etc/motd' },
      ],
      agent: { binary: { path: fakeAgent, sha256: createHash('sha256').update(readFileSync(fakeAgent)).digest('hex') }, controller: 'grpc://10.0.2.2:50051', enrollmentToken: 'ibxe_test_token_123' },
    };
  });
  after(() => {
    rmSync(work, { recursive: true, force: true });
    rmSync(rootfs, { recursive: true, force: true });
  });

  it('lists the OpenRC runlevel links, /init, device nodes, users, network files, modules and the agent', async () => {
    const out = join(work, 'a.cpio.gz');
    const r = await buildImageToFile(imageSpecSchema.parse(spec), new LocalImageSourceResolver(), out);
    assert.equal(r.sha256, createHash('sha256').update(readFileSync(out)).digest('hex'));
    assert.deepEqual(r.warnings, []);
    const raw = gunzipSync(readFileSync(out));
    const list = spawnSync('cpio', ['-itv', '--quiet', '--numeric-uid-gid'], { input: raw, encoding: 'utf8' });
    assert.equal(list.status, 0, list.stderr);
    const lines = new Map(list.stdout.trim().split('\n').map((l) => [/ 1970 (.*)$/.exec(l)![1]!, l]));
    const has = (name: string, re: RegExp) => assert.match(lines.get(name) ?? `(no ${name} in the archive)`, re, name);
    for (const [level, svc] of [['sysinit', 'devfs'], ['sysinit', 'mdev'], ['sysinit', 'hwdrivers'], ['boot', 'procfs'], ['boot', 'sysfs'], ['default', 'networking'], ['default', 'net.eth0'], ['default', 'agetty.ttyS0'], ['default', 'ibex-agent']])
      has(`etc/runlevels/${level}/${svc} -> /etc/init.d/${svc}`, /^lrwxrwxrwx /);
    has('etc/init.d/net.eth0 -> networking', /^l/);
    has('etc/init.d/agetty.ttyS0 -> agetty', /^l/);
    has('init -> bin/busybox', /^l/);
    has('dev/console', /^crw------- +1 0 +0 +5, +1 /);
    has('dev/ttyS0', /^crw--w---- +1 0 +0 +4, +64 /);
    has('etc/shadow', /^-rw-r----- +1 0 +42 /);
    has('home/alice/.ssh', /^drwx------ +2 1000 +1000 /);
    has('home/alice/.ssh/authorized_keys', /^-rw------- +1 1000 +1000 /);
    has('root/.ssh/authorized_keys', /^-rw------- +1 0 +0 /);
    has('opt/data', /^drwxr-x--- +2 1000 +1000 /);
    has(`lib/modules/${release}/kernel/drivers/net/virtio_net.ko`, /^-rw-r--r-- /);
    has(`lib/modules/${release}/kernel/drivers/net/net_failover.ko`, /^-rw-r--r-- /);
    has('usr/local/bin/ibex-agent', /^-rwxr-xr-x +1 0 +0 /);
    has('etc/ibex/enrollment-token', /^-rw------- /);
    has('var/lib/ibex-agent', /^drwx------ /);
    // Parents before children everywhere.
    const names = [...lines.keys()].map((n) => n.split(' -> ')[0]!);
    names.forEach((n, i) => {
      const parent = n.includes('/') ? n.slice(0, n.lastIndexOf('/')) : '';
      if (parent) assert.ok(names.indexOf(parent) >= 0 && names.indexOf(parent) < i, `${parent} comes after ${n}`);
    });

    const dir = join(work, 'unpacked');
    spawnSync('mkdir', ['-p', dir]);
    const un = spawnSync('cpio', ['-idm', '--quiet', '--no-absolute-filenames'], { input: raw, cwd: dir, encoding: 'utf8' });
    assert.equal(un.status, 0, un.stderr);
    const text = (p: string) => readFileSync(join(dir, p), 'utf8');
    assert.equal(text('etc/hostname'), 'vm-build-1\n');
    assert.match(text('etc/securetty'), /^console\ntty1\nttyS0\n$/);
    assert.match(text('etc/network/interfaces'), /source \/etc\/network\/interfaces.d\/eth0/);
    assert.match(text('etc/network/interfaces.d/eth0'), /iface eth0 inet static\n\taddress 192.168.50.10\n\tnetmask 255.255.255.0\n\tgateway 192.168.50.1/);
    assert.ok(lstatSync(join(dir, 'etc/network/if-up.d/ibex-dns')).mode & 0o100, 'the DNS hook is executable');
    assert.match(text('etc/passwd'), /^root:x:0:0:root:\/root:\/bin\/sh\nalice:x:1000:1000:alice:\/home\/alice:\/bin\/sh\n$/);
    assert.match(text('etc/shadow'), /^root:!:.*\nalice:\$6\$salt\$hash:/);
    assert.match(text('etc/group'), /wheel:x:10:root,alice\n/);
    assert.match(text('etc/group'), /alice:x:1000:\n/);
    assert.equal(text('home/alice/.ssh/authorized_keys'), KEY + '\n');
    assert.equal(text('etc/modules'), 'virtio_net\n');
    assert.match(text(`lib/modules/${release}/modules.dep`), /^kernel\/drivers\/net\/virtio_net.ko: kernel\/drivers\/net\/net_failover.ko/m);
    assert.deepEqual(JSON.parse(text('etc/ibex/agent.json')), { controller: 'grpc://10.0.2.2:50051', dataDir: '/var/lib/ibex-agent' });
    assert.equal(text('etc/ibex/enrollment-token'), 'ibxe_test_token_123\n');
    assert.match(text('etc/init.d/ibex-agent'), /enroll --data-dir .* --name 'vm-build-1'/);
    assert.equal(readlinkSync(join(dir, 'opt/data/link')), '../../etc/motd');
  });

  it('gives identical bytes for the same spec and inputs', async () => {
    const a = await buildImageToFile(imageSpecSchema.parse(spec), new LocalImageSourceResolver(), join(work, 'x.cpio.gz'));
    const b = await buildImageToFile(imageSpecSchema.parse(spec), new LocalImageSourceResolver(), join(work, 'y.cpio.gz'));
    assert.equal(a.sha256, b.sha256);
    assert.ok(readFileSync(join(work, 'x.cpio.gz')).equals(readFileSync(join(work, 'y.cpio.gz'))));
    const c = await buildImageToFile(imageSpecSchema.parse({ ...spec, hostname: 'vm-build-2' }), new LocalImageSourceResolver(), join(work, 'z.cpio.gz'));
    assert.notEqual(c.sha256, a.sha256);
  });

  it('refuses inputs that do not match the spec, naming the field, and leaves no output', async () => {
    const out = join(work, 'bad.cpio.gz');
    await assert.rejects(buildImageToFile(imageSpecSchema.parse({ ...spec, agent: { ...spec.agent!, binary: { path: '/etc/hostname', sha256: '0'.repeat(64) } } }), new LocalImageSourceResolver(), out), /agent.binary: \/etc\/hostname has sha256 [0-9a-f]{64}, not the 0{64}/);
    await assert.rejects(buildImageToFile(imageSpecSchema.parse({ ...spec, kernel: { release, modules: ['no_such_mod'] } }), new LocalImageSourceResolver(), out), /kernel.modules: no_such_mod is neither a module/);
    await assert.rejects(buildImageToFile(imageSpecSchema.parse({ ...spec, base: { artifact: 'alpine@3.21' } }), new LocalImageSourceResolver(), out), /base: the artifact alpine@3.21 cannot be fetched here/);
    await assert.rejects(buildImageToFile(imageSpecSchema.parse({ ...spec, init: '/sbin/openrc-init' }), new LocalImageSourceResolver(), out), /init: the image has no \/sbin\/openrc-init/);
    // The controller without IBEX_IMAGE_SOURCE_DIR: no file of its host is read into an image.
    await assert.rejects(buildImageToFile(imageSpecSchema.parse(spec), new LocalImageSourceResolver({ refusePaths: 'paths are not allowed here' }), out), /^ImageSourceError: base: paths are not allowed here/);
    assert.throws(() => lstatSync(out));
    assert.throws(() => lstatSync(out + '.partial'));
  });
});
