import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { lstatSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { type CpioEntry, comparePaths, cpioNewc, orderEntries } from './cpio-newc-writer.js';
import { textFile } from './image-tree.js';

async function archive(entries: CpioEntry[]): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for await (const c of cpioNewc(entries)) chunks.push(c);
  return Buffer.concat(chunks);
}

/** GNU cpio, with the archive on stdin. */
function cpio(args: string[], input: Buffer, cwd?: string) {
  const r = spawnSync('cpio', args, { input, cwd, encoding: 'buffer' });
  assert.equal(r.status, 0, `cpio ${args.join(' ')} failed: ${r.stderr.toString()}`);
  return { out: r.stdout.toString(), err: r.stderr.toString() };
}

async function* slowChunks(parts: string[]): AsyncGenerator<Uint8Array> {
  for (const p of parts) yield Buffer.from(p);
}

// Deliberately out of order: the writer sorts, parents first.
const entries = (): CpioEntry[] => [
  textFile('/etc/motd', 'hello\n', 0o644),
  { type: 'hardlink', path: '/bin/sh', of: '/bin/busybox' },
  { type: 'file', path: '/bin/busybox', mode: 0o4755, uid: 0, gid: 0, size: 11, data: () => slowChunks(['#!', 'fake bb\n', 'x']) },
  { type: 'directory', path: '/bin', mode: 0o755, uid: 0, gid: 0 },
  { type: 'directory', path: '/etc', mode: 0o755, uid: 0, gid: 0 },
  { type: 'directory', path: '/home', mode: 0o755, uid: 0, gid: 0 },
  { type: 'directory', path: '/home/alice', mode: 0o700, uid: 1000, gid: 1000 },
  textFile('/home/alice/notes', 'x'.repeat(513), 0o600, 1000, 1000),
  { type: 'symlink', path: '/init', target: 'bin/busybox', uid: 0, gid: 0 },
  { type: 'directory', path: '/dev', mode: 0o755, uid: 0, gid: 0 },
  { type: 'char', path: '/dev/console', mode: 0o600, uid: 0, gid: 0, major: 5, minor: 1 },
  { type: 'block', path: '/dev/vda', mode: 0o660, uid: 0, gid: 6, major: 254, minor: 0 },
  { type: 'char', path: '/dev/ttyS0', mode: 0o620, uid: 0, gid: 5, major: 4, minor: 64 },
  { type: 'fifo', path: '/dev/initctl', mode: 0o600, uid: 0, gid: 0 },
  { type: 'hardlink', path: '/bin/ash', of: '/bin/busybox' },
];

describe('cpio newc writer', () => {
  it('orders parents before children, component by component', () => {
    assert.deepEqual(['/a.b', '/a/b', '/a', '/a/b/c', '/B'].sort(comparePaths), ['/B', '/a', '/a/b', '/a/b/c', '/a.b']);
    assert.throws(() => orderEntries([textFile('/etc/x', '')]), /its parent \/etc is not a directory/);
    assert.throws(() => orderEntries([{ type: 'hardlink', path: '/x', of: '/y' }]), /must name a regular file/);
    assert.throws(() => orderEntries([textFile('/a/../b', '')]), /normalised/);
  });

  it('is listed by GNU cpio -itv with the modes, owners, links and device numbers given', async () => {
    const a = await archive(entries());
    assert.equal(a.subarray(0, 6).toString(), '070701');
    const { out } = cpio(['-itv', '--quiet', '--numeric-uid-gid'], a);
    const lines = out.trim().split('\n');
    const byName = new Map(lines.map((l) => [/ 1970 (.*)$/.exec(l)?.[1] ?? l, l]));
    assert.deepEqual(
      [...byName.keys()],
      ['bin', 'bin/ash', 'bin/busybox', 'bin/sh', 'dev', 'dev/console', 'dev/initctl', 'dev/ttyS0', 'dev/vda', 'etc', 'etc/motd', 'home', 'home/alice', 'home/alice/notes', 'init -> bin/busybox'],
    );
    assert.match(byName.get('dev/console')!, /^crw------- +1 0 +0 +5, +1 /);
    assert.match(byName.get('dev/ttyS0')!, /^crw--w---- +1 0 +5 +4, +64 /);
    assert.match(byName.get('dev/vda')!, /^brw-rw---- +1 0 +6 +254, +0 /);
    assert.match(byName.get('dev/initctl')!, /^prw------- /);
    assert.match(byName.get('bin/busybox')!, /^-rwsr-xr-x +3 0 +0 /);
    assert.match(byName.get('home/alice')!, /^drwx------ +2 1000 +1000 /);
    assert.match(byName.get('init -> bin/busybox')!, /^lrwxrwxrwx /);
    // Every mtime is the epoch (reproducible): GNU cpio prints it as a date in 1970.
    assert.ok(lines.every((l) => / 1970 /.test(l)), out);
  });

  it('is unpacked by GNU cpio -idm into the same tree (hard links share an inode, data intact)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ibex-cpio-unpack-'));
    try {
      cpio(['-idm', '--quiet', '--no-absolute-filenames'], await archive(entries()), dir);
      const bb = lstatSync(join(dir, 'bin/busybox'));
      assert.equal(readFileSync(join(dir, 'bin/busybox'), 'utf8'), '#!fake bb\nx');
      assert.equal(bb.mode & 0o7777, 0o4755);
      assert.equal(bb.nlink, 3);
      assert.equal(lstatSync(join(dir, 'bin/sh')).ino, bb.ino);
      assert.equal(lstatSync(join(dir, 'bin/ash')).ino, bb.ino);
      const console_ = lstatSync(join(dir, 'dev/console'));
      assert.ok(console_.isCharacterDevice());
      assert.equal(console_.rdev, (5 << 8) | 1);
      assert.ok(lstatSync(join(dir, 'dev/vda')).isBlockDevice());
      assert.ok(lstatSync(join(dir, 'dev/initctl')).isFIFO());
      assert.equal(readlinkSync(join(dir, 'init')), 'bin/busybox');
      const notes = lstatSync(join(dir, 'home/alice/notes'));
      assert.equal(notes.size, 513);
      assert.equal(notes.uid, 1000);
      assert.equal(notes.mode & 0o777, 0o600);
      assert.equal(lstatSync(join(dir, 'home/alice')).mode & 0o7777, 0o700);
      assert.equal(notes.mtimeMs, 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('gives the same bytes for the same entries, in any input order, and BusyBox cpio unpacks it too', async () => {
    const a = await archive(entries());
    const b = await archive(entries().reverse());
    assert.ok(a.equals(b));
    const dir = mkdtempSync(join(tmpdir(), 'ibex-cpio-bb-'));
    try {
      writeFileSync(join(dir, 'a.cpio'), a);
      // BusyBox's cpio (the other reader the format notes compare against; Alpine's own).
      const r = spawnSync('busybox', ['cpio', '-idm', '-F', join(dir, 'a.cpio')], { cwd: dir, encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(lstatSync(join(dir, 'bin/ash')).ino, lstatSync(join(dir, 'bin/busybox')).ino);
      assert.equal(readFileSync(join(dir, 'bin/sh'), 'utf8'), '#!fake bb\nx');
      assert.equal(lstatSync(join(dir, 'dev/ttyS0')).rdev, (4 << 8) | 64);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a file whose data is not the size its header said', async () => {
    const bad: CpioEntry[] = [{ type: 'file', path: '/x', mode: 0o644, uid: 0, gid: 0, size: 5, data: () => slowChunks(['abc']) }];
    await assert.rejects(archive(bad), /\/x was to have 5 bytes but its data had 3/);
  });
});
