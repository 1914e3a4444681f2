// Pure parsers for the files facts come from; tested on fixture text.
import { parseMountinfo as parseMountinfoLines } from '../system/mountinfo.js';

export interface OsReleaseFacts {
  id: string;
  versionId: string;
  prettyName: string;
}

/** /etc/os-release: KEY=value lines, values optionally quoted with shell-style escapes. */
export function parseOsRelease(text: string): OsReleaseFacts {
  const kv = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = line.trim().match(/^([A-Z0-9_]+)=(.*)$/);
    if (!m) continue;
    let v = m[2]!.trim();
    const q = v[0];
    if ((q === '"' || q === "'") && v.endsWith(q) && v.length >= 2) {
      v = v.slice(1, -1);
      if (q === '"') v = v.replace(/\\(["\\$`])/g, '$1');
    }
    kv.set(m[1]!, v);
  }
  return { id: kv.get('ID') ?? '', versionId: kv.get('VERSION_ID') ?? '', prettyName: kv.get('PRETTY_NAME') ?? kv.get('NAME') ?? '' };
}

export interface MountEntry {
  device: string;
  mountpoint: string;
  fstype: string;
  readOnly: boolean;
}

// Kernel-internal and virtual filesystems: not storage anyone needs to see in the fleet view.
const PSEUDO_FS = new Set([
  'proc', 'sysfs', 'devtmpfs', 'devpts', 'cgroup', 'cgroup2', 'securityfs', 'pstore', 'debugfs', 'tracefs', 'mqueue',
  'hugetlbfs', 'bpf', 'configfs', 'fusectl', 'autofs', 'binfmt_misc', 'rpc_pipefs', 'nsfs', 'efivarfs', 'selinuxfs', 'ramfs',
  'nfsd', 'fuse.gvfsd-fuse', 'fuse.portal', 'overlay-lower',
]);

/**
 * /proc/self/mountinfo (system/mountinfo.ts parses the lines, escapes decoded) as facts.
 * Pseudo filesystems are left out; a mountpoint mounted over keeps only its top mount.
 */
export function parseMountinfo(text: string): MountEntry[] {
  const byMount = new Map<string, MountEntry>();
  for (const m of parseMountinfoLines(text)) {
    if (PSEUDO_FS.has(m.fsType)) continue;
    byMount.delete(m.mountPoint);
    byMount.set(m.mountPoint, { device: m.source, mountpoint: m.mountPoint, fstype: m.fsType, readOnly: m.mountOptions.split(',').includes('ro') });
  }
  return [...byMount.values()];
}

/** MemTotal from /proc/meminfo, in bytes. */
export function parseMemTotal(text: string): number | undefined {
  const m = text.match(/^MemTotal:\s+(\d+)\s*kB/m);
  return m ? Number(m[1]) * 1024 : undefined;
}

/** First number of /proc/uptime, whole seconds. */
export function parseUptime(text: string): number | undefined {
  const n = Number.parseFloat(text.trim().split(/\s+/)[0] ?? '');
  return Number.isFinite(n) && n >= 0 ? Math.floor(n) : undefined;
}

/** `flags` in /sys/class/net/<if>/ is hex; IFF_UP is bit 0. */
export function parseIfFlagsUp(text: string): boolean {
  const n = Number.parseInt(text.trim(), 16);
  return Number.isFinite(n) && (n & 0x1) === 1;
}
