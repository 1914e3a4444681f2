import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { Logger } from '../common/log.js';
import { collectFacts } from './facts-collect.js';
import { FilesystemSizes, type StatfsLike, hungStatfsCalls } from './filesystem-sizes.js';

/**
 * A hung NFS mount cannot be made here (no NFS server, and a hard mount that hangs would hang
 * the test machine's processes too): the statfs is injected, one that never answers for the
 * "network" filesystem. The real statfs path is covered by facts.test.ts ("works on this machine").
 */

function recordingLog() {
  const lines: { level: string; msg: string; fields?: Record<string, unknown> }[] = [];
  const at = (level: string) => (msg: string, fields?: Record<string, unknown>) => void lines.push({ level, msg, fields });
  const log: Logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
  return { log, lines };
}

const OK: StatfsLike = { blocks: 100, bfree: 25, bsize: 4096 };

describe('filesystem sizes with a deadline', () => {
  it('reports a filesystem that does not answer without sizes after the deadline, logs it once, and does not ask it again while its call hangs', { timeout: 10_000 }, async () => {
    const { log, lines } = recordingLog();
    let release!: (s: StatfsLike) => void;
    let serverGone = true;
    const calls: string[] = [];
    const sizes = new FilesystemSizes({
      timeoutMs: 200,
      log,
      statfs: (p) => {
        calls.push(p);
        return p === '/mnt/nfs' && serverGone ? new Promise((resolve) => (release = resolve)) : Promise.resolve(OK);
      },
    });
    const before = hungStatfsCalls();
    const t0 = Date.now();
    assert.equal(await sizes.sizeOf('/mnt/nfs'), undefined);
    const took = Date.now() - t0;
    assert.ok(took >= 190 && took < 2000, `answered after ${took} ms`);
    assert.equal(sizes.hung, 1);
    assert.equal(hungStatfsCalls(), before + 1);
    assert.deepEqual(await sizes.sizeOf('/'), { sizeBytes: 409600, usedBytes: 307200 });

    // Asked again while the call still hangs: answered at once, not asked, not logged again.
    const t1 = Date.now();
    assert.equal(await sizes.sizeOf('/mnt/nfs'), undefined);
    assert.ok(Date.now() - t1 < 100);
    assert.deepEqual(calls, ['/mnt/nfs', '/']);
    assert.equal(lines.filter((l) => l.level === 'warn').length, 1);
    assert.equal(lines[0]!.fields?.mountpoint, '/mnt/nfs');

    // The server comes back: the hung call returns, and the next collection asks again.
    serverGone = false;
    release(OK);
    await new Promise((r) => setImmediate(r));
    assert.equal(sizes.hung, 0);
    assert.equal(hungStatfsCalls(), before);
    assert.ok(lines.some((l) => l.level === 'info' && /answers statfs again/.test(l.msg)));
    assert.deepEqual(await sizes.sizeOf('/mnt/nfs'), { sizeBytes: 409600, usedBytes: 307200 });
    assert.equal(calls.length, 3);
  });

  it('a failing statfs (stale handle, permissions) gives no sizes without waiting or logging', async () => {
    const { log, lines } = recordingLog();
    const sizes = new FilesystemSizes({ timeoutMs: 5000, log, statfs: async () => Promise.reject(Object.assign(new Error('ESTALE'), { code: 'ESTALE' })) });
    const t0 = Date.now();
    assert.equal(await sizes.sizeOf('/mnt/x'), undefined);
    assert.ok(Date.now() - t0 < 1000);
    assert.equal(sizes.hung, 0);
    assert.equal(lines.length, 0);
  });

  it('collectFacts lists a hung filesystem without sizes, the others with theirs, and the event loop keeps running meanwhile', { timeout: 10_000 }, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'ibex-fssizes-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    mkdirSync(join(dir, 'proc/self'), { recursive: true });
    writeFileSync(
      join(dir, 'proc/self/mountinfo'),
      ['22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/sda2 rw', '40 22 0:50 / /mnt/nfs rw,relatime shared:9 - nfs4 server:/export rw,vers=4.2', '41 22 259:3 / /data rw,relatime shared:10 - ext4 /dev/sda3 rw'].join('\n') + '\n',
    );
    const sizes = new FilesystemSizes({ timeoutMs: 300, statfs: (p) => (p === '/mnt/nfs' ? new Promise(() => {}) : Promise.resolve(OK)) });
    // A heartbeat stand-in: it must keep ticking while the facts wait for the hung filesystem.
    let ticks = 0;
    const beat = setInterval(() => ticks++, 20);
    t.after(() => clearInterval(beat));
    const facts = await collectFacts({ root: dir, hostRoot: dir, agentVersion: '0', sizes });
    clearInterval(beat);
    assert.ok(ticks >= 5, `the event loop ran ${ticks} ticks`);
    assert.deepEqual(
      facts.filesystems.map((f) => [f.mountpoint, f.sizeBytes, f.usedBytes]),
      [
        ['/', 409600, 307200],
        ['/mnt/nfs', 0, 0],
        ['/data', 409600, 307200],
      ],
    );
    // The next collection does not wait again for the filesystem still hanging.
    const t0 = Date.now();
    await collectFacts({ root: dir, hostRoot: dir, agentVersion: '0', sizes });
    assert.ok(Date.now() - t0 < 250, `the second collection took ${Date.now() - t0} ms`);
  });
});
