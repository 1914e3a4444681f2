/** One line of /proc/self/mountinfo (proc(5)), with the octal escapes (`\040`) decoded. */
export interface MountEntry {
  mountId: number;
  /** Path inside the filesystem that is mounted here: for btrfs the subvolume path, e.g. `/snapshots/g2/@`. */
  root: string;
  mountPoint: string;
  fsType: string;
  source: string;
  superOptions: string;
}

const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

export function parseMountinfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    const sep = f.indexOf('-', 6);
    if (f.length < 10 || sep < 0) continue;
    out.push({
      mountId: Number(f[0]),
      root: unescape(f[3]!),
      mountPoint: unescape(f[4]!),
      fsType: f[sep + 1]!,
      source: unescape(f[sep + 2]!),
      superOptions: f[sep + 3] ?? '',
    });
  }
  return out;
}

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
