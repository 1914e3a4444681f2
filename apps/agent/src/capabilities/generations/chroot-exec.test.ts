import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { runAgent } from '../../testing/agent-process.js';

describe('ibex-agent chroot-exec', () => {
  it('refuses to mount anything outside a private mount and pid namespace', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), `ibex-chroot-${process.pid}-`));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const mountsBefore = readFileSync('/proc/self/mountinfo', 'utf8');
    const r = await runAgent(['chroot-exec', dir, '--', '/bin/true']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /not inside a private mount and pid namespace; refusing to mount/);
    assert.equal(readFileSync('/proc/self/mountinfo', 'utf8').includes(dir), false);
    assert.equal(mountsBefore.includes(dir), false);
  });

  it('needs DIR -- PROGRAM', async () => {
    const r = await runAgent(['chroot-exec', '/x']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /usage: ibex-agent chroot-exec DIR -- PROGRAM/);
  });
});
