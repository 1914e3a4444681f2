import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { FatalError } from '../../common/errors.js';
import type { RuntimeDeps } from './chroot-runtime.js';
import { writeDeviceFile } from '../../system/device-file-writer.js';

/**
 * Filling a new chroot (the staging directory beside it) from an already verified input: a root
 * filesystem tarball, or apk.static installing alpine-base from the repositories
 * (alpine-chroot-install's step 5).
 */

/** tar's flag for the compression the file starts with (BusyBox tar does not guess). */
export function compressionFlag(head: Uint8Array): string[] {
  if (head[0] === 0x1f && head[1] === 0x8b) return ['-z'];
  if (head[0] === 0xfd && head[1] === 0x37 && head[2] === 0x7a && head[3] === 0x58 && head[4] === 0x5a) return ['-J'];
  if (head[0] === 0x42 && head[1] === 0x5a && head[2] === 0x68) return ['-j'];
  return [];
}

/**
 * The tar command line. GNU tar maps owner names to the host's ids by default, and the router's
 * ids are not Alpine's: --numeric-owner keeps the tarball's numbers. BusyBox tar has no such
 * names lookup to turn off.
 */
export function tarArgv(file: string, dir: string, head: Uint8Array, gnu: boolean): [string, ...string[]] {
  return ['tar', '-x', ...compressionFlag(head), '-p', ...(gnu ? ['--numeric-owner'] : []), '-f', file, '-C', dir];
}

export async function extractRootfs(d: RuntimeDeps, file: string, dir: string): Promise<void> {
  const fh = await open(file, 'r');
  const head = new Uint8Array(8);
  try {
    await fh.read(head, 0, 8, 0);
  } finally {
    await fh.close();
  }
  const gnu = /GNU tar/.test((await d.sys.exec(['tar', '--version'])).stdout);
  const argv = tarArgv(file, dir, head, gnu);
  const r = await d.sys.exec(argv);
  if (r.code !== 0) throw new FatalError(`unpacking the root filesystem failed (${argv.join(' ')}): ${r.stderr.trim().split('\n').slice(-3).join(' ')}`);
}

/** What apk.static runs to make a new Alpine root (keys and repositories are written into it first). */
export function apkStaticArgv(apk: string, dir: string, arch: string): [string, ...string[]] {
  return [apk, '--arch', arch, '--root', dir, '--initdb', '--update-cache', '--no-progress', 'add', 'alpine-base'];
}

export async function installWithApkStatic(d: RuntimeDeps, apk: string, dir: string, arch: string, repositories: readonly string[], keys: readonly { name: string; pem: string }[]): Promise<void> {
  for (const sub of ['etc', 'etc/apk', 'etc/apk/keys']) await d.sys.mkdir(join(dir, sub), 0o755).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== 'EEXIST') throw e;
  });
  for (const k of keys) await writeDeviceFile(d.sys, join(dir, 'etc/apk/keys', k.name), Buffer.from(k.pem), { mode: 0o644, symlink: 'replace' });
  await writeDeviceFile(d.sys, join(dir, 'etc/apk/repositories'), Buffer.from(`${repositories.join('\n')}\n`), { mode: 0o644, symlink: 'replace' });
  await d.sys.chmod(apk, 0o755);
  const argv = apkStaticArgv(apk, dir, arch);
  const r = await d.sys.exec(argv, { timeoutMs: 30 * 60_000 });
  if (r.code !== 0) throw new FatalError(`apk.static could not install Alpine (${argv.join(' ')}): ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' ')}; check that the device reaches ${repositories[0]}`);
}
