import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type OpenwrtSection, openwrtSectionSchema } from '@ibex/spec';
import { renderOpenwrtConfig } from '../capabilities/openwrt/openwrt-render.js';
import { configFileOf } from '../capabilities/openwrt/uci.js';
import { runAgent } from './agent-process.js';
import { NetnsDevice, sh } from './netns-device.js';
import { StandinOpenwrt } from './openwrt-standin.js';

/**
 * The openwrt tests' world, as root: the "host" is a NetnsDevice namespace (the agent runs
 * there, against a scratch root); the "container" is a StandinOpenwrt process (its own
 * namespaces, a BusyBox filesystem with the uci and init-script stand-ins). Ports are veth ends
 * whose peers sit in the device's peer namespace; the LAN parent lan0 is such a veth, up.
 */
export const PID_FILE = '/run/openwrt.pid';

export interface OpenwrtWorld {
  dev: NetnsDevice;
  owrt: StandinOpenwrt;
  wanMac: string;
  handle: string;
  /** Writes the container's current pid to the pid file the spec names. */
  writePid(): void;
  spec(extra?: Partial<Record<string, unknown>>): Record<string, unknown>;
  /** `ibex-agent <verb> --spec` with `section` as the openwrt section. */
  agent(verb: 'plan' | 'apply', section: unknown, env?: Record<string, string>, extraArgs?: string[]): Promise<{ code: number | null; stdout: string; stderr: string }>;
  hostLinks(): Array<{ ifindex: number; ifname: string; address?: string; flags: string[]; linkinfo?: { info_kind?: string }; addr_info: Array<{ local: string; prefixlen: number }> }>;
  /** The host's links as a comparable value: names, MACs, kinds, up or not, addresses (not ifindexes). */
  hostSnapshot(): string[];
  /** The container's UCI packages as uci export prints them. */
  uciSnapshot(): Record<string, string>;
}

export async function openwrtWorld(t: { after: (fn: () => unknown) => void }): Promise<OpenwrtWorld> {
  const dev = NetnsDevice.create();
  const owrt = StandinOpenwrt.create();
  t.after(async () => {
    await owrt.destroy();
    dev.destroy();
  });
  dev.addLink('lan0', 'p0');
  sh([...dev.prefix, 'ip', 'link', 'set', 'lan0', 'up']);
  const wanMac = `02:77:${randomBytes(4).toString('hex').match(/../g)!.join(':')}`;
  dev.addLink('wan0', 'p1', wanMac);
  await owrt.start();
  const writePid = () => {
    mkdirSync(join(dev.root, 'run'), { recursive: true });
    writeFileSync(join(dev.root, PID_FILE), `${owrt.pid}\n`);
  };
  writePid();
  const handle = `ow${dev.id}`;
  const spec = (extra: Partial<Record<string, unknown>> = {}) => ({
    container: { runtime: 'process', pidFile: PID_FILE },
    netnsName: handle,
    links: [
      { type: 'macvlan', name: 'eth0', parent: { name: 'lan0' }, shim: { name: 'owshim', addresses: ['192.168.77.2/24'] } },
      { type: 'port', name: 'eth1', match: { mac: wanMac } },
    ],
    config: { lan: { devices: ['eth0'], address: '192.168.77.1/24' }, wan: { device: 'eth1', proto: 'dhcp' } },
    confirmTimeoutSec: 30,
    ...extra,
  });
  let n = 0;
  const agent = async (verb: 'plan' | 'apply', section: unknown, env: Record<string, string> = {}, extraArgs: string[] = []) => {
    const f = join(dev.root, `spec-${++n}.json`);
    writeFileSync(f, JSON.stringify(section === undefined ? { files: { entries: [] } } : { openwrt: section }));
    return runAgent([verb, '--spec', f, '--root', dev.root, ...extraArgs], env, 120_000, dev.prefix);
  };
  const hostLinks = () => JSON.parse(sh([...dev.prefix, 'ip', '-j', '-d', 'addr', 'show']).stdout);
  const hostSnapshot = () =>
    (hostLinks() as ReturnType<OpenwrtWorld['hostLinks']>)
      .map((l) => `${l.ifname} ${l.address} ${l.linkinfo?.info_kind ?? '-'} ${l.flags.includes('UP') ? 'up' : 'down'} ${l.addr_info.map((a) => `${a.local}/${a.prefixlen}`).sort().join(',')}`)
      .sort();
  const uciSnapshot = () => Object.fromEntries(['network', 'dhcp', 'firewall'].map((n) => [n, owrt.exec(['/sbin/uci', 'export', n]).stdout]));
  return { dev, owrt, wanMac, handle, writePid, spec, agent, hostLinks, hostSnapshot, uciSnapshot };
}

export const parsed = (s: Record<string, unknown>): OpenwrtSection => openwrtSectionSchema.parse(s);
/** What /etc/config/NAME must hold after an apply: the renderer's package as uci commit writes it. */
export const expectedConfig = (s: Record<string, unknown>, name: string) => configFileOf(renderOpenwrtConfig(parsed(s).config!, new Map()).find((p) => p.name === name)!);
export const names = (links: Array<{ ifname: string }>) => links.map((l) => l.ifname).sort();
export const ping = (dev: NetnsDevice, ip: string) => sh([...dev.prefix, 'busybox', 'ping', '-c', '1', '-W', '3', ip], false);

