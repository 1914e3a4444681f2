import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync, readlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { NodeSystemAdapter } from './node-system-adapter.js';
import { isTempFileOf } from './system-adapter.js';

describe('system adapter', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ibex-sys-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const sys = new NodeSystemAdapter();

  it('runs programs with an argument array, never through a shell', async () => {
    const r = await sys.exec(['echo', 'a b; touch ' + join(dir, 'pwned'), '$HOME']);
    assert.equal(r.code, 0);
    assert.equal(r.stdout, `a b; touch ${join(dir, 'pwned')} $HOME\n`);
    assert.throws(() => statSync(join(dir, 'pwned')));
    const fail = await sys.exec(['sh', '-c', 'echo oops >&2; exit 3']);
    assert.deepEqual([fail.code, fail.stderr], [3, 'oops\n']);
    await assert.rejects(sys.exec(['/nonexistent/tool']), /could not run/);
  });

  it('writes atomically with the exact mode (despite the umask), replacing a symlink rather than its target', async () => {
    const target = join(dir, 'target');
    writeFileSync(target, 'untouched');
    symlinkSync(target, join(dir, 'link'));
    const old = process.umask(0o077);
    try {
      await sys.writeFileAtomic(join(dir, 'link'), Buffer.from('new'), { mode: 0o644 });
    } finally {
      process.umask(old);
    }
    assert.equal(readFileSync(target, 'utf8'), 'untouched');
    assert.equal(readFileSync(join(dir, 'link'), 'utf8'), 'new');
    assert.equal(statSync(join(dir, 'link')).mode & 0o777, 0o644);
    assert.ok(!readdirSync(dir).some((n) => isTempFileOf(n, 'link')));
  });

  it('cleans its temp file when the rename is interrupted', async () => {
    await assert.rejects(
      sys.writeFileAtomic(join(dir, 'x'), Buffer.from('x'), {
        mode: 0o600,
        beforeRename: () => {
          throw new Error('stop here');
        },
      }),
      /stop here/,
    );
    assert.ok(!readdirSync(dir).some((n) => isTempFileOf(n, 'x')), readdirSync(dir).join());
    await sys.symlinkAtomic('/somewhere', join(dir, 'x'));
    assert.equal(readlinkSync(join(dir, 'x')), '/somewhere');
    assert.equal(await sys.rmdirIfEmpty(dir), false);
  });
});
