import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';

/** A command for test setup: argv, throws with stderr on failure. */
export function execArgv(argv: [string, ...string[]], opts: { input?: string } = {}): string {
  const [cmd, ...args] = argv;
  return execFileSync(cmd, args, { encoding: 'utf8', input: opts.input, stdio: ['pipe', 'pipe', 'pipe'] });
}

function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4]?.replace(/\\040/g, ' '))
    .filter((m): m is string => !!m && (m === dir || m.startsWith(dir + '/')));
}

export interface BtrfsVolume {
  /** The scratch --root. */
  root: string;
  /** Device path of the volume under root (what generations config holds). */
  volume: string;
  /** Host path where the btrfs top level is mounted. */
  host: string;
  device: string;
  /** Scratch space under root, outside the volume (images, streams). */
  scratch: string;
}

/**
 * A real btrfs: a sparse image file on a loop device (`losetup --find --show`), mkfs.btrfs,
 * mounted at `<root>/vol/root`. `<root>/proc` links to the real /proc (unless the root is given)
 * so the code under test reads the real mountinfo and boot id. `destroy()` undoes everything:
 * mounts under the scratch base and root (innermost first), the loop device, the files; it is
 * safe after a partial setup (a failed setup calls it before throwing). Plain sync code so the
 * bench (bench/generations.bench.mjs, importing the compiled file) shares it.
 */
export function createLoopBtrfs(opts: { sizeMiB?: number; root?: string; prefix?: string } = {}): BtrfsVolume & { destroy(): void } {
  const sizeMiB = opts.sizeMiB ?? 320;
  const base = mkdtempSync(join(tmpdir(), `${opts.prefix ?? 'ibex-gen'}-${process.pid}-`));
  // An existing root (an agent fixture's) is used as is; its owner removes it.
  const root = opts.root ?? join(base, 'root');
  const scratch = join(root, 'scratch');
  const host = join(root, 'vol/root');
  let device: string | undefined;
  const destroy = () => {
    for (const m of [...mountsUnder(base), ...(opts.root ? mountsUnder(opts.root) : [])].reverse()) {
      try {
        execArgv(['umount', m]);
      } catch {
        execArgv(['umount', '-l', m]);
      }
    }
    if (device) execArgv(['losetup', '-d', device]);
    rmSync(base, { recursive: true, force: true });
  };
  try {
    mkdirSync(host, { recursive: true });
    mkdirSync(scratch, { recursive: true });
    if (!opts.root) symlinkSync('/proc', join(root, 'proc'));
    const img = join(base, 'btrfs.img');
    execArgv(['truncate', '-s', `${sizeMiB}M`, img]);
    device = execArgv(['losetup', '--find', '--show', img]).trim();
    execArgv(['mkfs.btrfs', '-q', device]);
    execArgv(['mount', '-t', 'btrfs', '-o', 'subvolid=5', device, host]);
    return { root, volume: '/vol/root', host, device, scratch, destroy };
  } catch (err) {
    destroy();
    throw err;
  }
}

/** createLoopBtrfs, undone in t.after (also when the test fails). */
export async function makeBtrfsVolume(t: TestContext, opts: { sizeMiB?: number; root?: string } = {}): Promise<BtrfsVolume> {
  const { destroy, ...v } = createLoopBtrfs(opts);
  t.after(destroy);
  return v;
}

/**
 * A minimal root filesystem (static BusyBox, /etc, and the mount points the chroot uses) as a
 * tarball; `marker` goes to /etc/marker so tests can tell images apart.
 */
export function makeRootfsTarball(dir: string, name: string, marker: string): string {
  const tree = join(dir, `${name}-tree`);
  for (const d of ['bin', 'etc', 'proc', 'sys', 'dev', 'tmp', 'boot']) mkdirSync(join(tree, d), { recursive: true });
  copyFileSync('/bin/busybox', join(tree, 'bin/busybox'));
  execArgv(['chmod', '0755', join(tree, 'bin/busybox')]);
  symlinkSync('busybox', join(tree, 'bin/sh'));
  writeFileSync(join(tree, 'etc/marker'), marker + '\n');
  writeFileSync(join(tree, 'etc/fstab'), '# placeholder\n');
  writeFileSync(join(tree, 'boot/vmlinuz-lts'), 'kernel\n');
  const out = join(dir, `${name}.tar.gz`);
  execArgv(['tar', '-c', '-z', '-f', out, '--numeric-owner', '-C', tree, '.']);
  rmSync(tree, { recursive: true, force: true });
  return out;
}

export function sha256File(file: string): string {
  return execArgv(['sha256sum', file]).split(' ')[0]!;
}

/** A listing of everything on the volume that a change would show: paths, types, link targets, ro flags. */
export function listVolume(host: string): string {
  const entries = execArgv(['find', host, '-xdev', '-printf', '%P %y %l %m\n']).split('\n').filter(Boolean).sort();
  const subvols = execArgv(['btrfs', 'subvolume', 'list', host]).split('\n').filter(Boolean).map((l) => l.replace(/^ID \d+ gen \d+ top level \d+ path /, '')).sort();
  const ro = subvols.map((p) => `${p} ${execArgv(['btrfs', 'property', 'get', '-ts', join(host, p), 'ro']).trim()}`);
  return [...entries, ...ro].join('\n');
}

/**
 * A layout made by hand the wiki's way on `v`: one read-only BusyBox root per id (oldest first;
 * /etc/marker holds the id), the newest linked at slot 0 and the others behind it, `current`
 * pointing at the links directory. What `generations adopt` takes over.
 */
export function makeWikiLayout(v: BtrfsVolume, ids: readonly string[]): void {
  const tar = makeRootfsTarball(v.scratch, 'wiki', 'wiki');
  for (const d of ['next', 'snapshots', 'links']) mkdirSync(join(v.host, d), { recursive: true });
  for (const id of ids) {
    mkdirSync(join(v.host, 'snapshots', id));
    const root = join(v.host, 'snapshots', id, '@');
    execArgv(['btrfs', 'subvolume', 'create', root]);
    execArgv(['tar', '-x', '-z', '-f', tar, '-C', root]);
    writeFileSync(join(root, 'etc/marker'), `${id}\n`);
    execArgv(['btrfs', 'property', 'set', '-ts', root, 'ro', 'true']);
  }
  const links = 'L' + ids.at(-1)!;
  mkdirSync(join(v.host, 'links', links));
  [...ids].reverse().forEach((id, i) => symlinkSync(`../../snapshots/${id}`, join(v.host, 'links', links, String(i))));
  symlinkSync(`./links/${links}`, join(v.host, 'current'));
}
