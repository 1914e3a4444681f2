import { copyFile, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exec, execOk } from './exec.js';

/**
 * A real btrfs volume for an agent: a sparse image on a loop device, mkfs.btrfs, its top level
 * (subvolid=5) mounted under the agent's --root. `destroy()` unmounts everything under the
 * scratch directory (innermost first), detaches the loop device and removes the files; it is
 * safe to call after a partial setup.
 */
export interface TestBtrfs {
  /** The agent's --root. */
  root: string;
  /** Device path of the volume under root (what the generations config names). */
  volume: string;
  /** Host path where the top level is mounted. */
  host: string;
  device: string;
  /** Directory under root, outside the volume, for images (device path `/scratch`). */
  scratch: string;
  destroy(): Promise<void>;
}

async function mountsUnder(dir: string): Promise<string[]> {
  return (await readFile('/proc/self/mountinfo', 'utf8'))
    .split('\n')
    .map((l) => l.split(' ')[4]?.replace(/\\040/g, ' '))
    .filter((m): m is string => !!m && (m === dir || m.startsWith(`${dir}/`)));
}

export async function createBtrfs(sizeMiB = 320): Promise<TestBtrfs> {
  const base = await mkdtemp(join(tmpdir(), `ibex-e2e-gen-${process.pid}-`));
  const root = join(base, 'root');
  const host = join(root, 'vol/root');
  const scratch = join(root, 'scratch');
  let device = '';
  const destroy = async () => {
    for (const m of (await mountsUnder(base)).reverse()) {
      if ((await exec('umount', [m])).code !== 0) await exec('umount', ['-l', m]);
    }
    if (device) await exec('losetup', ['-d', device]);
    await rm(base, { recursive: true, force: true });
  };
  try {
    await mkdir(host, { recursive: true });
    await mkdir(scratch, { recursive: true });
    // The agent reads mountinfo and the boot id under --root: give it the real ones.
    await symlink('/proc', join(root, 'proc'));
    const img = join(base, 'btrfs.img');
    await execOk('truncate', ['-s', `${sizeMiB}M`, img]);
    device = (await execOk('losetup', ['--find', '--show', img])).trim();
    await execOk('mkfs.btrfs', ['-q', device]);
    await execOk('mount', ['-t', 'btrfs', '-o', 'subvolid=5', device, host]);
    return { root, volume: '/vol/root', host, device, scratch, destroy };
  } catch (err) {
    await destroy();
    throw err;
  }
}

/** A minimal root filesystem (static BusyBox and /etc/marker) as a tarball; returns its path and sha256. */
export async function rootfsTarball(dir: string, name: string, marker: string): Promise<{ path: string; sha256: string }> {
  const tree = join(dir, `${name}-tree`);
  for (const d of ['bin', 'etc', 'proc', 'sys', 'dev', 'tmp', 'boot']) await mkdir(join(tree, d), { recursive: true });
  await copyFile('/bin/busybox', join(tree, 'bin/busybox'));
  await execOk('chmod', ['0755', join(tree, 'bin/busybox')]);
  await symlink('busybox', join(tree, 'bin/sh'));
  await writeFile(join(tree, 'etc/marker'), `${marker}\n`);
  await writeFile(join(tree, 'etc/fstab'), '# replaced per generation\n');
  const path = join(dir, `${name}.tar.gz`);
  await execOk('tar', ['-c', '-z', '-f', path, '--numeric-owner', '-C', tree, '.']);
  await rm(tree, { recursive: true, force: true });
  return { path, sha256: (await execOk('sha256sum', [path])).split(' ')[0]! };
}
