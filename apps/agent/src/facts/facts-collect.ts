import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import type { Facts as ProtoFacts } from '@ibex/proto';
import { type Facts, factsSchema, type GenerationsInventory } from '@ibex/spec';
import { FilesystemSizes } from './filesystem-sizes.js';
import { parseIfFlagsUp, parseMemTotal, parseMountinfo, parseOsRelease, parseUptime } from './facts-parse.js';

export interface FactSources {
  /** The agent's --root: /etc/os-release and /etc/hostname are read under it. */
  root: string;
  /** Where /proc and /sys are (the running kernel's, so `/` except in tests). */
  hostRoot?: string;
  agentVersion: string;
  now?: () => number;
  networkInterfaces?: () => NodeJS.Dict<os.NetworkInterfaceInfo[]>;
  /**
   * Sizes of the mounted filesystems, with a deadline each (a hung NFS mount must not hold the
   * agent). The agent keeps one for the process so a hung filesystem is not asked again while its
   * call is pending; a fresh one (no log) otherwise.
   */
  sizes?: FilesystemSizes;
  /** The generations inventory, collected beforehand (it has its own refresh and cache). */
  generations?: GenerationsInventory;
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

function cidr(a: os.NetworkInterfaceInfo): string {
  return a.cidr ?? `${a.address}/${a.family === 'IPv4' ? 32 : 128}`;
}

const clip = (s: string, max: number) => (s.length > max ? s.slice(0, max) : s);

/** Reads the facts (proto `Facts`, `factsSchema`) of the machine; missing sources give empty values. */
export async function collectFacts(src: FactSources): Promise<Facts> {
  const host = src.hostRoot ?? '/';
  const now = src.now ?? Date.now;
  const ifaces = (src.networkInterfaces ?? os.networkInterfaces)();
  const sizes = src.sizes ?? new FilesystemSizes();

  const hostname = (read(join(host, 'proc/sys/kernel/hostname')) ?? read(join(src.root, 'etc/hostname')) ?? os.hostname()).trim();
  const osRelease = read(join(src.root, 'etc/os-release')) ?? read(join(src.root, 'usr/lib/os-release'));

  let netNames: string[];
  try {
    netNames = readdirSync(join(host, 'sys/class/net')).sort();
  } catch {
    netNames = Object.keys(ifaces).sort();
  }
  const interfaces = netNames.slice(0, 256).map((name) => {
    const dir = join(host, 'sys/class/net', name);
    const addrs = ifaces[name] ?? [];
    const mac = read(join(dir, 'address'))?.trim() ?? addrs[0]?.mac ?? '';
    const flags = read(join(dir, 'flags'));
    return {
      name: clip(name, 64),
      mac: clip(mac, 64),
      mtu: Math.min(Number.parseInt(read(join(dir, 'mtu')) ?? '0', 10) || 0, 1 << 20),
      up: flags !== undefined ? parseIfFlagsUp(flags) : addrs.length > 0,
      addresses: addrs.map(cidr).slice(0, 64),
    };
  });

  // All at once: one slow filesystem costs its deadline once, not once per filesystem after it.
  const filesystems = await Promise.all(
    parseMountinfo(read(join(host, 'proc/self/mountinfo')) ?? '')
      .slice(0, 256)
      .map(async (m) => {
        const s = await sizes.sizeOf(m.mountpoint);
        return { device: clip(m.device, 512), mountpoint: clip(m.mountpoint, 1024), fstype: clip(m.fstype, 64), sizeBytes: s?.sizeBytes ?? 0, usedBytes: s?.usedBytes ?? 0, readOnly: m.readOnly };
      }),
  );

  const facts: Facts = {
    hostname: clip(hostname, 253),
    osRelease: osRelease === undefined ? undefined : (() => {
      const r = parseOsRelease(osRelease);
      return { id: clip(r.id, 64), versionId: clip(r.versionId, 64), prettyName: clip(r.prettyName, 256) };
    })(),
    kernel: clip((read(join(host, 'proc/sys/kernel/osrelease')) ?? os.release()).trim(), 256),
    arch: clip(os.machine(), 32),
    interfaces,
    filesystems,
    agentVersion: src.agentVersion,
    uptimeSeconds: parseUptime(read(join(host, 'proc/uptime')) ?? '') ?? Math.floor(os.uptime()),
    memoryTotalBytes: parseMemTotal(read(join(host, 'proc/meminfo')) ?? '') ?? os.totalmem(),
    cpuCount: os.availableParallelism(),
    collectedAtMs: now(),
    ...(src.generations ? { generations: src.generations } : {}),
  };
  // The controller refuses facts outside these bounds: find out here, not there.
  return factsSchema.parse(facts);
}

/**
 * The same facts as the proto message (which spells the optional os-release as a required key
 * and carries the generations inventory as JSON text, empty when there is none).
 */
export function toProtoFacts(f: Facts): ProtoFacts {
  const { generations, ...rest } = f;
  return { ...rest, osRelease: f.osRelease, generationsJson: generations ? JSON.stringify(generations) : '' };
}
