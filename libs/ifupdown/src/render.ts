import { posix } from 'node:path';
import { DNS_HOOK_NAME, type NetworkInterface, hookPhases, type NetworkRoute, type NetworkSection, parseCidr, prefixToNetmask } from '@ibex/spec';
import { type InterfacesItem, type ParsedInterfaces, parseInterfaces, serializeInterfaces, withoutInterfaces } from './parse.js';

/**
 * Renders the network section into ifupdown files, in the subset both ifupdown-ng and BusyBox
 * ifup accept (docs/network.md):
 * - one address per `iface` stanza, IPv4 with a dotted `netmask` (BusyBox builds
 *   `ip addr add ADDR/BITS` from it; ifupdown-ng reads it as the prefix), IPv6 with a numeric one;
 *   the first stanza of an interface carries its rename, gateway, MTU, DNS and routes;
 * - literal `source FILE` lines (no globs, no source-directory: BusyBox has neither);
 * - renames as a `pre-up` command of the interface itself, which both tools run before the
 *   link is brought up, guarded so that a second `ifup` does not fail;
 * - routes as `up ip route add` / `pre-down ip route del` (before the addresses are flushed; a
 *   route already gone does not fail the ifdown).
 * Pure and deterministic: the same spec and existing file give byte-identical output.
 */

export const ETC_NETWORK = '/etc/network';
export const INTERFACES = `${ETC_NETWORK}/interfaces`;
export const INTERFACES_D = `${ETC_NETWORK}/interfaces.d`;
export const BEGIN_MARK = '# BEGIN ibex-agent network (managed: lines up to END are replaced at each apply)';
export const END_MARK = '# END ibex-agent network';
const MANAGED_HOOK = '# managed hook: ';
export const FILE_HEADER = '# Managed by ibex-agent (the network section of the desired state); changes here are replaced at the next apply.';

export const hookPath = (phase: string, name: string) => `${ETC_NETWORK}/if-${phase}.d/${name}`;
/** The agent's own if-up.d hook that applies dns-nameservers / dns-search (spec hooks may not use the name). */
export const DNS_HOOK = hookPath('up', DNS_HOOK_NAME);
export const RESOLV_CONF = '/etc/resolv.conf';
/** Where the DNS hook leaves, per interface, what resolv.conf held right after it wrote it (for verify: a DHCP client may rewrite the file later). */
export const DNS_STAMP_DIR = '/run/ibex-dns';
export const ifaceFilePath = (name: string) => `${INTERFACES_D}/${name}`;
/** Names the agent writes (interface names, hook names: libs/spec network.ts allows no other characters). */
const SAFE_NAME = /^[A-Za-z0-9_-]+$/;
const MANAGED_HOOK_PATH = new RegExp(`^${ETC_NETWORK}/if-(${hookPhases.join('|')})\\.d/[A-Za-z0-9_-]+$`);

export interface RenderedFile {
  /** Device path (as on the device, without --root). */
  path: string;
  content: string;
  mode: number;
}

export interface ExistingConfig {
  /** The current /etc/network/interfaces (undefined when absent). */
  main?: string;
  /** Names of regular files now in interfaces.d. */
  interfacesD: readonly string[];
}

export interface RenderOptions {
  /** The directory `source` lines of the agent's files name: the host path of /etc/network/interfaces.d (differs from it under --root). */
  sourceDir: string;
  /** Where the hand-written files of interfaces.d are sourced from (default `sourceDir`; differs while validating a staged copy). */
  keptSourceDir?: string;
  /** The file the DNS hook writes: the host path of /etc/resolv.conf (differs from it under --root). */
  resolvConf?: string;
  /** The host path of DNS_STAMP_DIR (differs from it under --root). */
  dnsStampDir?: string;
}

const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * The DNS hook: neither ifupdown-ng (it looks for a `dns` executor, which does not exist, and
 * skips it) nor BusyBox ifup acts on dns-nameservers / dns-search; both export them to if-up.d
 * scripts as IF_DNS_NAMESERVERS / IF_DNS_SEARCH. This writes them to resolv.conf when an
 * interface that has them comes up: atomically (temp file + mv) for a regular file, in place
 * when mv cannot replace it (a bind mount) or no temp file can be made beside it (a read-only
 * /etc), through the link for a symlink (e.g. to a resolvconf-managed file). It then leaves
 * what resolv.conf holds in its stamp, which verify reads (network-plan.ts, dnsGaps). The path is fixed at render time,
 * like the `source` lines: under --root it is the root's file, never the host's.
 */
export function renderDnsHook(resolvConf: string, stampDir: string): string {
  return `#!/bin/sh
${FILE_HEADER}
# Applies this interface's dns-nameservers / dns-search (neither ifupdown-ng nor BusyBox ifup does).
[ -n "$IF_DNS_NAMESERVERS$IF_DNS_SEARCH" ] || exit 0
conf=${shellQuote(resolvConf)}
stamps=${shellQuote(stampDir)}
tmp="$conf.ibex-new"
lines() {
	echo "# Written by ibex-agent (if-up.d/${DNS_HOOK_NAME}) for $IFACE from its dns-nameservers / dns-search"
	[ -z "$IF_DNS_SEARCH" ] || echo "search $IF_DNS_SEARCH"
	for ns in $IF_DNS_NAMESERVERS; do echo "nameserver $ns"; done
}
if [ -L "$conf" ]; then
	lines > "$conf" || exit 1
elif ! { lines > "$tmp"; } 2>/dev/null; then
	# No temp file beside it (a read-only /etc with resolv.conf mounted writable on it): in place.
	rm -f "$tmp"
	lines > "$conf" || exit 1
elif ! { chmod 644 "$tmp" && mv -f "$tmp" "$conf" 2>/dev/null; }; then
	# A bind mount (Docker, LXC, ip netns exec) cannot be replaced by mv (EBUSY): written in place.
	cat "$tmp" > "$conf" && rm -f "$tmp" || exit 1
fi
# What resolv.conf holds now, for the agent's verify (a DHCP client may rewrite it later).
mkdir -p "$stamps" && cat "$conf" > "$stamps/$IFACE"
`;
}

/** What the managed block of an existing main file says the agent wrote last time. */
export interface ManagedBlock {
  sources: string[];
  hooks: string[];
}

export function managedBlockOf(main: string | undefined): ManagedBlock | undefined {
  if (main === undefined) return undefined;
  const lines = main.split('\n');
  const b = lines.indexOf(BEGIN_MARK);
  const e = lines.indexOf(END_MARK);
  if (b < 0 || e < b) return undefined;
  const inner = lines.slice(b + 1, e);
  // The block is a file on the device that anyone may edit: the paths it names are later read and
  // removed, so only what the agent itself writes there is taken (an interface file in
  // interfaces.d, a hook in an if-<phase>.d directory), never e.g. `../..` or /etc/passwd.
  return {
    sources: inner.flatMap((l) => (l.startsWith('source ') ? [l.slice('source '.length).trim()] : [])).filter((s) => SAFE_NAME.test(posix.basename(s))),
    hooks: inner.flatMap((l) => (l.startsWith(MANAGED_HOOK) ? [l.slice(MANAGED_HOOK.length).trim()] : [])).filter((h) => MANAGED_HOOK_PATH.test(h)),
  };
}

function stripManagedBlock(main: string): string {
  const lines = main.split('\n');
  const b = lines.indexOf(BEGIN_MARK);
  const e = lines.indexOf(END_MARK);
  if (b < 0 || e < b) return main;
  return [...lines.slice(0, b), ...lines.slice(e + 1)].join('\n');
}

const renameCommand = (iface: NetworkInterface): string | undefined => {
  const m = iface.match;
  const guard = `[ -e /sys/class/net/${iface.name} ]`;
  if (m?.name) return `${guard} || ip link set dev ${m.name} name ${iface.name}`;
  if (m?.mac)
    // No '#' anywhere: ifupdown-ng cuts an option line at it (so no ${d##*/}).
    return `${guard} || for d in /sys/class/net/*; do [ "$(cat "$d/address")" = "${m.mac.toLowerCase()}" ] && ip link set dev "$(basename "$d")" name ${iface.name} && break; done; ${guard}`;
  return undefined;
};

function routeArgs(r: NetworkRoute): string {
  return [r.to, ...(r.via ? ['via', r.via] : []), 'dev', r.interface, ...(r.metric !== undefined ? ['metric', String(r.metric)] : [])].join(' ');
}

/** The stanza text of one interface (all its `iface` stanzas), without the file header. */
export function renderInterface(iface: NetworkInterface, routes: readonly NetworkRoute[]): string {
  const out: string[] = [];
  if (iface.auto) out.push(`auto ${iface.name}`);
  const first: string[] = [];
  const rename = renameCommand(iface);
  if (rename) first.push(`pre-up ${rename}`);
  const tail: string[] = [];
  if (iface.mtu !== undefined) tail.push(`mtu ${iface.mtu}`);
  if (iface.dns?.servers.length) tail.push(`dns-nameservers ${iface.dns.servers.join(' ')}`);
  if (iface.dns?.search.length) tail.push(`dns-search ${iface.dns.search.join(' ')}`);
  for (const r of routes) tail.push(`up ip route add ${routeArgs(r)}`);
  // Already gone (a hook or an operator removed it) is what down wants: it must not fail the ifdown.
  for (const r of routes) tail.push(`pre-down ip route del ${routeArgs(r)} 2>/dev/null || true`);

  const stanzas: Array<{ head: string; opts: string[] }> = [];
  if (iface.method !== 'static') {
    stanzas.push({ head: `iface ${iface.name} inet ${iface.method}`, opts: [] });
  } else {
    // IPv4 first so a dual-stack interface's first stanza is `inet` (BusyBox runs them in order).
    const cidrs = iface.addresses.map((a) => parseCidr(a)!);
    const ordered = [...cidrs.filter((c) => c.family === 4), ...cidrs.filter((c) => c.family === 6)];
    let gw4 = iface.gateway;
    let gw6 = iface.gateway6;
    for (const c of ordered) {
      const opts = [`address ${c.address}`, `netmask ${c.family === 4 ? prefixToNetmask(c.prefix) : c.prefix}`];
      if (c.family === 4 && gw4) {
        opts.push(`gateway ${gw4}`);
        gw4 = undefined;
      }
      if (c.family === 6 && gw6) {
        opts.push(`gateway ${gw6}`);
        gw6 = undefined;
      }
      stanzas.push({ head: `iface ${iface.name} ${c.family === 4 ? 'inet' : 'inet6'} static`, opts });
    }
  }
  stanzas[0]!.opts = [...first, ...stanzas[0]!.opts, ...tail];
  stanzas.forEach((s, n) => {
    if (n > 0) out.push('');
    out.push(s.head, ...s.opts.map((o) => `\t${o}`));
  });
  return out.join('\n') + '\n';
}

/** A `source`/`source-directory` line that pulls in interfaces.d wholesale (a directory or a glob). */
function sourcesInterfacesD(it: InterfacesItem, sourceDir: string): boolean {
  if (it.kind !== 'source') return false;
  const p = posix.normalize(it.path.replace(/\/\*$/, ''));
  return (p === INTERFACES_D || p === sourceDir) && (it.keyword === 'source-directory' || it.path.endsWith('*'));
}

/**
 * Every file the section manages, by device path. `existing` is what is on the device now: its
 * hand-written parts are kept verbatim (minus stanzas of interfaces the spec now manages), and a
 * `source-directory` of interfaces.d becomes literal `source` lines for the hand-written files in it.
 */
export function renderNetwork(spec: NetworkSection, existing: ExistingConfig, opts: RenderOptions): RenderedFile[] {
  // A renamed interface is taken over under its old name too: a hand-written stanza for eth0
  // would otherwise still configure (or fail on) the link the spec renames.
  const managedNames = new Set(spec.interfaces.flatMap((i) => [i.name, ...(i.match?.name ? [i.match.name] : [])]));
  const ourFiles = new Set(spec.interfaces.map((i) => i.name));
  const previous = managedBlockOf(existing.main);
  const previousOurs = new Set((previous?.sources ?? []).map((s) => posix.basename(s)));
  // Hand-written files in interfaces.d: not ours now, not ours before.
  const handWritten = existing.interfacesD.filter((n) => !ourFiles.has(n) && !previousOurs.has(n) && !n.startsWith('.')).sort();

  const keptDir = opts.keptSourceDir ?? opts.sourceDir;
  let kept: ParsedInterfaces = existing.main === undefined ? { items: [], finalNewline: true } : withoutInterfaces(parseInterfaces(stripManagedBlock(existing.main)), managedNames);
  kept = {
    ...kept,
    items: kept.items.flatMap((it): InterfacesItem[] =>
      sourcesInterfacesD(it, keptDir) ? handWritten.map((n) => ({ kind: 'source', keyword: 'source', path: posix.join(keptDir, n), lines: [`source ${posix.join(keptDir, n)}`] })) : [it],
    ),
  };
  let head = serializeInterfaces(kept);
  if (head.trim() === '') head = `${FILE_HEADER}\n`;
  if (!head.endsWith('\n')) head += '\n';
  if (!head.endsWith('\n\n')) head += '\n';

  const hooks = [...spec.hooks].sort((a, b) => (a.phase + '/' + a.name < b.phase + '/' + b.name ? -1 : 1));
  const dns = spec.interfaces.some((i) => i.dns?.servers.length || i.dns?.search.length);
  const block = [
    BEGIN_MARK,
    ...spec.interfaces.map((i) => `source ${posix.join(opts.sourceDir, i.name)}`),
    ...hooks.map((h) => `${MANAGED_HOOK}${hookPath(h.phase, h.name)}`),
    ...(dns ? [`${MANAGED_HOOK}${DNS_HOOK}`] : []),
    END_MARK,
  ];
  const files: RenderedFile[] = [{ path: INTERFACES, content: head + block.join('\n') + '\n', mode: 0o644 }];
  for (const iface of spec.interfaces) {
    const routes = spec.routes.filter((r) => r.interface === iface.name);
    files.push({ path: ifaceFilePath(iface.name), content: `${FILE_HEADER}\n${renderInterface(iface, routes)}`, mode: 0o644 });
  }
  for (const h of hooks) files.push({ path: hookPath(h.phase, h.name), content: h.content, mode: parseInt(h.mode, 8) });
  if (dns) files.push({ path: DNS_HOOK, content: renderDnsHook(opts.resolvConf ?? RESOLV_CONF, opts.dnsStampDir ?? DNS_STAMP_DIR), mode: 0o755 });
  return files;
}

/** Device paths the previous apply wrote that the spec no longer has (to remove). */
export function staleManagedPaths(existing: ExistingConfig, rendered: readonly RenderedFile[]): string[] {
  const prev = managedBlockOf(existing.main);
  if (!prev) return [];
  const now = new Set(rendered.map((f) => f.path));
  const ifaceFiles = prev.sources.map((s) => ifaceFilePath(posix.basename(s)));
  return [...new Set([...ifaceFiles, ...prev.hooks])].filter((p) => !now.has(p)).sort();
}
