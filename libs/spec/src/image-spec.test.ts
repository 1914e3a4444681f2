import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fieldIssues } from './errors.js';
import { imageRunlevels, imageSpecSchema } from './image-spec.js';

const good = {
  name: 'vm-web',
  base: { path: '/srv/rootfs/alpine-3.21' },
  hostname: 'web-1',
  users: [{ name: 'alice', uid: 1000, authorizedKeys: ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC4 alice@laptop'] }],
  network: { interfaces: [{ name: 'lo', method: 'loopback' }, { name: 'eth0', method: 'dhcp' }] },
  kernel: { release: '6.1.0-28-cloud-amd64', modules: ['virtio_net'] },
};

function issues(spec: unknown): Map<string, string> {
  const r = imageSpecSchema.safeParse(spec);
  assert.equal(r.success, false, 'expected the spec to be refused');
  return r.success ? new Map() : new Map(fieldIssues(r.error).map((i) => [i.path, i.message]));
}

describe('image spec schema', () => {
  it('accepts a spec and fills the defaults (serial console ttyS0, the OpenRC runlevels of the Alpine guides)', () => {
    const s = imageSpecSchema.parse(good);
    assert.deepEqual(s.console, { device: 'ttyS0', baud: 115200 });
    assert.equal(s.init, '/sbin/init');
    assert.deepEqual(imageRunlevels(s).sysinit, ['devfs', 'mdev', 'hwdrivers']);
    assert.equal(s.users[0]!.shell, '/bin/sh');
    assert.equal(s.network!.interfaces[1]!.auto, true);
  });

  it('refuses bad specs naming the field', () => {
    assert.match(issues({ ...good, hostname: 'web_1' }).get('hostname')!, /host name label/);
    assert.match([...issues({ ...good, base: { url: 'http://h/x.tar.gz' } })].join(' '), /base.*(sha256|one of)/);
    assert.match(issues({ ...good, base: { path: 'relative' } }).get('base.path')!, /absolute path on the build host/);
    assert.match(issues({ ...good, users: [{ name: 'alice', uid: 1000, authorizedKeys: ['ssh-ed25519 AAAA a\nssh-rsa AAAA b'] }] }).get('users[0].authorizedKeys[0]')!, /one OpenSSH public key line/);
    assert.match(issues({ ...good, users: [{ name: 'bob', uid: 0 }] }).get('users[0].uid')!, /root/);
    assert.match(issues({ ...good, users: [{ name: 'x', uid: 5, passwordHash: 'hunter2' }] }).get('users[0].passwordHash')!, /crypt/);
    // The network section's own checks, with the image's path prefix.
    assert.match(issues({ ...good, network: { interfaces: [{ name: 'eth0', method: 'static' }] } }).get('network.interfaces[0].addresses')!, /at least one address/);
    assert.match(issues({ ...good, kernel: { release: '6.1', modules: ['virtio net'] } }).get('kernel.modules[0]')!, /module name/);
    assert.match(issues({ ...good, files: [{ path: '/etc/x', type: 'symlink' }] }).get('files[0].target')!, /needs a target/);
    assert.match(issues({ ...good, files: [{ path: '/etc/../x', content: '' }] }).get('files[0].path')!, /normalised/);
    assert.match(issues({ ...good, files: [{ path: '/a', content: 'x' }, { path: '/a', content: 'y' }] }).get('files[1].path')!, /duplicates files\[0\]/);
    assert.match(issues({ ...good, services: { default: ['networking', 'networking'] } }).get('services.default[1]')!, /already in default/);
    assert.match(issues({ ...good, agent: { binary: { path: '/x' }, controller: 'http://c:1', enrollmentToken: 'ibxe_abcdefgh12' } }).get('agent.controller')!, /grpc:\/\//);
    assert.match(issues({ ...good, surprise: 1 }).get('')!, /surprise/);
  });
});
