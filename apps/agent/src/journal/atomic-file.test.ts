import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { readJsonSync, removeDurableSync, writeFileAtomicSync, writeJsonAtomicSync } from './atomic-file.js';

describe('atomic journal files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ibex-atomic-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('writes with the requested mode, creating the directory, and leaves no temp file', () => {
    const path = join(dir, 'var/lib/sub', 'credential.json');
    writeJsonAtomicSync(path, { a: 1 });
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.equal(statSync(join(dir, 'var/lib/sub')).mode & 0o777, 0o700);
    assert.equal(statSync(join(dir, 'var/lib')).mode & 0o777, 0o755);
    assert.deepEqual(readJsonSync(path), { a: 1 });
    assert.deepEqual(readdirSync(join(dir, 'var/lib/sub')), ['credential.json']);
  });

  it('durable: false still replaces the file whole and leaves no temp file', () => {
    const path = join(dir, 'quick', 'status.json');
    writeFileAtomicSync(path, 'x'.repeat(10_000), 0o644, { durable: false });
    writeJsonAtomicSync(path, { b: 2 }, 0o644, { durable: false });
    assert.deepEqual(readJsonSync(path), { b: 2 });
    assert.equal(statSync(path).mode & 0o777, 0o644);
    assert.deepEqual(readdirSync(join(dir, 'quick')), ['status.json']);
  });

  it('replaces an existing file whole', () => {
    const path = join(dir, 'state.json');
    writeFileSync(path, 'x'.repeat(10_000));
    writeFileAtomicSync(path, 'short');
    assert.equal(readFileSync(path, 'utf8'), 'short');
  });

  it('keeps the old file and cleans up when the write fails', () => {
    const path = join(dir, 'keep.json');
    writeJsonAtomicSync(path, { v: 1 });
    // A directory where the file should go makes the rename fail.
    const blocked = join(dir, 'blocked');
    writeJsonAtomicSync(join(blocked, 'inner'), 1);
    assert.throws(() => writeFileAtomicSync(blocked, 'x'));
    assert.deepEqual(readJsonSync(path), { v: 1 });
    assert.ok(!readdirSync(dir).some((f) => f.endsWith('.tmp')), readdirSync(dir).join());
  });

  it('reads a missing file as undefined and names a corrupt one', () => {
    assert.equal(readJsonSync(join(dir, 'missing.json')), undefined);
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '{"half":');
    assert.throws(() => readJsonSync(bad), new RegExp(`${bad} is not valid JSON`));
    removeDurableSync(bad);
    assert.equal(readJsonSync(bad), undefined);
  });
});
