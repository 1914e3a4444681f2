import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { NodeSystemAdapter } from './node-system-adapter.js';
import { RootEscapeError, resolveUnderRoot } from './root-path.js';

describe('paths under --root', () => {
  const root = mkdtempSync(join(tmpdir(), 'ibex-rootpath-'));
  after(() => rmSync(root, { recursive: true, force: true }));
  const sys = new NodeSystemAdapter();
  mkdirSync(join(root, 'etc/real'), { recursive: true });
  mkdirSync(join(root, 'run'));
  symlinkSync('/run', join(root, 'etc/abs')); // absolute: means <root>/run
  symlinkSync('real', join(root, 'etc/rel'));
  symlinkSync('../../../../../../tmp', join(root, 'etc/up')); // climbs out
  symlinkSync('/etc/loop2', join(root, 'etc/loop1'));
  symlinkSync('/etc/loop1', join(root, 'etc/loop2'));
  writeFileSync(join(root, 'etc/file'), '');
  symlinkSync('/etc/passwd', join(root, 'etc/final'));

  it('maps plain paths and reports missing parents', async () => {
    assert.deepEqual(await resolveUnderRoot(sys, root, '/etc/real/x'), { host: join(root, 'etc/real/x'), missingParents: [] });
    assert.deepEqual(await resolveUnderRoot(sys, root, '/opt/a/b'), { host: join(root, 'opt/a/b'), missingParents: [join(root, 'opt'), join(root, 'opt/a')] });
  });

  it('follows parent symlinks the way a chroot would', async () => {
    assert.equal((await resolveUnderRoot(sys, root, '/etc/abs/x')).host, join(root, 'run/x'));
    assert.equal((await resolveUnderRoot(sys, root, '/etc/rel/x')).host, join(root, 'etc/real/x'));
  });

  it('never follows the last component', async () => {
    assert.equal((await resolveUnderRoot(sys, root, '/etc/final')).host, join(root, 'etc/final'));
  });

  it('refuses symlinks that lead out of the root, loops, and files used as directories', async () => {
    await assert.rejects(resolveUnderRoot(sys, root, '/etc/up/x'), (e: unknown) => e instanceof RootEscapeError && /points outside the root/.test(e.message));
    await assert.rejects(resolveUnderRoot(sys, root, '/etc/loop1/x'), /too many levels of symlinks/);
    await assert.rejects(resolveUnderRoot(sys, root, '/etc/file/x'), /\/etc\/file is not a directory/);
  });
});
