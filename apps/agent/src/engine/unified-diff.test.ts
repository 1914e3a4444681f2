import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { diffableText, unifiedDiff } from './unified-diff.js';

/** Applies `diff` to `before` with the real GNU patch and returns the result. */
function patched(before: string | null, diff: string): string | null {
  const dir = mkdtempSync(join(tmpdir(), 'ibex-diff-'));
  try {
    const file = join(dir, 'f');
    if (before !== null) writeFileSync(file, before);
    // -E removes a file the patch empties; the names in the diff are ignored (explicit target).
    execFileSync('patch', ['-s', '-E', '-f', file], { input: diff, cwd: dir, stdio: ['pipe', 'pipe', 'pipe'] });
    try {
      return readFileSync(file, 'utf8');
    } catch {
      return null;
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('unifiedDiff', () => {
  it('writes the same text as diff -u for a small change', () => {
    const before = 'auto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet dhcp\n';
    const after = 'auto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet static\n\taddress 10.0.0.2/24\n';
    assert.equal(
      unifiedDiff('/etc/network/interfaces', before, after),
      [
        '--- a/etc/network/interfaces',
        '+++ b/etc/network/interfaces',
        '@@ -2,4 +2,5 @@',
        ' iface lo inet loopback',
        ' ',
        ' auto eth0',
        '-iface eth0 inet dhcp',
        '+iface eth0 inet static',
        '+\taddress 10.0.0.2/24',
        '',
      ].join('\n'),
    );
  });

  it('is empty when nothing differs', () => {
    assert.equal(unifiedDiff('/x', 'a\n', 'a\n'), '');
    assert.equal(unifiedDiff('/x', null, null), '');
  });

  it('shows a new file against /dev/null and a removed one the other way', () => {
    assert.equal(unifiedDiff('/etc/motd', null, 'hi\nthere\n'), '--- /dev/null\n+++ b/etc/motd\n@@ -0,0 +1,2 @@\n+hi\n+there\n');
    assert.equal(unifiedDiff('/etc/motd', 'hi\n', null), '--- a/etc/motd\n+++ /dev/null\n@@ -1 +0,0 @@\n-hi\n');
  });

  it('marks a missing final newline like diff does', () => {
    assert.equal(unifiedDiff('/f', 'a\nb', 'a\nb\n'), '--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+b\n');
  });

  it('splits distant changes into hunks and cuts long diffs with a note', () => {
    const lines = Array.from({ length: 40 }, (_, i) => `line ${i}`);
    const changed = lines.map((l, i) => (i === 2 || i === 30 ? `${l} changed` : l));
    const d = unifiedDiff('/f', lines.join('\n') + '\n', changed.join('\n') + '\n');
    assert.deepEqual(d.split('\n').filter((l) => l.startsWith('@@')), ['@@ -1,6 +1,6 @@', '@@ -28,7 +28,7 @@']);
    const cut = unifiedDiff('/f', lines.join('\n'), '', { maxChars: 100 });
    assert.ok(cut.length < 200);
    assert.match(cut, /diff cut at 100 characters/);
  });

  it('round-trips through GNU patch for random edits', () => {
    // mulberry32: a seeded generator, so a failure can be reproduced.
    let seed = 7;
    const rnd = (n: number) => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) % n;
    };
    let patchedCount = 0;
    const text = (n: number) => Array.from({ length: n }, () => `l${rnd(6)}`).join('\n') + (rnd(3) ? '\n' : '');
    for (let round = 0; round < 150; round++) {
      const before = rnd(8) ? text(rnd(25)) : null;
      const after = rnd(8) ? text(rnd(25)) : null;
      const d = unifiedDiff('/etc/f', before, after, { context: rnd(4) });
      if (d === '') {
        assert.equal(before ?? '', after ?? '');
        continue;
      }
      assert.equal(patched(before, d) ?? '', after ?? '', `round ${round}:\n${d}`);
      patchedCount++;
    }
    assert.ok(patchedCount > 110, `only ${patchedCount} rounds produced a diff`);
  });

  it('diffs two unrelated files of thousands of lines (the changed middle replaced wholesale) correctly', () => {
    // 8000 changed lines each side: Myers' search would keep 8000 * 32000 trace entries (1 GB).
    const lines = (p: string) => Array.from({ length: 8000 }, (_, i) => `${p}${i}`);
    const before = ['# head', ...lines('old'), '# tail', ''].join('\n');
    const after = ['# head', ...lines('new'), '# tail', ''].join('\n');
    const d = unifiedDiff('/etc/big', before, after, { maxChars: 1 << 20 });
    assert.equal(patched(before, d), after);
    assert.equal(d.split('\n')[2], '@@ -1,8002 +1,8002 @@');
    assert.equal(d.split('\n')[3], ' # head');
  });

  it('treats NUL bytes and invalid UTF-8 as not diffable', () => {
    assert.equal(diffableText(Buffer.from('a\nb\n')), 'a\nb\n');
    assert.equal(diffableText(Buffer.from([0x61, 0, 0x62])), undefined);
    assert.equal(diffableText(Buffer.from([0xff, 0xfe])), undefined);
  });
});
