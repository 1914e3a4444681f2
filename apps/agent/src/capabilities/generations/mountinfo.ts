import type { MountEntry } from '../../system/mountinfo.js';

// The parser is shared with the file writer (system/device-file-writer.ts), which must know mount points.
export { type MountEntry, parseMountinfo } from '../../system/mountinfo.js';

/**
 * The generation a btrfs mount shows: `mount -o subvol=current/0/@` follows the symlinks and
 * mountinfo records the real subvolume, `/snapshots/<gen>/@` (checked on a real btrfs). The
 * root field is preferred; the `subvol=` super option is the fallback for kernels that print `/`.
 */
export function generationOfMount(m: MountEntry): string | undefined {
  if (m.fsType !== 'btrfs') return undefined;
  const fromPath = (p: string) => /^\/snapshots\/([^/]+)\/@(?:\/.*)?$/.exec(p)?.[1];
  const subvol = /(?:^|,)subvol=([^,]+)/.exec(m.superOptions)?.[1];
  return fromPath(m.root) ?? (subvol ? fromPath(subvol.startsWith('/') ? subvol : `/${subvol}`) : undefined);
}

/** The source device of the volume's top-level mount, when it is in this mountinfo. */
export function volumeSource(mounts: readonly MountEntry[], volumeMountPoint: string): string | undefined {
  return mounts.find((m) => m.mountPoint === volumeMountPoint && m.fsType === 'btrfs')?.source;
}

/**
 * The generation the running system booted: the btrfs mount at `rootMountPoint` (`/` on a
 * device). When the volume's own mount is visible too, the root must be on the same device.
 */
export function bootedGeneration(mounts: readonly MountEntry[], rootMountPoint: string, source: string | undefined): string | undefined {
  // The last mount on a mount point is the one that is visible.
  const root = mounts.filter((m) => m.mountPoint === rootMountPoint).at(-1);
  if (!root || (source !== undefined && root.source !== source)) return undefined;
  return generationOfMount(root);
}

/** Every generation some mount uses (a generation mounted anywhere must not be deleted). */
export function mountedGenerations(mounts: readonly MountEntry[], source: string | undefined): Set<string> {
  const out = new Set<string>();
  for (const m of mounts) {
    if (source !== undefined && m.source !== source) continue;
    const g = generationOfMount(m);
    if (g) out.add(g);
  }
  return out;
}
