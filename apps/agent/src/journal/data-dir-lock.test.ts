import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { DataDirLock, type LockHolder, lockRefusal } from './data-dir-lock.js';

describe('data dir lock', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ibex-lock-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('is held by one process at a time, names its holder, and is given back', () => {
    const a = DataDirLock.acquire(dir, 'job generations.gc');
    assert.ok(a instanceof DataDirLock);
    const b = DataDirLock.acquire(dir, 'apply');
    assert.ok(!(b instanceof DataDirLock));
    const holder = b as LockHolder;
    assert.equal(holder.pid, process.pid);
    assert.equal(holder.command, 'job generations.gc');
    assert.match(lockRefusal('apply', dir, holder), /^ibex-agent apply: ibex-agent job generations\.gc \(pid \d+, since .*\) is using the data dir .*; wait until it ends$/);
    assert.match(lockRefusal('job x', dir, { ...holder, command: 'run' }), /^ibex-agent job x: an agent \(pid \d+\) is running with data dir .*; stop it first/);
    a.release();
    const c = DataDirLock.acquire(dir, 'apply');
    assert.ok(c instanceof DataDirLock);
    c.release();
  });

  it('takes over from a holder that is gone, or whose pid now belongs to another process', () => {
    // A process that ran and exited: its pid is free.
    const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    const lock = join(dir, 'agent.lock');
    writeFileSync(lock, JSON.stringify({ pid: Number(gone.stdout), startTicks: '1', command: 'run', sinceMs: 1 }));
    const a = DataDirLock.acquire(dir, 'apply');
    assert.ok(a instanceof DataDirLock, 'a dead holder is stale');
    a.release();
    // Our own pid with another start time: a pid reused after the holder died.
    writeFileSync(lock, JSON.stringify({ pid: process.pid, startTicks: 'not-this-process', command: 'run', sinceMs: 1 }));
    const b = DataDirLock.acquire(dir, 'apply');
    assert.ok(b instanceof DataDirLock, 'a reused pid is not the holder');
    assert.equal(JSON.parse(readFileSync(lock, 'utf8')).command, 'apply');
    b.release();
  });
});
