import { join } from 'node:path';
import { FatalError, errorMessage } from '../../common/errors.js';
import type { CapabilityContext } from '../../engine/capability.js';
import type { ExecOptions, ExecResult } from '../../system/system-adapter.js';
import { type RunningContainer, inNetns } from './container.js';
import type { HostPhy, LiveLink, LiveRoute } from './openwrt-plan.js';

/**
 * The system calls of the openwrt capability: programs with argument arrays (ip, iw, nsenter,
 * the container runtime), their errors turned into messages that say what to do, and the
 * readers of links, routes and Wi-Fi phys. Kernel state (/sys, links) is the agent's own, not
 * under --root.
 */

const tail = (r: ExecResult) =>
  `${r.stderr}\n${r.stdout}`
    .trim()
    .split('\n')
    .slice(-8)
    .join('\n');

/** Runs a program; a non-zero exit becomes an error with its output. */
export async function run(ctx: CapabilityContext, argv: readonly string[], what: string, opts: Pick<ExecOptions, 'input' | 'env'> = {}): Promise<string> {
  const r = await exec(ctx, argv, opts);
  if (r.code !== 0) throw new FatalError(`${what} failed (${argv.join(' ')} exited ${r.code ?? r.signal}): ${tail(r)}`);
  return r.stdout;
}

export async function exec(ctx: CapabilityContext, argv: readonly string[], opts: Pick<ExecOptions, 'input' | 'env'> = {}): Promise<ExecResult> {
  ctx.log.debug('run', { argv: argv.join(' ') });
  try {
    return await ctx.sys.exec(argv as [string, ...string[]], { signal: ctx.signal, timeoutMs: 120_000, ...opts });
  } catch (err) {
    if (/ENOENT/.test(errorMessage(err))) throw new FatalError(`${argv[0]} is not installed (or not on PATH): ${errorMessage(err)}; install it (Debian/Alpine package ${packageOf(argv[0]!)})`);
    throw err;
  }
}

const packageOf = (prog: string) => ({ ip: 'iproute2', iw: 'iw', nsenter: 'util-linux' })[prog] ?? prog;

/** Runs and tolerates one kind of failure (e.g. "File exists" when adding what is there). */
export async function runTolerating(ctx: CapabilityContext, argv: readonly string[], what: string, tolerated: RegExp): Promise<void> {
  const r = await exec(ctx, argv);
  if (r.code !== 0 && !tolerated.test(tail(r))) throw new FatalError(`${what} failed (${argv.join(' ')} exited ${r.code ?? r.signal}): ${tail(r)}`);
}

interface IpJson {
  ifindex: number;
  ifname: string;
  address?: string;
  permaddr?: string;
  flags?: string[];
  link?: string;
  link_index?: number;
  linkinfo?: { info_kind?: string; info_data?: { mode?: string } };
  addr_info?: Array<{ family: string; local: string; prefixlen: number }>;
}

export function parseIpLinks(json: string): LiveLink[] {
  const raw = JSON.parse(json || '[]') as IpJson[];
  return raw.map((l) => ({
    name: l.ifname,
    ifindex: l.ifindex,
    mac: l.address,
    permMac: l.permaddr,
    up: (l.flags ?? []).includes('UP'),
    kind: l.linkinfo?.info_kind,
    mode: l.linkinfo?.info_data?.mode,
    parent: l.link,
    parentIndex: l.link === undefined ? l.link_index : undefined,
    addresses: (l.addr_info ?? []).filter((a) => a.family === 'inet' || a.family === 'inet6').map((a) => `${a.local}/${a.prefixlen}`),
  }));
}

export const hostLinks = async (ctx: CapabilityContext) => parseIpLinks(await run(ctx, ['ip', '-j', '-d', 'addr', 'show'], 'listing the host links'));

export const insideLinks = async (ctx: CapabilityContext, c: Pick<RunningContainer, 'nsPath' | 'label'>) =>
  parseIpLinks(await run(ctx, inNetns(c, ['ip', '-j', '-d', 'addr', 'show']), `listing the links of ${c.label}`));

export async function hostRoutes(ctx: CapabilityContext): Promise<LiveRoute[]> {
  const out: LiveRoute[] = [];
  for (const fam of ['-4', '-6']) {
    const raw = JSON.parse((await run(ctx, ['ip', '-j', fam, 'route', 'show'], 'listing the host routes')) || '[]') as Array<{ dst: string; dev?: string; protocol?: string }>;
    out.push(...raw.map((r) => ({ dst: r.dst, dev: r.dev, protocol: r.protocol })));
  }
  return out;
}

export const SYS_PHYS = '/sys/class/ieee80211';
export const SYS_NET = '/sys/class/net';

/** Wi-Fi phys on the host (the agent's namespace): /sys/class/ieee80211, their MACs and their interfaces. */
export async function hostPhys(ctx: CapabilityContext): Promise<HostPhy[]> {
  const phys: HostPhy[] = [];
  for (const phy of (await ctx.sys.readdir(SYS_PHYS)).sort()) {
    const mac = await ctx.sys.readFile(join(SYS_PHYS, phy, 'macaddress')).then(
      (b) => b.toString('utf8').trim().toLowerCase(),
      () => undefined,
    );
    phys.push({ phy, mac, netdevs: [] });
  }
  if (!phys.length) return phys;
  for (const dev of await ctx.sys.readdir(SYS_NET)) {
    const target = await ctx.sys.readlink(join(SYS_NET, dev, 'phy80211')).catch(() => undefined);
    const phy = target?.split('/').pop();
    phys.find((p) => p.phy === phy)?.netdevs.push(dev);
  }
  return phys;
}

/** Phy names in the container's namespace (`iw phy`, which lists only the namespace's own). */
export async function insidePhys(ctx: CapabilityContext, c: Pick<RunningContainer, 'nsPath' | 'label'>): Promise<string[]> {
  const r = await exec(ctx, inNetns(c, ['iw', 'phy']));
  if (r.code !== 0) throw new FatalError(iwProblem(r, `listing the Wi-Fi radios of ${c.label}`));
  return [...r.stdout.matchAll(/^Wiphy (\S+)/gm)].map((m) => m[1]!);
}

/**
 * What an iw failure means, in words: a driver that cannot change namespace ("Operation not
 * supported": no WIPHY_FLAG_NETNS_OK), a kernel without nl80211, a phy that went away.
 */
export function iwProblem(r: ExecResult, what: string): string {
  const out = tail(r);
  if (/Operation not supported|\(-95\)/.test(out))
    return `${what}: the Wi-Fi driver does not support moving its phy to another network namespace (iw: "${out}"). Such a driver (no WIPHY_FLAG_NETNS_OK) cannot be given to a container: use a card whose driver supports it, or keep Wi-Fi on the host`;
  if (/nl80211 not found/.test(out)) return `${what}: the kernel has no nl80211 (cfg80211 is not loaded, or there is no Wi-Fi hardware): iw says "${out}"`;
  if (/No such device|\(-19\)/.test(out)) return `${what}: the phy is gone (unplugged or renamed; phy names change after a replug, the next apply looks it up again): iw says "${out}"`;
  if (/Operation not permitted|\(-1\)/.test(out)) return `${what}: not permitted (iw says "${out}"): the agent needs CAP_NET_ADMIN`;
  return `${what} failed (iw exited ${r.code ?? r.signal}): ${out}`;
}

/** ip's "does not exist" answers, for the idempotent deletes and moves. */
export const NO_SUCH_LINK = /Cannot find device|does not exist|No such device/;
