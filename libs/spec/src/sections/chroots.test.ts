import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { desiredStateSchema } from '../desired-state.js';
import { fieldIssues } from '../errors.js';
import { chrootRepositories, chrootsSectionSchema } from './chroots.js';

const SHA = 'a'.repeat(64);
const base = () => ({ path: '/mnt/disk/alpine', source: { url: 'http://controller/rootfs.tar.gz', sha256: SHA } });

function refused(section: unknown, path: string, message: RegExp): void {
  const r = desiredStateSchema.safeParse({ chroots: section });
  assert.equal(r.success, false, 'expected the spec to be refused');
  if (r.success) return;
  const issues = new Map(fieldIssues(r.error).map((i) => [i.path, i.message]));
  assert.ok(issues.has(path), `no issue at ${path}: ${JSON.stringify([...issues])}`);
  assert.match(issues.get(path)!, message);
}

describe('chroots section schema', () => {
  it('accepts a minimal chroot and fills the defaults', () => {
    const s = chrootsSectionSchema.parse({ alpine: { ...base(), source: { artifact: 'alpine-minirootfs@3.20.3', sha256: SHA.toUpperCase() } } });
    const c = s.alpine!;
    assert.equal(c.ensure, 'present');
    assert.equal(c.release, '3.20');
    assert.deepEqual(c.boot, { kind: 'none' });
    assert.equal(c.dns, 'copy');
    assert.deepEqual(c.source, { artifact: 'alpine-minirootfs@3.20.3', sha256: SHA.toUpperCase() });
    assert.deepEqual(chrootRepositories(c), ['https://dl-cdn.alpinelinux.org/alpine/v3.20/main', 'https://dl-cdn.alpinelinux.org/alpine/v3.20/community']);
  });

  it('accepts an artifact by reference (no sha256 needed) and in the form the controller resolves it to', () => {
    const ref = chrootsSectionSchema.parse({ alpine: { ...base(), source: { artifact: 'alpine-minirootfs@3.20.3' } } });
    assert.deepEqual(ref.alpine!.source, { artifact: 'alpine-minirootfs@3.20.3' });
    const artifact = { id: '3f1c2b9e-0d4a-4c57-9a8e-5b6f7e8d9c0a', name: 'alpine-minirootfs', version: '3.20.3', sha256: SHA, size: 3_400_000 };
    const resolved = chrootsSectionSchema.parse({ alpine: { ...base(), source: { artifact } } });
    assert.deepEqual(resolved.alpine!.source, { artifact });
    // A sha256 written next to the reference stays and must be the artifact's.
    assert.ok(chrootsSectionSchema.safeParse({ alpine: { ...base(), source: { artifact, sha256: SHA.toUpperCase() } } }).success);
    refused({ alpine: { ...base(), source: { artifact, sha256: 'b'.repeat(64) } } }, 'chroots.alpine.source.sha256', /is not the sha256 of artifact alpine-minirootfs@3\.20\.3/);
    refused({ alpine: { ...base(), source: { artifact: 'no version' } } }, 'chroots.alpine.source.artifact', /artifact id, name@version or name@latest/);
  });

  it('accepts apk.static with keys, and merlin boot with its default JFFS', () => {
    const s = chrootsSectionSchema.parse({
      a: { path: '/tmp/mnt/sda1/alpine', source: { apkStatic: { url: 'https://example.org/apk.static', sha256: SHA }, keys: [{ name: 'alpine-devel@lists.alpinelinux.org-6165ee59.rsa.pub', pem: '-----BEGIN PUBLIC KEY-----\nx\n-----END PUBLIC KEY-----\n' }] }, boot: { kind: 'merlin' } },
    });
    assert.deepEqual(s.a!.boot, { kind: 'merlin', jffs: '/jffs' });
  });

  it('names the field that is wrong', () => {
    refused({ alpine: { path: 'mnt/alpine', source: base().source } }, 'chroots.alpine.path', /absolute/);
    refused({ alpine: { path: '/mnt/../etc', source: base().source } }, 'chroots.alpine.path', /normalised/);
    refused({ alpine: { path: '/etc', source: base().source } }, 'chroots.alpine.path', /system directory/);
    refused({ alpine: { path: '/mnt/a' } }, 'chroots.alpine.source', /required when ensure is "present"/);
    refused({ alpine: { ...base(), source: { url: 'ftp://x/y', sha256: SHA } } }, 'chroots.alpine.source.url', /http/);
    refused({ alpine: { ...base(), source: { path: '/r.tar', sha256: 'abc' } } }, 'chroots.alpine.source.sha256', /SHA-256/);
    refused({ alpine: { ...base(), source: { tarball: '/r.tar' } } }, 'chroots.alpine.source', /must be one of/);
    refused({ alpine: { ...base(), source: { apkStatic: { path: '/apk.static', sha256: SHA }, keys: [] } } }, 'chroots.alpine.source.keys', /at least one key/);
    refused({ alpine: { ...base(), packages: ['curl', 'Bad Name'] } }, 'chroots.alpine.packages[1]', /apk package name/);
    refused({ alpine: { ...base(), packages: ['curl', 'curl'] } }, 'chroots.alpine.packages[1]', /duplicates packages\[0\]/);
    refused({ alpine: { ...base(), services: ['sshd', 'a b'] } }, 'chroots.alpine.services[1]', /OpenRC service/);
    refused({ alpine: { ...base(), mounts: [{ source: '/mnt/disk/alpine/x' }] } }, 'chroots.alpine.mounts[0].source', /must not be the chroot/);
    refused({ alpine: { ...base(), mounts: [{ source: '/srv', target: '/proc/x' }] } }, 'chroots.alpine.mounts[0].target', /mounted by the agent/);
    refused({ alpine: { ...base(), mounts: [{ source: '/srv' }, { source: '/data', target: '/srv' }] } }, 'chroots.alpine.mounts[1].target', /duplicates mounts\[0\]/);
    refused({ alpine: { ...base(), users: [{ name: 'Admin', uid: 0, gid: 0 }] } }, 'chroots.alpine.users[0].name', /user or group name/);
    refused({ alpine: { ...base(), boot: { kind: 'upstart' } } }, 'chroots.alpine.boot.kind', /./);
    refused({ alpine: { ...base(), dns: { nameservers: ['1.2.3'] } } }, 'chroots.alpine.dns.nameservers[0]', /IPv4/);
    refused({ alpine: { ...base(), typo: 1 } }, 'chroots.alpine', /typo/);
    refused({ Alpine: base() }, 'chroots.Alpine', /chroot name/);
    refused({ a: base(), b: { ...base(), path: '/mnt/disk/alpine/inner' } }, 'chroots.b.path', /overlaps chroot "a"/);
  });

  it('sibling paths sharing a prefix do not overlap', () => {
    assert.ok(chrootsSectionSchema.safeParse({ a: { ...base(), path: '/x/alpine' }, b: { ...base(), path: '/x/alpine-2' } }).success);
  });

  it('absent needs no source', () => {
    assert.ok(chrootsSectionSchema.safeParse({ a: { path: '/x/alpine', ensure: 'absent' } }).success);
  });
});
