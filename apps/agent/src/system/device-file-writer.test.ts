import assert from 'node:assert/strict';
import { lstatSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { writeDeviceFile } from './device-file-writer.js';
import { NodeSystemAdapter } from './node-system-adapter.js';
import type { SystemAdapter } from './system-adapter.js';

describe('writeDeviceFile: the one write path of every capability', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ibex-writer-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const real = new NodeSystemAdapter();

  it('replaces a regular file by rename (a new inode) and creates a missing one', async () => {
    const p = join(dir, 'plain');
    writeFileSync(p, 'old');
    const ino = statSync(p).ino;
    assert.equal(await writeDeviceFile(real, p, Buffer.from('new'), { mode: 0o640, symlink: 'refuse' }), 'replaced');
    assert.equal(readFileSync(p, 'utf8'), 'new');
    assert.notEqual(statSync(p).ino, ino);
    assert.equal(statSync(p).mode & 0o777, 0o640);
    assert.equal(await writeDeviceFile(real, join(dir, 'fresh'), Buffer.from('x'), { mode: 0o600, symlink: 'refuse' }), 'replaced');
  });

  it('refuses a symlink where the capability refuses them, and replaces it (not its target) where it does not', async () => {
    const target = join(dir, 'target');
    writeFileSync(target, 'target bytes');
    const link = join(dir, 'link');
    symlinkSync(target, link);
    await assert.rejects(writeDeviceFile(real, link, Buffer.from('x'), { mode: 0o644, symlink: 'refuse', who: 'the network section' }), /link is a symlink; the network section does not write through or over symlinks/);
    assert.equal(readlinkSync(link), target);
    assert.equal(await writeDeviceFile(real, link, Buffer.from('file now'), { mode: 0o644, symlink: 'replace' }), 'replaced');
    assert.equal(lstatSync(link).isFile(), true);
    assert.equal(readFileSync(target, 'utf8'), 'target bytes', 'the link target is untouched');
  });

  it('writes in place when rename() cannot replace the file (EBUSY, EXDEV), keeping the inode', async () => {
    for (const code of ['EBUSY', 'EXDEV']) {
      const p = join(dir, `busy-${code}`);
      writeFileSync(p, 'a much longer old content');
      const ino = statSync(p).ino;
      // The kernel's answer for a mount point this process cannot see in its mountinfo (another namespace's bind mount).
      const sys: SystemAdapter = Object.assign(Object.create(real) as SystemAdapter, {
        writeFileAtomic: () => Promise.reject(Object.assign(new Error(`${code}: rename`), { code })),
      });
      assert.equal(await writeDeviceFile(sys, p, Buffer.from('short'), { mode: 0o600, symlink: 'refuse' }), 'in-place');
      assert.equal(readFileSync(p, 'utf8'), 'short', 'truncated to the new length');
      assert.equal(statSync(p).ino, ino);
      assert.equal(statSync(p).mode & 0o777, 0o600);
    }
    // A missing file is never "written in place": the rename error stands.
    const sys: SystemAdapter = Object.assign(Object.create(real) as SystemAdapter, { writeFileAtomic: () => Promise.reject(Object.assign(new Error('EBUSY: rename'), { code: 'EBUSY' })) });
    await assert.rejects(writeDeviceFile(sys, join(dir, 'missing'), Buffer.from('x'), { mode: 0o644, symlink: 'refuse' }), /EBUSY/);
  });
});
