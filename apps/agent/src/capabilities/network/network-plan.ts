import { posix } from 'node:path';
import { type NetworkSection, ipToBigInt, ipFamily, parseCidr } from '@ibex/spec';
import type { StepSummary } from '../../engine/section-result.js';
import { autoNames, ifaceNames, ifaceOptions, parseInterfaces, renamesOf, type ParsedInterfaces } from './parse.js';
import { DNS_STAMP_DIR, type ExistingConfig, INTERFACES, INTERFACES_D, RESOLV_CONF, type RenderedFile, renderNetwork, staleManagedPaths } from './render.js';
import { unifiedDiff } from '../../engine/unified-diff.js';

/** A link as `ip -j addr` shows it. */
export interface LiveLink {
  name: string;
  mac?: string;
  up: boolean;
  /** `addr/prefix`, both families. */
  addresses: string[];
}

export interface LiveRoute {
  dst: string;
  gateway?: string;
  dev?: string;
  metric?: number;
}

/** Host paths and tool argv prefixes the steps use (under --root). */
export interface NetworkPaths {
  /** Host path of /etc/network/interfaces. */
  interfaces: string;
  /** What `source` lines name for /etc/network/interfaces.d: the device path, or its host path when the tools here do not see the root's /etc/network there. */
  interfacesD: string;
  /** ifupdown-ng state file (-S). */
  stateFile: string;
  /** Where the validate step stages the new files. */
  staging: string;
  /** Host path for a device path. */
  host: (devicePath: string) => string;
}

export interface NetworkActual {
  paths: NetworkPaths;
  existing: ExistingConfig;
  /** Current content of every file the plan may touch (device path -> content; absent = missing). */
  files: Record<string, { content: string; mode: number } | undefined>;
  /** The files the current configuration is read from (main + everything it sources), parsed, for the old config of each interface. */
  current: ParsedInterfaces[];
  links: LiveLink[];
  routes: LiveRoute[];
  /** Whether the BusyBox applet is there to double-check the files. */
  busybox: boolean;
  /**
   * /etc/resolv.conf, which the DNS hook writes at ifup: `unreadable` when it cannot be judged
   * under the root (a symlink the hook writes through). Missing: not observed (no check).
   */
  resolvConf?: { kind: 'file'; content: string } | { kind: 'absent' } | { kind: 'unreadable' };
  /** What the DNS hook left in DNS_STAMP_DIR, by interface (absent: it has not run, or failed, since the last ifup). */
  dnsStamps?: Record<string, string | undefined>;
}

export type NetworkStep =
  | { action: 'refuse'; reason: string }
  /** `staging`: where the commands read the new files (the executor writes them there first). */
  | { action: 'validate'; spec: NetworkSection; existing: ExistingConfig; staging: string; commands: string[][] }
  | { action: 'ifdown'; interfaces: string[]; undoRenames: Array<{ from: string; to: string }>; commands: string[][]; reason: string }
  | { action: 'write'; path: string; content: string; mode: number; before?: string; beforeMode?: number }
  | { action: 'remove'; path: string; before: string }
  | { action: 'ifup'; interfaces: string[]; commands: string[][]; reason: string; leases: LeaseWait[] };

/** A dhcp interface the ifup step waits for: ifupdown-ng's udhcpc -b may return before the lease. */
export interface LeaseWait {
  name: string;
  timeoutSec: number;
}

export const ifupdownArgs = (paths: NetworkPaths, tool: 'ifup' | 'ifdown', names: string[], extra: string[] = []): string[] => [tool, ...extra, '-i', paths.interfaces, '-S', paths.stateFile, ...names];

/** The validation commands: ifupdown-ng's dry run (it parses every sourced file), and BusyBox's when present. */
export function validateCommands(paths: NetworkPaths, busybox: boolean): string[][] {
  const main = posix.join(paths.staging, 'interfaces');
  const cmds = [['ifup', '-n', '-a', '-i', main, '-S', posix.join(paths.staging, 'ifstate')]];
  if (busybox) cmds.push(['busybox', 'ifup', '-n', '-a', '-i', main]);
  return cmds;
}

/** One interface's configuration as a comparable string: its stanzas' headers and options, in order, and whether it is auto. */
function canonical(files: readonly ParsedInterfaces[], name: string): string | undefined {
  const heads = files.flatMap((p) => p.items.flatMap((it) => (it.kind === 'iface' && it.name === name ? [`${it.family ?? ''} ${it.method ?? ''}`] : [])));
  if (!heads.length) return undefined;
  const opts = files.flatMap((p) => ifaceOptions(p, name).map((o) => `${o.key} ${o.value}`));
  const auto = files.some((p) => autoNames(p).includes(name));
  return JSON.stringify({ heads, opts, auto });
}

const sameIp = (a: string, b: string) => ipFamily(a) !== undefined && ipFamily(a) === ipFamily(b) && ipToBigInt(a) === ipToBigInt(b);
const sameCidr = (a: string, b: string) => {
  const x = parseCidr(a);
  const y = parseCidr(b);
  return !!x && !!y && x.prefix === y.prefix && sameIp(x.address, y.address);
};

/** What is missing live for an interface the spec brings up: empty when it is as configured. */
export function liveGaps(spec: NetworkSection, actual: Pick<NetworkActual, 'links' | 'routes' | 'resolvConf' | 'dnsStamps'>): Map<string, string[]> {
  const gaps = new Map<string, string[]>();
  const add = (n: string, g: string) => gaps.set(n, [...(gaps.get(n) ?? []), g]);
  for (const i of spec.interfaces) {
    if (!i.auto) continue;
    const link = actual.links.find((l) => l.name === i.name);
    if (!link) {
      add(i.name, 'the link does not exist');
      continue;
    }
    if (!link.up) add(i.name, 'the link is down');
    for (const a of i.addresses) if (!link.addresses.some((x) => sameCidr(x, a))) add(i.name, `address ${a} is missing`);
    for (const gw of [i.gateway, i.gateway6]) {
      if (gw && !actual.routes.some((r) => r.dst === 'default' && r.gateway !== undefined && sameIp(r.gateway, gw) && r.dev === i.name)) add(i.name, `the default route via ${gw} is missing`);
    }
  }
  for (const r of spec.routes) {
    const i = spec.interfaces.find((x) => x.name === r.interface);
    if (!i?.auto) continue;
    const present = actual.routes.some(
      (x) => x.dst !== 'default' && sameCidr(x.dst.includes('/') ? x.dst : `${x.dst}/${ipFamily(x.dst) === 6 ? 128 : 32}`, r.to) && x.dev === r.interface && (r.via ? x.gateway !== undefined && sameIp(x.gateway, r.via) : true) && (r.metric === undefined || (x.metric ?? 0) === r.metric),
    );
    if (!present) add(r.interface, `the route to ${r.to}${r.via ? ` via ${r.via}` : ''} is missing`);
  }
  for (const g of dnsGaps(spec, actual)) add(g.name, g.gap);
  return gaps;
}

/** The `nameserver` and `search` lines of a resolv.conf. */
function resolvLines(text: string): { servers: string[]; search: string[] } {
  const words = text.split('\n').map((l) => l.trim().split(/\s+/));
  return { servers: words.filter((w) => w[0] === 'nameserver').map((w) => w[1] ?? ''), search: words.filter((w) => w[0] === 'search').flatMap((w) => w.slice(1)) };
}

const dnsOf = (i: NetworkSection['interfaces'][number]) => ({ servers: i.dns?.servers ?? [], search: i.dns?.search ?? [] });
const sameList = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((x, i) => x === b[i]);
const holdsDns = (text: string, i: NetworkSection['interfaces'][number]) => {
  const held = resolvLines(text);
  return sameList(held.servers, dnsOf(i).servers) && sameList(held.search, dnsOf(i).search);
};
const wantText = (i: NetworkSection['interfaces'][number]) =>
  [dnsOf(i).servers.length ? `dns-nameservers ${dnsOf(i).servers.join(' ')}` : '', dnsOf(i).search.length ? `dns-search ${dnsOf(i).search.join(' ')}` : ''].filter(Boolean).join(', ');

/**
 * Whether the DNS the spec asks for reached resolv.conf (issue 16: a hook whose `mv` failed on a
 * bind mount left it unchanged while the apply said `in sync`). Each gap restarts its interface,
 * whose ifup runs the hook again.
 * - No `auto` DHCP interface in the spec: resolv.conf itself must hold the dns-nameservers /
 *   dns-search of one of the auto interfaces that have them (whichever came up last); if not,
 *   the last of them has the gap. Not judged when resolv.conf is a symlink.
 * - With one, its DHCP client also writes resolv.conf at each lease and renewal, so the file
 *   holds whoever wrote last: then each interface with DNS must have the hook's stamp
 *   (DNS_STAMP_DIR/<name>: what resolv.conf held right after the hook wrote it) holding its DNS,
 *   which proves the hook ran and its write landed.
 */
function dnsGaps(spec: NetworkSection, actual: Pick<NetworkActual, 'resolvConf' | 'dnsStamps'>): Array<{ name: string; gap: string }> {
  const withDns = spec.interfaces.filter((i) => i.auto && (i.dns?.servers.length || i.dns?.search.length));
  if (!withDns.length) return [];
  if (spec.interfaces.some((i) => i.auto && i.method === 'dhcp')) {
    if (!actual.dnsStamps) return [];
    return withDns.flatMap((i) => {
      const stamp = actual.dnsStamps![i.name];
      if (stamp !== undefined && holdsDns(stamp, i)) return [];
      return [{ name: i.name, gap: `the DNS hook did not write its ${wantText(i)} to ${RESOLV_CONF} (${stamp === undefined ? `no ${DNS_STAMP_DIR}/${i.name} since it came up` : `${DNS_STAMP_DIR}/${i.name} holds other lines`})` }];
    });
  }
  const rc = actual.resolvConf;
  if (!rc || rc.kind === 'unreadable') return [];
  if (withDns.some((i) => holdsDns(rc.kind === 'file' ? rc.content : '', i))) return [];
  const last = withDns.at(-1)!;
  return [{ name: last.name, gap: `${RESOLV_CONF} does not hold its ${wantText(last)}${rc.kind === 'absent' ? ' (it is missing)' : ''}` }];
}

/**
 * Pure: the steps that make the device's ifupdown files and live interfaces match the spec.
 * Files differ -> validate the new files with the real tools, ifdown the affected interfaces
 * with the OLD config (undoing their renames), replace the files, ifup them. Files match but
 * an interface is not as configured (drift) -> ifdown + ifup it. Nothing differs -> [].
 */
export function planNetwork(spec: NetworkSection, actual: NetworkActual): NetworkStep[] {
  const { paths } = actual;
  // Refuse interfaces that cannot be there: no link by its final name, its match name or MAC.
  const refusals: NetworkStep[] = [];
  for (const i of spec.interfaces) {
    if (i.method === 'loopback') continue;
    const found = actual.links.some((l) => l.name === i.name || (i.match?.name !== undefined && l.name === i.match.name) || (i.match?.mac !== undefined && l.mac === i.match.mac.toLowerCase()));
    if (!found) {
      const what = i.match?.mac ? `with MAC ${i.match.mac}` : i.match?.name ? `${i.match.name} (to be renamed ${i.name})` : i.name;
      refusals.push({ action: 'refuse', reason: `interfaces: no network interface ${what} on this device; nothing was changed` });
    }
  }
  if (refusals.length) return refusals;

  const rendered = renderNetwork(spec, actual.existing, { sourceDir: paths.interfacesD, resolvConf: paths.host(RESOLV_CONF), dnsStampDir: paths.host(DNS_STAMP_DIR) });
  const stale = staleManagedPaths(actual.existing, rendered);
  const writes: NetworkStep[] = rendered.flatMap((f): NetworkStep[] => {
    const now = actual.files[f.path];
    if (now && now.content === f.content && now.mode === f.mode) return [];
    return [{ action: 'write', path: f.path, content: f.content, mode: f.mode, before: now?.content, beforeMode: now?.mode }];
  });
  const removes: NetworkStep[] = stale.flatMap((p): NetworkStep[] => {
    const now = actual.files[p];
    return now ? [{ action: 'remove', path: p, before: now.content }] : [];
  });

  const newParsed = newConfigFiles(rendered);
  const live = new Set(actual.links.map((l) => l.name));
  const oldNames = new Set(actual.current.flatMap(ifaceNames));
  const newNames = new Set(spec.interfaces.map((i) => i.name));
  const newAuto = new Set(spec.interfaces.filter((i) => i.auto).map((i) => i.name));

  // Every interface observe shows is not as the spec wants goes into the plan: the ones whose
  // stanza changes, AND the ones whose files are unchanged but whose live state drifted (a link
  // that is down, like `lo` in a fresh namespace). Otherwise verify (which plans again) finds
  // them and reverts a good change: a plan right after a successful apply must be empty.
  const gaps = liveGaps(spec, actual);
  const changed = writes.length || removes.length ? [...new Set([...oldNames, ...newNames])].filter((n) => canonical(actual.current, n) !== canonical(newParsed, n)) : [];
  if (!writes.length && !removes.length && !gaps.size) return [];
  // The summary names the drift of the interfaces whose configuration stays (the others restart anyway).
  const drift = [...gaps].filter(([n]) => !changed.includes(n)).map(([n, g]) => `${n}: ${g.join(', ')}`).join('; ');
  const affected = [...new Set([...changed, ...gaps.keys()])].sort();
  const reason = [changed.length ? 'its configuration changes' : '', drift].filter(Boolean).join('; ');

  const steps: NetworkStep[] = [];
  if (writes.length || removes.length) steps.push({ action: 'validate', spec, existing: actual.existing, staging: paths.staging, commands: validateCommands(paths, actual.busybox) });
  // Down with the old config: only what it defines and what exists now.
  const down = affected.filter((n) => oldNames.has(n) && live.has(n));
  const oldRenames = actual.current.flatMap(renamesOf).filter((r) => affected.includes(r.to));
  if (down.length || oldRenames.length) {
    steps.push({
      action: 'ifdown',
      interfaces: down,
      undoRenames: oldRenames,
      commands: [...(down.length ? [ifupdownArgs(paths, 'ifdown', down, ['-f'])] : []), ...oldRenames.map((r) => ['ip', 'link', 'set', 'dev', r.to, 'name', r.from])],
      reason,
    });
  }
  steps.push(...writes, ...removes);
  const up = affected.filter((n) => newAuto.has(n));
  const leases = spec.interfaces.filter((i) => i.method === 'dhcp' && up.includes(i.name)).map((i) => ({ name: i.name, timeoutSec: i.dhcpTimeoutSec ?? spec.dhcpTimeoutSec }));
  if (up.length) steps.push({ action: 'ifup', interfaces: up, commands: [ifupdownArgs(paths, 'ifup', up)], reason, leases });
  return steps;
}

/** The new configuration as the tools will read it: the main file and the interfaces.d files it sources. */
function newConfigFiles(rendered: readonly RenderedFile[]): ParsedInterfaces[] {
  return rendered.filter((f) => f.path === INTERFACES || f.path.startsWith(`${INTERFACES_D}/`)).map((f) => parseInterfaces(f.content));
}

/** Reports carry summaries (the controller takes up to 256 KiB of detail per section): long diffs are cut. */
const MAX_DIFF = 16 * 1024;
const capped = (d: string) => (d.length <= MAX_DIFF ? d : `${d.slice(0, MAX_DIFF)}\n... (diff cut at ${MAX_DIFF} bytes of ${d.length})\n`);

const modeText = (m: number) => '0' + (m & 0o7777).toString(8).padStart(3, '0');

export function summarizeNetworkStep(step: NetworkStep): StepSummary {
  switch (step.action) {
    case 'refuse':
      return { action: step.action, text: `cannot apply: ${step.reason}` };
    case 'validate':
      return { action: step.action, text: 'validate the new files with the real tools before changing anything', commands: step.commands };
    case 'ifdown':
      return {
        action: step.action,
        interfaces: step.interfaces,
        text: `bring down ${step.interfaces.join(', ') || '(nothing up)'} with the configuration in place now${step.undoRenames.length ? ` and undo renames ${step.undoRenames.map((r) => `${r.to}->${r.from}`).join(', ')}` : ''} (${step.reason})`,
        commands: step.commands,
      };
    case 'write':
      return {
        action: step.action,
        path: step.path,
        mode: modeText(step.mode),
        text: `write ${step.path} (${Buffer.byteLength(step.content)} bytes, mode ${modeText(step.mode)}; ${step.before === undefined ? 'creates it' : step.before === step.content ? `mode was ${modeText(step.beforeMode ?? 0)}` : 'replaces it'})`,
        diff: capped(unifiedDiff(step.path, step.before ?? null, step.content)),
      };
    case 'remove':
      return { action: step.action, path: step.path, text: `remove ${step.path} (no longer in the spec)`, diff: capped(unifiedDiff(step.path, step.before ?? null, null)) };
    case 'ifup':
      return {
        action: step.action,
        interfaces: step.interfaces,
        text: `bring up ${step.interfaces.join(', ')} (${step.reason})${step.leases.map((l) => `; wait up to ${l.timeoutSec} s for a DHCP lease on ${l.name}`).join('')}`,
        commands: step.commands,
      };
  }
}
