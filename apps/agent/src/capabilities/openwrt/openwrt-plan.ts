import { createHash } from 'node:crypto';
import { type LinkMatch, type OpenwrtContainer, type OpenwrtLink, type OpenwrtSection, type Shim, type UciPackageName, ipFamily, parseCidr, uciPackageNames } from '@ibex/spec';
import type { StepSummary } from '../../engine/section-result.js';
import { unifiedDiff } from '../../engine/unified-diff.js';
import { type ContainerState, type RunningContainer, inNetns, ipNetnsArg, iwSetNetns } from './container.js';
import type { Ledger, LedgerLink } from './ledger.js';
import { type ResolvedRadio, renderOpenwrtConfig } from './openwrt-render.js';
import { type UciPackage, configFileOf, diffUci, exportUci, parseUci, redactBatchLine, redactUci, sameUci } from './uci.js';

/** A link as `ip -j -d addr show` reports it. */
export interface LiveLink {
  name: string;
  ifindex: number;
  mac?: string;
  /** The permanent MAC when the current one was changed (`permaddr`). */
  permMac?: string;
  up: boolean;
  /** linkinfo.info_kind: veth, macvlan, ipvlan, bridge...; undefined for a plain NIC. */
  kind?: string;
  /** macvlan/ipvlan mode. */
  mode?: string;
  /** The parent (macvlan, ipvlan) or peer (veth) in the same namespace, by name. */
  parent?: string;
  /** The parent or peer's ifindex when it is in another namespace. */
  parentIndex?: number;
  addresses: string[];
}

export interface LiveRoute {
  dst: string;
  dev?: string;
  protocol?: string;
}

export interface HostPhy {
  phy: string;
  mac?: string;
  /** Its network interfaces on the host (wlan0, wlp3s0). */
  netdevs: string[];
}

export interface UciObserved {
  /** `uci export` text per package; null when the package does not exist. */
  packages: Partial<Record<UciPackageName, string | null>>;
  /** Why reading the configuration failed (uci missing, container not OpenWrt). */
  error?: string;
}

export interface OpenwrtActual {
  container: ContainerState;
  /** The agent's own network namespace. */
  agentNsId: string;
  host: LiveLink[];
  hostRoutes: LiveRoute[];
  /** Links in the container's namespace (empty when it is not running). */
  inside: LiveLink[];
  hostPhys: HostPhy[];
  /** Phy names in the container's namespace (only read when Wi-Fi is involved). */
  insidePhys: string[];
  /** Why listing the phys failed (iw missing, no nl80211), when it was needed. */
  physError?: string;
  ledger: Ledger;
  /** The netns handle: its device path (/run/netns/NAME, under --root) and, when it exists, what it is. */
  handle?: { path: string; state: 'absent' | 'symlink' | 'other'; target?: string };
  uci?: UciObserved;
}

/** The container as a step found it at plan time; executors check it is still the same namespace. */
export interface NsRef {
  container: OpenwrtContainer;
  label: string;
  nsId: string;
  nsPath: string;
  target: RunningContainer['target'];
}

export interface UciChange {
  name: UciPackageName;
  /** The package does not exist yet: it is created with `uci import` (uci batch cannot create a package). */
  create: boolean;
  /** uci batch lines (without commit). */
  batch: string[];
  /** The whole package as it will be (uci export text). */
  after: string;
  /** As it was (uci export text); null when it did not exist. */
  before: string | null;
}

export interface ExecRef {
  prefix: string[];
  env?: Record<string, string>;
}

export type OpenwrtStep =
  | { action: 'refuse'; reason: string }
  | { action: 'cleanup-gone'; reason: string; shims: string[]; handle?: string }
  | { action: 'forget-stale'; links: string[]; phys: string[]; reason: string }
  | { action: 'parent-up'; name: string }
  | { action: 'parent-down'; name: string }
  | { action: 'move-port'; ns: NsRef; hostName: string; tmp: string; name: string; mac?: string }
  | { action: 'return-port'; ns: NsRef; name: string; hostName: string; tmp: string; mac?: string }
  | { action: 'create-child'; ns: NsRef; kind: 'macvlan' | 'ipvlan'; parent: string; mode: string; mac?: string; tmp: string; name: string }
  | { action: 'create-veth'; ns: NsRef; hostName: string; name: string; mac: string; tmp: string }
  | { action: 'delete-inside'; ns: NsRef; name: string; type: LedgerLink['type']; hostEnd?: string; reason: string; undo: OpenwrtStep[] }
  | { action: 'delete-host-link'; name: string }
  | { action: 'create-shim'; kind: 'macvlan' | 'ipvlan'; parent: string; mode: string; name: string }
  | { action: 'delete-shim'; name: string; reason: string; undo: OpenwrtStep[] }
  | { action: 'shim-config'; name: string; up: boolean; addAddresses: string[]; delAddresses: string[]; addRoutes: string[]; delRoutes: string[] }
  | { action: 'move-phy'; ns: NsRef; radio: string; phy: string; mac?: string; matchKey: string }
  | { action: 'return-phy'; ns: NsRef; radio: string; phy: string; mac?: string; matchKey: string }
  | { action: 'link-handle'; path: string; target: string; before?: string }
  | { action: 'unlink-handle'; path: string; target: string }
  | { action: 'uci-apply'; ns: NsRef; exec: ExecRef; packages: UciChange[]; reloads: string[][] }
  | { action: 'uci-restore'; ns: NsRef; exec: ExecRef; packages: Array<{ name: UciPackageName; text: string | null }>; reloads: string[][] }
  | { action: 'reload'; ns: NsRef; exec: ExecRef; reloads: string[][]; reason: string };

/** Reloads after a commit, per package, in this order (network first: the devices the others use). */
export const RELOADS: Record<UciPackageName, string[]> = {
  network: ['/etc/init.d/network', 'reload'],
  wireless: ['/sbin/wifi', 'reload'],
  dhcp: ['/etc/init.d/dnsmasq', 'reload'],
  firewall: ['/etc/init.d/firewall', 'reload'],
};
export const UCI = '/sbin/uci';

const hash = (s: string) => createHash('sha256').update(s).digest('hex');

/** What names the container in derived names: its runtime name, pid file or namespace path. */
function containerKey(c: OpenwrtContainer): string {
  switch (c.runtime) {
    case 'docker':
    case 'podman':
      return `${c.runtime}:${c.name}`;
    case 'process':
      return `process:${c.pidFile ?? c.pid}`;
    case 'netns':
      return `netns:${c.path}`;
  }
}

/** A stable, locally administered unicast MAC for a link the agent creates (the same after a container restart, so DHCP leases stay). */
export function derivedMac(c: OpenwrtContainer, name: string): string {
  const h = hash(`ibex-openwrt|${containerKey(c)}|${name}`);
  return ['02', ...[0, 2, 4, 6, 8].map((i) => h.slice(i, i + 2))].join(':');
}

/** The host name a link has while it moves into the container (unique, at most 15 characters). */
export const tmpName = (nsId: string, name: string) => `ibx${hash(`${nsId}|${name}`).slice(0, 10)}`;

const macOf = (l: LiveLink) => [l.mac?.toLowerCase(), l.permMac?.toLowerCase()];
function findHost(host: readonly LiveLink[], m: LinkMatch): LiveLink | undefined {
  return m.mac !== undefined ? host.find((l) => macOf(l).includes(m.mac!.toLowerCase())) : host.find((l) => l.name === m.name);
}
const describeMatch = (m: LinkMatch) => (m.mac !== undefined ? `with MAC ${m.mac}` : m.name!);
const wifiKey = (m: { interface?: string; phy?: string; mac?: string }) => (m.interface !== undefined ? `interface ${m.interface}` : m.phy !== undefined ? `phy ${m.phy}` : `mac ${m.mac!.toLowerCase()}`);

const sameAddr = (a: string, b: string) => {
  const x = parseCidr(a);
  const y = parseCidr(b);
  return !!x && !!y && x.prefix === y.prefix && x.family === y.family && x.address.toLowerCase() === y.address.toLowerCase();
};
const isLinkLocal6 = (a: string) => /^fe80:/i.test(a);

/** The routes the agent may have added on a shim: not the kernel's connected ones, not a default route. */
const shimRoutes = (routes: readonly LiveRoute[], name: string) =>
  routes.filter((r) => r.dev === name && r.protocol !== 'kernel' && r.dst !== 'default').map((r) => (r.dst.includes('/') ? r.dst : `${r.dst}/${ipFamily(r.dst) === 6 ? 128 : 32}`));

function shimConfigStep(name: string, want: Shim, live: LiveLink | undefined, routes: readonly LiveRoute[]): OpenwrtStep | undefined {
  const have = live?.addresses.filter((a) => !isLinkLocal6(a)) ?? [];
  const addAddresses = want.addresses.filter((a) => !have.some((h) => sameAddr(h, a)));
  const delAddresses = have.filter((h) => !want.addresses.some((a) => sameAddr(h, a)));
  const haveRoutes = shimRoutes(routes, name);
  const addRoutes = want.routes.filter((r) => !haveRoutes.some((h) => sameAddr(h, r)));
  const delRoutes = haveRoutes.filter((h) => !want.routes.some((r) => sameAddr(h, r)));
  const up = !live?.up;
  if (!up && !addAddresses.length && !delAddresses.length && !addRoutes.length && !delRoutes.length) return undefined;
  return { action: 'shim-config', name, up, addAddresses, delAddresses, addRoutes, delRoutes };
}

/** The steps that undo a step (run in this order); what the revert replays, newest first. */
export function inverseOf(step: OpenwrtStep): OpenwrtStep[] {
  switch (step.action) {
    case 'parent-up':
      return [{ action: 'parent-down', name: step.name }];
    case 'move-port':
      return [{ action: 'return-port', ns: step.ns, name: step.name, hostName: step.hostName, tmp: step.tmp, mac: step.mac }];
    case 'return-port':
      return [{ action: 'move-port', ns: step.ns, hostName: step.hostName, tmp: step.tmp, name: step.name, mac: step.mac }];
    case 'create-child':
      return [
        { action: 'delete-inside', ns: step.ns, name: step.name, type: step.kind, reason: 'undo', undo: [] },
        { action: 'delete-host-link', name: step.tmp },
      ];
    case 'create-veth':
      return [{ action: 'delete-host-link', name: step.hostName }];
    case 'create-shim':
      return [{ action: 'delete-host-link', name: step.name }];
    case 'delete-inside':
    case 'delete-shim':
      return step.undo;
    case 'shim-config':
      return [{ action: 'shim-config', name: step.name, up: false, addAddresses: step.delAddresses, delAddresses: step.addAddresses, addRoutes: step.delRoutes, delRoutes: step.addRoutes }];
    case 'move-phy':
      return [{ action: 'return-phy', ns: step.ns, radio: step.radio, phy: step.phy, mac: step.mac, matchKey: step.matchKey }];
    case 'return-phy':
      return [{ action: 'move-phy', ns: step.ns, radio: step.radio, phy: step.phy, mac: step.mac, matchKey: step.matchKey }];
    case 'link-handle':
      return step.before !== undefined ? [{ action: 'link-handle', path: step.path, target: step.before }] : [{ action: 'unlink-handle', path: step.path, target: step.target }];
    case 'unlink-handle':
      return [{ action: 'link-handle', path: step.path, target: step.target }];
    case 'uci-apply':
      return [{ action: 'uci-restore', ns: step.ns, exec: step.exec, packages: step.packages.map((p) => ({ name: p.name, text: p.before })), reloads: step.reloads }];
    case 'refuse':
    case 'cleanup-gone':
    case 'forget-stale':
    case 'parent-down':
    case 'delete-host-link':
    case 'uci-restore':
    case 'reload':
      return [];
  }
}

interface Planning {
  spec: OpenwrtSection;
  actual: OpenwrtActual;
  c: RunningContainer;
  ns: NsRef;
  steps: OpenwrtStep[];
  refusals: string[];
  /** Ledger links (current namespace) that stay: wanted and in place. */
  keep: Set<string>;
  /** Host shims (ledger) that stay. */
  keepShims: Set<string>;
  radios: Map<string, ResolvedRadio>;
}

/** The ledger entry of a link in the current namespace, by its name in the container. */
const ours = (p: Planning, name: string) => p.actual.ledger.links.find((l) => l.name === name && l.nsId === p.c.nsId);
const inside = (p: Planning, name: string) => p.actual.inside.find((l) => l.name === name);
const hostLink = (p: Planning, name: string) => p.actual.host.find((l) => l.name === name);

/** A removal of an in-container link, with what recreates it if the change is undone. */
function deleteInside(p: Planning, led: LedgerLink, reason: string): OpenwrtStep {
  const undo: OpenwrtStep[] = [];
  const tmp = tmpName(p.c.nsId, led.name);
  if ((led.type === 'macvlan' || led.type === 'ipvlan') && led.parent && led.mode) undo.push({ action: 'create-child', ns: p.ns, kind: led.type, parent: led.parent, mode: led.mode, mac: led.type === 'macvlan' ? led.mac : undefined, tmp, name: led.name });
  if (led.type === 'veth' && led.hostName && led.mac) {
    undo.push({ action: 'create-veth', ns: p.ns, hostName: led.hostName, name: led.name, mac: led.mac, tmp });
    const live = hostLink(p, led.hostName);
    if (live) undo.push({ action: 'shim-config', name: led.hostName, up: live.up, addAddresses: live.addresses.filter((a) => !isLinkLocal6(a)), delAddresses: [], addRoutes: shimRoutes(p.actual.hostRoutes, led.hostName), delRoutes: [] });
  }
  return { action: 'delete-inside', ns: p.ns, name: led.name, type: led.type, hostEnd: led.type === 'veth' ? led.hostName : undefined, reason, undo };
}

/** How a wanted link that is ours but wrong now goes first. */
const removeOurs = (p: Planning, led: LedgerLink, reason: string): OpenwrtStep =>
  led.type === 'port' ? { action: 'return-port', ns: p.ns, name: led.name, hostName: led.hostName ?? led.name, tmp: tmpName(p.c.nsId, led.name), mac: led.mac } : deleteInside(p, led, reason);

function planPort(p: Planning, l: Extract<OpenwrtLink, { type: 'port' }>, i: number): void {
  const here = inside(p, l.name);
  const led = ours(p, l.name);
  const wantMac = l.match.mac?.toLowerCase();
  if (here) {
    const same = led?.type === 'port' && (wantMac !== undefined ? macOf(here).includes(wantMac) : led.hostName === l.match.name);
    if (same || (!led && wantMac !== undefined && macOf(here).includes(wantMac))) {
      if (led) p.keep.add(l.name);
      return;
    }
    if (!led) {
      if (wantMac === undefined && !findHost(p.actual.host, l.match)) return; // already inside (put there by someone else): left alone
      p.refusals.push(`links[${i}]: the container already has an interface ${l.name} that the agent did not put there; rename it in the container or choose another name`);
      return;
    }
    // Ours, but another port (or another kind of link) now: it goes first.
    p.steps.push(removeOurs(p, led, `links[${i}] is now another port`));
  }
  let found = findHost(p.actual.host, l.match);
  // A port that came back from a container that stopped keeps its container name: find it by the MAC it had.
  if (!found && l.match.name !== undefined) {
    const stale = p.actual.ledger.links.find((x) => x.type === 'port' && x.hostName === l.match.name && x.mac);
    if (stale) found = p.actual.host.find((h) => macOf(h).includes(stale.mac!.toLowerCase()));
  }
  if (!found) {
    p.refusals.push(`links[${i}]: no host interface ${describeMatch(l.match)} to move into ${p.c.label} (and none inside it named ${l.name})`);
    return;
  }
  p.steps.push({ action: 'move-port', ns: p.ns, hostName: found.name, tmp: tmpName(p.c.nsId, l.name), name: l.name, mac: (found.permMac ?? found.mac)?.toLowerCase() });
}

function planShim(p: Planning, kind: 'macvlan' | 'ipvlan', parent: LiveLink, mode: string, shim: Shim, i: number): void {
  const live = hostLink(p, shim.name);
  const mine = p.actual.ledger.shims.includes(shim.name);
  const shimMode = kind === 'macvlan' ? 'bridge' : mode;
  if (live && !mine) {
    p.refusals.push(`links[${i}].shim.name: the host already has an interface ${shim.name} that the agent did not create; choose another name`);
    return;
  }
  const matches = !!live && live.kind === kind && live.parent === parent.name && (live.mode === undefined || live.mode === shimMode);
  if (live && !matches) p.steps.push({ action: 'delete-shim', name: shim.name, reason: `it must be a ${kind} on ${parent.name}`, undo: [] });
  if (!matches) p.steps.push({ action: 'create-shim', kind, parent: parent.name, mode: shimMode, name: shim.name });
  p.keepShims.add(shim.name);
  const cfg = shimConfigStep(shim.name, shim, matches ? live : undefined, matches ? p.actual.hostRoutes : []);
  if (cfg) p.steps.push(cfg);
}

function planChild(p: Planning, l: Extract<OpenwrtLink, { type: 'macvlan' | 'ipvlan' }>, i: number): void {
  const parent = findHost(p.actual.host, l.parent);
  if (!parent) {
    p.refusals.push(`links[${i}].parent: no host interface ${describeMatch(l.parent)}`);
    return;
  }
  if (parent.kind === 'macvlan' || parent.kind === 'ipvlan') {
    p.refusals.push(`links[${i}].parent: ${parent.name} is itself a ${parent.kind}; give the port it sits on`);
    return;
  }
  const mac = l.type === 'macvlan' ? (l.mac ?? derivedMac(p.spec.container, l.name)).toLowerCase() : undefined;
  const here = inside(p, l.name);
  const led = ours(p, l.name);
  if (!parent.up) p.steps.push({ action: 'parent-up', name: parent.name });
  const inPlace = !!here && !!led && here.kind === l.type && (here.mode === undefined || here.mode === l.mode) && (mac === undefined || here.mac?.toLowerCase() === mac) && (here.parentIndex === undefined || here.parentIndex === parent.ifindex);
  if (inPlace) p.keep.add(l.name);
  else {
    if (here && !led) {
      p.refusals.push(`links[${i}]: the container already has an interface ${l.name} that the agent did not put there; rename it in the container or choose another name`);
      return;
    }
    if (here && led) p.steps.push(removeOurs(p, led, `links[${i}] changed`));
    p.steps.push({ action: 'create-child', ns: p.ns, kind: l.type, parent: parent.name, mode: l.mode, mac, tmp: tmpName(p.c.nsId, l.name), name: l.name });
  }
  if (l.shim) planShim(p, l.type, parent, l.mode, l.shim, i);
}

function planVeth(p: Planning, l: Extract<OpenwrtLink, { type: 'veth' }>, i: number): void {
  const mac = (l.mac ?? derivedMac(p.spec.container, l.name)).toLowerCase();
  const here = inside(p, l.name);
  const led = ours(p, l.name);
  const hostEnd = hostLink(p, l.host.name);
  const mine = p.actual.ledger.shims.includes(l.host.name);
  const inPlace = !!here && !!led && here.kind === 'veth' && here.mac?.toLowerCase() === mac && !!hostEnd && hostEnd.kind === 'veth' && (here.parentIndex === undefined || here.parentIndex === hostEnd.ifindex);
  if (inPlace) {
    p.keep.add(l.name);
    p.keepShims.add(l.host.name);
  } else {
    if (here && !led) {
      p.refusals.push(`links[${i}]: the container already has an interface ${l.name} that the agent did not put there; rename it in the container or choose another name`);
      return;
    }
    if (hostEnd && !mine) {
      p.refusals.push(`links[${i}].host.name: the host already has an interface ${l.host.name} that the agent did not create; choose another name`);
      return;
    }
    if (here && led) p.steps.push(removeOurs(p, led, `links[${i}] changed`));
    // A host end left from a pair whose container end is gone (or another pair).
    if (hostEnd) p.steps.push({ action: 'delete-shim', name: l.host.name, reason: 'its pair is rebuilt', undo: [] });
    p.steps.push({ action: 'create-veth', ns: p.ns, hostName: l.host.name, name: l.name, mac, tmp: tmpName(p.c.nsId, l.name) });
    p.keepShims.add(l.host.name);
  }
  const cfg = shimConfigStep(l.host.name, l.host, inPlace ? hostEnd : undefined, inPlace ? p.actual.hostRoutes : []);
  if (cfg) p.steps.push(cfg);
}

function planWifi(p: Planning, l: Extract<OpenwrtLink, { type: 'wifi' }>, i: number): void {
  const key = wifiKey(l.match);
  const m = l.match;
  const onHost =
    m.interface !== undefined ? p.actual.hostPhys.find((x) => x.netdevs.includes(m.interface!)) : m.phy !== undefined ? p.actual.hostPhys.find((x) => x.phy === m.phy) : p.actual.hostPhys.find((x) => x.mac?.toLowerCase() === m.mac!.toLowerCase());
  const led = p.actual.ledger.phys.find((x) => x.radio === l.radio && x.matchKey === key && x.nsId === p.c.nsId);
  if (onHost) {
    p.steps.push({ action: 'move-phy', ns: p.ns, radio: l.radio, phy: onHost.phy, mac: onHost.mac?.toLowerCase(), matchKey: key });
    p.radios.set(l.radio, { phy: onHost.phy, mac: onHost.mac?.toLowerCase() });
    return;
  }
  if (led && p.actual.insidePhys.includes(led.phy)) {
    p.radios.set(l.radio, { phy: led.phy, mac: led.mac });
    return;
  }
  // Asked for by phy name and already in the container (moved by someone else): left alone.
  if (m.phy !== undefined && p.actual.insidePhys.includes(m.phy)) {
    p.radios.set(l.radio, { phy: m.phy });
    return;
  }
  const why = p.actual.physError ? ` (listing the radios failed: ${p.actual.physError})` : '';
  p.refusals.push(`links[${i}]: no Wi-Fi radio with ${key} on the host${led ? ` and phy ${led.phy}, moved before, is not in ${p.c.label} any more` : ''}${why}`);
}

function planUci(p: Planning): void {
  const cfg = p.spec.config;
  if (!cfg) return;
  const obs = p.actual.uci;
  if (!obs || obs.error) {
    p.refusals.push(`config: reading the container's UCI configuration failed: ${obs?.error ?? 'not read'}; is it OpenWrt (/sbin/uci)?`);
    return;
  }
  const desired = renderOpenwrtConfig(cfg, p.radios);
  const changes: UciChange[] = [];
  for (const want of desired) {
    const text = obs.packages[want.name as UciPackageName];
    let have: UciPackage | undefined;
    if (text !== null && text !== undefined) {
      try {
        have = parseUci(text, want.name);
      } catch (err) {
        p.refusals.push(`config: the container's ${want.name} configuration cannot be parsed (${(err as Error).message}); fix it by hand first`);
        continue;
      }
    }
    if (have && sameUci(have, want)) continue;
    changes.push({ name: want.name as UciPackageName, create: have === undefined, batch: have ? diffUci(have, want) : [], after: exportUci(want), before: text ?? null });
  }
  if (!changes.length) return;
  const c = p.c;
  p.steps.push({
    action: 'uci-apply',
    ns: p.ns,
    exec: c.exec,
    packages: changes,
    reloads: uciPackageNames.filter((n) => changes.some((x) => x.name === n)).map((n) => [...c.exec.prefix, ...RELOADS[n]]),
  });
}

/**
 * Pure: the steps that make the container and the host what the section says. Removals first
 * (links the agent put in the container that are no longer wanted go back or are deleted,
 * before anything takes their names), then links into the container, shims, radios, the
 * netns handle, and last the UCI change (the devices it names exist by then). Anything that
 * cannot be done (a port that is not there, a name taken by someone else) refuses the whole
 * change before a step runs.
 */
export function planOpenwrt(spec: OpenwrtSection, actual: OpenwrtActual): OpenwrtStep[] {
  const c = actual.container;
  const led = actual.ledger;
  if (!c.running) {
    const leftovers = led.shims.length > 0 || !!led.handle || led.links.length > 0 || led.phys.length > 0;
    const retry = 'the agent wires it again when it runs (at the next drift check)';
    if (c.certain && leftovers) return [{ action: 'cleanup-gone', reason: `${c.reason}: its host side was cleaned up; ${retry}`, shims: [...led.shims], handle: led.handle?.path }];
    return [{ action: 'refuse', reason: `${c.reason}; ${retry}` }];
  }
  if (c.netns === actual.agentNsId) return [{ action: 'refuse', reason: `${c.label} shares the agent's network namespace (host networking?): there is nothing to move its interfaces into` }];
  const ns: NsRef = { container: spec.container, label: c.label, nsId: c.nsId, nsPath: c.nsPath, target: c.target };
  const p: Planning = { spec, actual, c, ns, steps: [], refusals: [], keep: new Set(), keepShims: new Set(), radios: new Map() };

  const wantedNames = new Set(spec.links.flatMap((l) => (l.type === 'wifi' ? [] : [l.name])));
  // Entries whose link is gone: into an old namespace (a restarted container), or deleted by someone.
  const stale = {
    links: led.links.filter((l) => l.nsId !== c.nsId || (!inside(p, l.name) && !wantedNames.has(l.name))).map((l) => l.name),
    phys: led.phys.filter((x) => x.nsId !== c.nsId || !actual.insidePhys.includes(x.phy)).map((x) => x.phy),
  };
  if (stale.links.length || stale.phys.length) p.steps.push({ action: 'forget-stale', ...stale, reason: `${c.label} no longer has them (a restarted container is a new namespace: what was moved into the old one went with it)` });

  spec.links.forEach((l, i) => {
    if (l.type === 'port') planPort(p, l, i);
    else if (l.type === 'macvlan' || l.type === 'ipvlan') planChild(p, l, i);
    else if (l.type === 'veth') planVeth(p, l, i);
    else planWifi(p, l, i);
  });

  // What the agent put there before and the spec no longer has: returned, deleted.
  const removals: OpenwrtStep[] = [];
  const handled = new Set(p.steps.flatMap((s) => (s.action === 'return-port' || s.action === 'delete-inside' ? [s.name] : [])));
  for (const l of led.links) {
    if (l.nsId !== c.nsId || p.keep.has(l.name) || handled.has(l.name) || !inside(p, l.name)) continue;
    removals.push(removeOurs(p, l, 'no longer in the spec'));
  }
  for (const x of led.phys) {
    if (x.nsId !== c.nsId || !actual.insidePhys.includes(x.phy)) continue;
    if ([...p.radios.values()].some((r) => r.phy === x.phy)) continue;
    removals.push({ action: 'return-phy', ns, radio: x.radio, phy: x.phy, mac: x.mac, matchKey: x.matchKey });
  }
  for (const s of led.shims) {
    if (p.keepShims.has(s)) continue;
    // A veth host end goes with its container end.
    if (removals.some((r) => r.action === 'delete-inside' && r.hostEnd === s)) continue;
    const live = hostLink(p, s);
    if (!live) continue;
    const undo: OpenwrtStep[] = [];
    if ((live.kind === 'macvlan' || live.kind === 'ipvlan') && live.parent) {
      undo.push({ action: 'create-shim', kind: live.kind, parent: live.parent, mode: live.mode ?? (live.kind === 'macvlan' ? 'bridge' : 'l2'), name: s });
      undo.push({ action: 'shim-config', name: s, up: live.up, addAddresses: live.addresses.filter((a) => !isLinkLocal6(a)), delAddresses: [], addRoutes: shimRoutes(actual.hostRoutes, s), delRoutes: [] });
    }
    removals.push({ action: 'delete-shim', name: s, reason: 'no longer in the spec', undo });
  }

  // The netns handle.
  const h = actual.handle;
  if (spec.netnsName && h) {
    const mine = led.handle?.path === h.path;
    if (h.state === 'other' || (h.state === 'symlink' && !mine && h.target !== c.nsPath)) p.refusals.push(`netnsName: ${h.path} exists and is not the agent's; remove it or choose another name`);
    else if (h.state === 'absent' || h.target !== c.nsPath) p.steps.push({ action: 'link-handle', path: h.path, target: c.nsPath, before: h.state === 'symlink' ? h.target : undefined });
  }
  if (led.handle && (!spec.netnsName || led.handle.path !== h?.path)) removals.push({ action: 'unlink-handle', path: led.handle.path, target: led.handle.target });

  planUci(p);
  // Links given to a running OpenWrt: netifd is told to look again (a restarted container has its config but not its links).
  if (spec.config && p.steps.some((s) => s.action === 'move-port' || s.action === 'create-child' || s.action === 'create-veth' || s.action === 'move-phy')) {
    const network = [...c.exec.prefix, ...RELOADS.network];
    const uci = p.steps.find((s) => s.action === 'uci-apply');
    if (uci?.action === 'uci-apply') {
      if (!uci.reloads.some((r) => r.join(' ') === network.join(' '))) uci.reloads.unshift(network);
    } else p.steps.push({ action: 'reload', ns, exec: c.exec, reloads: [network], reason: 'it has new links' });
  }
  if (p.refusals.length) return p.refusals.map((reason) => ({ action: 'refuse', reason: `${reason}; nothing was changed` }));
  // forget-stale stays first; removals come before what may take their names.
  const [first, ...rest] = p.steps;
  return first?.action === 'forget-stale' ? [first, ...removals, ...rest] : [...removals, ...p.steps];
}

const cmd = (...argv: string[]) => argv;
const ipIn = (ns: NsRef, ...argv: string[]) => inNetns(ns, ['ip', ...argv]);

/** The commands a step runs, for plans (the executors run the same argv). */
export function commandsOf(step: OpenwrtStep): string[][] {
  switch (step.action) {
    case 'parent-up':
      return [cmd('ip', 'link', 'set', 'dev', step.name, 'up')];
    case 'parent-down':
      return [cmd('ip', 'link', 'set', 'dev', step.name, 'down')];
    case 'move-port':
      return [
        cmd('ip', 'link', 'set', 'dev', step.hostName, 'down'),
        cmd('ip', 'link', 'set', 'dev', step.hostName, 'name', step.tmp),
        cmd('ip', 'link', 'set', 'dev', step.tmp, 'netns', ipNetnsArg(step.ns)),
        ipIn(step.ns, 'link', 'set', 'dev', step.tmp, 'name', step.name),
      ];
    case 'return-port':
      return [ipIn(step.ns, 'link', 'set', 'dev', step.name, 'down'), ipIn(step.ns, 'link', 'set', 'dev', step.name, 'netns', '<agent>'), cmd('ip', 'link', 'set', 'dev', step.name, 'name', step.hostName)];
    case 'create-child':
      return [
        cmd('ip', 'link', 'add', 'link', step.parent, 'name', step.tmp, ...(step.mac ? ['address', step.mac] : []), 'type', step.kind, 'mode', step.mode),
        cmd('ip', 'link', 'set', 'dev', step.tmp, 'netns', ipNetnsArg(step.ns)),
        ipIn(step.ns, 'link', 'set', 'dev', step.tmp, 'name', step.name),
      ];
    case 'create-veth':
      return [
        cmd('ip', 'link', 'add', 'name', step.hostName, 'type', 'veth', 'peer', 'name', step.tmp, 'address', step.mac),
        cmd('ip', 'link', 'set', 'dev', step.tmp, 'netns', ipNetnsArg(step.ns)),
        ipIn(step.ns, 'link', 'set', 'dev', step.tmp, 'name', step.name),
        cmd('ip', 'link', 'set', 'dev', step.hostName, 'up'),
      ];
    case 'delete-inside':
      return [ipIn(step.ns, 'link', 'del', 'dev', step.name)];
    case 'delete-host-link':
    case 'delete-shim':
      return [cmd('ip', 'link', 'del', 'dev', step.name)];
    case 'create-shim':
      return [cmd('ip', 'link', 'add', 'link', step.parent, 'name', step.name, 'type', step.kind, 'mode', step.mode), cmd('ip', 'link', 'set', 'dev', step.name, 'up')];
    case 'shim-config':
      return [
        ...step.delRoutes.map((r) => cmd('ip', 'route', 'del', r, 'dev', step.name)),
        ...step.delAddresses.map((a) => cmd('ip', 'addr', 'del', a, 'dev', step.name)),
        ...step.addAddresses.map((a) => cmd('ip', 'addr', 'replace', a, 'dev', step.name)),
        ...(step.up ? [cmd('ip', 'link', 'set', 'dev', step.name, 'up')] : []),
        ...step.addRoutes.map((r) => cmd('ip', 'route', 'replace', r, 'dev', step.name)),
      ];
    case 'move-phy':
      return [iwSetNetns(step.ns, step.phy)];
    case 'return-phy':
      return [inNetns(step.ns, ['iw', 'phy', step.phy, 'set', 'netns', '<agent>'])];
    case 'uci-apply': {
      // One batch stages every change, a second commits them (only if the first printed no error); new packages are imported.
      const staged = step.packages.some((p) => !p.create) ? [[...step.exec.prefix, UCI, 'batch'], [...step.exec.prefix, UCI, 'batch']] : [];
      return [...staged, ...step.packages.filter((p) => p.create).map((p) => [...step.exec.prefix, UCI, 'import', p.name]), ...step.reloads];
    }
    case 'uci-restore':
      return [...step.packages.map((p) => [...step.exec.prefix, UCI, 'import', p.name]), ...step.reloads];
    case 'reload':
      return step.reloads;
    case 'refuse':
    case 'cleanup-gone':
    case 'forget-stale':
    case 'link-handle':
    case 'unlink-handle':
      return [];
  }
}

/** Reports carry summaries (the controller takes up to 256 KiB of detail per section): long diffs are cut. */
const MAX_DIFF = 16 * 1024;
const capped = (d: string) => (d.length <= MAX_DIFF ? d : `${d.slice(0, MAX_DIFF)}\n... (diff cut at ${MAX_DIFF} bytes of ${d.length})\n`);
/** /etc/config/NAME as uci commit writes it, secrets redacted: what the diff of a plan shows. */
const redactedFile = (text: string | null, name: string): string | null => {
  if (text === null) return null;
  try {
    return configFileOf(redactUci(parseUci(text, name)));
  } catch {
    return text;
  }
};

export function summarizeOpenwrtStep(step: OpenwrtStep): StepSummary {
  const base = { action: step.action, commands: commandsOf(step) };
  switch (step.action) {
    case 'refuse':
      return { action: step.action, text: `cannot apply: ${step.reason}` };
    case 'cleanup-gone':
      return { action: step.action, text: `remove the host side of a container that is gone (${[...step.shims, ...(step.handle ? [step.handle] : [])].join(', ') || 'records only'}), then report: ${step.reason}` };
    case 'forget-stale':
      return { action: step.action, text: `forget ${[...step.links, ...step.phys].join(', ')}: ${step.reason}` };
    case 'parent-up':
      return { ...base, text: `bring up ${step.name} (a parent of the container's links)` };
    case 'parent-down':
      return { ...base, text: `bring ${step.name} down again` };
    case 'move-port':
      return { ...base, text: `move host port ${step.hostName}${step.mac ? ` (${step.mac})` : ''} into ${step.ns.label} as ${step.name}` };
    case 'return-port':
      return { ...base, text: `return ${step.name} from ${step.ns.label} to the host as ${step.hostName}` };
    case 'create-child':
      return { ...base, text: `create a ${step.kind} (mode ${step.mode}) on ${step.parent}${step.mac ? ` with MAC ${step.mac}` : ''} as ${step.name} in ${step.ns.label}` };
    case 'create-veth':
      return { ...base, text: `create a veth pair: ${step.hostName} on the host, ${step.name} (${step.mac}) in ${step.ns.label}` };
    case 'delete-inside':
      return { ...base, text: `delete ${step.type} ${step.name} in ${step.ns.label} (${step.reason})` };
    case 'delete-host-link':
      return { ...base, text: `delete host link ${step.name}` };
    case 'create-shim':
      return { ...base, text: `create the host shim ${step.name}: a ${step.kind} (mode ${step.mode}) on ${step.parent}` };
    case 'delete-shim':
      return { ...base, text: `delete host link ${step.name} (${step.reason})` };
    case 'shim-config': {
      const parts = [...step.addAddresses.map((a) => `add ${a}`), ...step.delAddresses.map((a) => `remove ${a}`), ...step.addRoutes.map((r) => `route ${r}`), ...step.delRoutes.map((r) => `no route ${r}`), ...(step.up ? ['up'] : [])];
      return { ...base, text: `${step.name} on the host: ${parts.join(', ')}` };
    }
    case 'move-phy':
      return { ...base, text: `move Wi-Fi ${step.phy}${step.mac ? ` (${step.mac})` : ''} into ${step.ns.label} as ${step.radio}` };
    case 'return-phy':
      return { ...base, text: `return Wi-Fi ${step.phy} from ${step.ns.label} to the host` };
    case 'link-handle':
      return { action: step.action, text: `point ${step.path} at ${step.target} (for ip netns exec)` };
    case 'unlink-handle':
      return { action: step.action, text: `remove ${step.path}` };
    case 'uci-apply':
      return {
        ...base,
        packages: step.packages.map((p) => p.name),
        batch: step.packages.flatMap((p) => (p.create ? [`(import ${p.name})`] : p.batch.map(redactBatchLine))),
        text: `change ${step.packages.map((p) => `${p.name} (${p.create ? 'new package' : `${p.batch.length} uci command(s)`})`).join(', ')} in ${step.ns.label}: uci batch, commit, reload`,
        diff: capped(step.packages.map((p) => unifiedDiff(`/etc/config/${p.name}`, redactedFile(p.before, p.name), redactedFile(p.after, p.name))).join('')),
      };
    case 'uci-restore':
      return { ...base, text: `restore ${step.packages.map((p) => p.name).join(', ')} in ${step.ns.label} (uci import) and reload` };
    case 'reload':
      return { ...base, text: `reload the network in ${step.ns.label} (${step.reason})` };
  }
}
