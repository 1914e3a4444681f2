/** One line of /proc/self/mountinfo (proc(5)), with the octal escapes (`\040`) decoded. */
export interface MountEntry {
  mountId: number;
  /** Path inside the filesystem that is mounted here: for btrfs the subvolume path, e.g. `/snapshots/g2/@`. */
  root: string;
  mountPoint: string;
  fsType: string;
  source: string;
  /** Per-mount options (field 6: `rw,noatime`). */
  mountOptions: string;
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
      mountOptions: f[5]!,
      fsType: f[sep + 1]!,
      source: unescape(f[sep + 2]!),
      superOptions: f[sep + 3] ?? '',
    });
  }
  return out;
}
