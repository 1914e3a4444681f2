import { basename, dirname, join } from 'node:path';
import { FatalError } from '../common/errors.js';
import type { SystemAdapter } from './system-adapter.js';

/**
 * The one way a capability writes a file of the device (files, network, the generations'
 * fstab, openwrt's handle, and the copies they keep in their backup directories):
 *
 * - normally a temp file beside the target, fsync, ONE rename() over it (a crash leaves the
 *   old file or the new one, never a mix);
 * - a target that rename() cannot replace is written in place: a mount point (a bind-mounted
 *   /etc/resolv.conf in Docker, LXC, systemd-nspawn and `ip netns exec`; seen in
 *   /proc/self/mountinfo) or any file where rename() fails with EBUSY (a mount point this
 *   process cannot see in its mountinfo) or EXDEV (the temp file and the target are on
 *   different filesystems). Not atomic, so every caller keeps the old bytes to revert;
 * - a symlink at the target is replaced by the file (`symlink: 'replace'`, the files section)
 *   or refused with an error naming it (`'refuse'`: network and generations never write
 *   through or over a link the device set up).
 */
export interface DeviceWriteOptions {
  mode: number;
  symlink: 'replace' | 'refuse';
  /** For the error message: which section refuses (e.g. "the network section"). */
  who?: string;
  /** Crash tests: after the temp file is written, before the rename (atomic path only). */
  beforeRename?: () => void;
}

/** How a write was done, for logs and tests. */
export type WriteHow = 'replaced' | 'in-place';

/** rename() errors that mean "this file cannot be replaced, but can be written". */
const NOT_REPLACEABLE = new Set(['EBUSY', 'EXDEV', 'EROFS']);

/** Whether the host path is a mount point this process sees (symlinks in its directory resolved). */
export async function isMountPoint(sys: SystemAdapter, host: string): Promise<boolean> {
  const mounts = await sys.mountPoints().catch(() => new Set<string>());
  if (mounts.has(host)) return true;
  const real = await sys.realpath(dirname(host)).catch(() => undefined);
  return real !== undefined && mounts.has(join(real, basename(host)));
}

export async function writeDeviceFile(sys: SystemAdapter, host: string, data: Uint8Array, opts: DeviceWriteOptions): Promise<WriteHow> {
  const st = await sys.lstat(host);
  if (st?.isSymbolicLink() && opts.symlink === 'refuse') {
    throw new FatalError(`${host} is a symlink; ${opts.who ?? 'this section'} does not write through or over symlinks: make it a regular file (or remove it) and apply again`);
  }
  if (st && !st.isFile() && !st.isSymbolicLink()) throw new FatalError(`${host} is not a regular file; nothing was written there`);
  if (st?.isFile() && (await isMountPoint(sys, host))) {
    await sys.writeFileInPlace(host, data, opts.mode);
    return 'in-place';
  }
  try {
    await sys.writeFileAtomic(host, data, { mode: opts.mode, beforeRename: opts.beforeRename });
    return 'replaced';
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (!st?.isFile() || code === undefined || !NOT_REPLACEABLE.has(code)) throw err;
    await sys.writeFileInPlace(host, data, opts.mode);
    return 'in-place';
  }
}

/**
 * Puts a symlink at the host path (openwrt's handle, the files section restoring a link). A
 * mount point cannot become a symlink: that is refused with the reason instead of failing with EBUSY.
 */
export async function placeDeviceSymlink(sys: SystemAdapter, host: string, target: string): Promise<void> {
  if ((await sys.lstat(host)) && (await isMountPoint(sys, host))) throw new FatalError(`${host} is a mount point; it cannot be replaced by a symlink (to ${target})`);
  await sys.symlinkAtomic(target, host);
}
