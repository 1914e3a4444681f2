import { z } from 'zod';
import { type Cidr, MAC_RE, inNetwork, ipFamily, isNetworkAddress, parseCidr } from './ip.js';

/**
 * `network`: the device's ifupdown configuration (`/etc/network/interfaces`, `interfaces.d/*`
 * and `if-*.d` hook scripts), rendered in the subset both ifupdown-ng and BusyBox ifup accept.
 * A change is applied as one transaction and must be confirmed by reaching the controller
 * again within `confirmTimeoutSec`, or the agent restores the previous configuration.
 * docs/network.md describes every field.
 */

/**
 * Linux accepts up to IFNAMSIZ-1 = 15 bytes without '/', ':' or whitespace. We also refuse '.'
 * and '@' (ifupdown-ng and BusyBox read `eth0.5` as a VLAN, `ip` prints `a@b` for links) and
 * anything a hook's shell would have to quote.
 */
export const interfaceNameSchema = z
  .string()
  .min(1, 'must not be empty')
  .max(15, 'must be at most 15 characters (IFNAMSIZ)')
  .regex(/^[A-Za-z0-9_-]+$/, 'may contain only letters, digits, "_" and "-"');

// No transform (the controller publishes these schemas as JSON Schema): compare MACs lower-cased.
export const macSchema = z
  .string()
  .refine((s) => MAC_RE.test(s.toLowerCase()), 'must be a MAC address such as 02:00:00:00:00:01')
  .refine((s) => s !== '00:00:00:00:00:00', 'must not be all zeroes');

export const cidrSchema = z.string().refine((s) => parseCidr(s) !== undefined, 'must be an IPv4 or IPv6 address with a prefix length, such as 192.168.1.100/24 or fd00::1/64');
export const ipv4Schema = z.string().refine((s) => ipFamily(s) === 4, 'must be an IPv4 address such as 192.168.1.1');
const ipv6Schema = z.string().refine((s) => ipFamily(s) === 6, 'must be an IPv6 address such as fd00::1');
export const ipSchema = z.string().refine((s) => ipFamily(s) !== undefined, 'must be an IPv4 or IPv6 address');
const domainSchema = z
  .string()
  .max(253)
  .regex(/^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/, 'must be a domain name such as example.lab');

export const networkInterfaceSchema = z
  .object({
    /** The name in the configuration, after any rename. */
    name: interfaceNameSchema,
    /** The device to rename to `name` before it comes up: by its kernel name or by MAC. */
    match: z
      .object({ name: interfaceNameSchema.optional(), mac: macSchema.optional() })
      .strict()
      .refine((m) => (m.name === undefined) !== (m.mac === undefined), 'give exactly one of name or mac')
      .optional(),
    auto: z.boolean().default(true),
    method: z.enum(['loopback', 'static', 'dhcp', 'manual']),
    addresses: z.array(cidrSchema).max(32).default([]),
    gateway: ipv4Schema.optional(),
    gateway6: ipv6Schema.optional(),
    dns: z
      .object({
        servers: z.array(ipSchema).max(8).default([]),
        search: z.array(domainSchema).max(6).default([]),
      })
      .strict()
      .optional(),
    mtu: z.number().int().min(68, 'must be at least 68').max(65535, 'must be at most 65535').optional(),
    /** dhcp only: how long the apply waits for a lease after ifup (default: the section's dhcpTimeoutSec). */
    dhcpTimeoutSec: z.number().int().min(1, 'must be at least 1').max(600, 'must be at most 600').optional(),
  })
  .strict()
  .superRefine((i, ctx) => {
    const issue = (path: PropertyKey[], message: string) => ctx.addIssue({ code: 'custom', path, message });
    if (i.method === 'static' && i.addresses.length === 0) issue(['addresses'], 'a static interface needs at least one address');
    if (i.method !== 'static') {
      if (i.addresses.length) issue(['addresses'], `only a static interface has addresses (method is ${i.method})`);
      if (i.gateway) issue(['gateway'], `only a static interface has a gateway (method is ${i.method})`);
      if (i.gateway6) issue(['gateway6'], `only a static interface has a gateway (method is ${i.method})`);
    }
    if (i.method === 'loopback') {
      // Linux has one loopback device, lo; ifupdown would configure any other link as if it were.
      if (i.name !== 'lo') issue(['name'], `the loopback interface is lo, not ${i.name}`);
      if (i.match) issue(['match'], 'the loopback interface is not renamed');
      if (i.dns) issue(['dns'], 'the loopback interface has no DNS servers');
    }
    if (i.dhcpTimeoutSec !== undefined && i.method !== 'dhcp') issue(['dhcpTimeoutSec'], `only a dhcp interface waits for a lease (method is ${i.method})`);
    if (i.match?.name === i.name) issue(['match', 'name'], 'is the same as name: leave match out when the interface is not renamed');
    const seen = new Map<string, number>();
    i.addresses.forEach((a, n) => {
      const c = parseCidr(a);
      if (!c) return;
      const key = `${c.family}:${c.address}`;
      if (seen.has(key)) issue(['addresses', n], `duplicates addresses[${seen.get(key)}]`);
      else seen.set(key, n);
      if (c.family === 4 && (c.prefix === 0 || (c.prefix < 31 && isNetworkAddress(c)))) issue(['addresses', n], 'is a network address, not a host address');
    });
    const cidrs = i.addresses.map(parseCidr).filter((c): c is Cidr => c !== undefined);
    if (i.gateway && ipFamily(i.gateway) === 4 && !cidrs.some((c) => inNetwork(i.gateway!, c))) issue(['gateway'], `${i.gateway} is not on any IPv4 network of this interface's addresses`);
    if (i.gateway6 && ipFamily(i.gateway6) === 6 && !cidrs.some((c) => inNetwork(i.gateway6!, c))) issue(['gateway6'], `${i.gateway6} is not on any IPv6 network of this interface's addresses`);
  });
export type NetworkInterface = z.infer<typeof networkInterfaceSchema>;

export const networkRouteSchema = z
  .object({
    /** The interface (its `name`) the route is bound to: added when it comes up, removed when it goes down. */
    interface: interfaceNameSchema,
    /** Destination network, e.g. 192.168.2.0/24 (no host bits). */
    to: cidrSchema.refine((s) => {
      const c = parseCidr(s);
      return !c || isNetworkAddress(c);
    }, 'must be a network address (no host bits), such as 192.168.2.0/24'),
    via: ipSchema.optional(),
    metric: z.number().int().min(0).max(0xffffffff).optional(),
  })
  .strict();
export type NetworkRoute = z.infer<typeof networkRouteSchema>;

/** The agent's own if-up.d script that applies dns-nameservers / dns-search (docs/network.md). */
export const DNS_HOOK_NAME = 'ibex-dns';

export const hookPhases = ['pre-up', 'up', 'down', 'post-down'] as const;
export type HookPhase = (typeof hookPhases)[number];

export const networkHookSchema = z
  .object({
    /** Directory `/etc/network/if-<phase>.d`. */
    phase: z.enum(hookPhases),
    /** File name; run-parts only runs names of letters, digits, "_" and "-". */
    name: z
      .string()
      .min(1)
      .max(64)
      .regex(/^[A-Za-z0-9_-]+$/, 'may contain only letters, digits, "_" and "-" (run-parts skips other names)'),
    /** Stored verbatim. */
    content: z
      .string()
      .max(256 * 1024, 'at most 256 KiB')
      .refine((c) => c.startsWith('#!'), 'must start with an interpreter line such as #!/bin/sh'),
    mode: z
      .string()
      .regex(/^0?[0-7]{3}$/, 'must be an octal mode such as "0755"')
      .default('0755'),
  })
  .strict();
export type NetworkHook = z.infer<typeof networkHookSchema>;

export const DEFAULT_CONFIRM_TIMEOUT_SEC = 60;
/** udhcpc (as ifupdown-ng runs it, with -b) may go to the background before a lease arrives. */
export const DEFAULT_DHCP_TIMEOUT_SEC = 30;

export const networkSectionSchema = z
  .object({
    interfaces: z.array(networkInterfaceSchema).min(1).max(64),
    routes: z.array(networkRouteSchema).max(256).default([]),
    hooks: z.array(networkHookSchema).max(64).default([]),
    /** How long the agent waits, after the change, to reach the controller again before it restores the previous configuration. */
    confirmTimeoutSec: z.number().int().min(1).max(3600).default(DEFAULT_CONFIRM_TIMEOUT_SEC),
    /** How long the apply waits, after ifup, for each dhcp interface to get an IPv4 lease before it reverts (per interface: interfaces[].dhcpTimeoutSec). */
    dhcpTimeoutSec: z.number().int().min(1, 'must be at least 1').max(600, 'must be at most 600').default(DEFAULT_DHCP_TIMEOUT_SEC),
  })
  .strict()
  .superRefine((s, ctx) => {
    const issue = (path: PropertyKey[], message: string) => ctx.addIssue({ code: 'custom', path, message });
    const names = new Map<string, number>();
    const matchNames = new Map<string, number>();
    const macs = new Map<string, number>();
    s.interfaces.forEach((i, n) => {
      if (names.has(i.name)) issue(['interfaces', n, 'name'], `duplicates interfaces[${names.get(i.name)}].name`);
      else names.set(i.name, n);
      if (i.match?.name !== undefined) {
        if (matchNames.has(i.match.name)) issue(['interfaces', n, 'match', 'name'], `duplicates interfaces[${matchNames.get(i.match.name)}].match.name`);
        else matchNames.set(i.match.name, n);
      }
      if (i.match?.mac !== undefined) {
        const mac = i.match.mac.toLowerCase();
        if (macs.has(mac)) issue(['interfaces', n, 'match', 'mac'], `duplicates interfaces[${macs.get(mac)}].match.mac`);
        else macs.set(mac, n);
      }
    });
    // A rename onto a name another entry uses would depend on the order the renames run in.
    s.interfaces.forEach((i, n) => {
      const other = matchNames.get(i.name);
      if (i.match && other !== undefined && other !== n) issue(['interfaces', n, 'name'], `is the name interfaces[${other}] renames from; renames must not chain or swap`);
      const plain = i.match?.name !== undefined ? names.get(i.match.name) : undefined;
      if (plain !== undefined && plain !== n && !s.interfaces[plain]!.match) issue(['interfaces', n, 'match', 'name'], `interfaces[${plain}] configures ${i.match!.name} under that name; an interface cannot be both`);
    });
    const loopbacks = s.interfaces.flatMap((i, n) => (i.method === 'loopback' ? [n] : []));
    if (loopbacks.length > 1) issue(['interfaces', loopbacks[1]!, 'method'], `only one interface can be the loopback (interfaces[${loopbacks[0]}] is)`);
    for (const key of ['gateway', 'gateway6'] as const) {
      const withGw = s.interfaces.flatMap((i, n) => (i[key] ? [n] : []));
      if (withGw.length > 1) issue(['interfaces', withGw[1]!, key], `only one interface can have a default ${key === 'gateway' ? 'IPv4' : 'IPv6'} gateway (interfaces[${withGw[0]}] has one)`);
    }
    const routeKeys = new Map<string, number>();
    s.routes.forEach((r, n) => {
      const idx = names.get(r.interface);
      if (idx === undefined) {
        issue(['routes', n, 'interface'], `no interface named ${r.interface} in interfaces`);
        return;
      }
      const iface = s.interfaces[idx]!;
      const to = parseCidr(r.to);
      if (iface.method === 'loopback') issue(['routes', n, 'interface'], `${r.interface} is the loopback interface; a route there goes nowhere`);
      if (to && r.via && ipFamily(r.via) !== to.family) issue(['routes', n, 'via'], `is IPv${ipFamily(r.via)} but to is IPv${to.family}`);
      if (r.via && ipFamily(r.via) && iface.method === 'static') {
        const cidrs = iface.addresses.map(parseCidr).filter((c): c is Cidr => c !== undefined);
        if (!cidrs.some((c) => inNetwork(r.via!, c))) issue(['routes', n, 'via'], `${r.via} is not reachable on ${r.interface}: it is on none of its networks (${iface.addresses.join(', ')})`);
      }
      const key = `${to?.address}/${to?.prefix}|${r.metric ?? ''}`;
      if (routeKeys.has(key)) issue(['routes', n, 'to'], `duplicates routes[${routeKeys.get(key)}] (same destination and metric)`);
      else routeKeys.set(key, n);
    });
    const hookKeys = new Map<string, number>();
    s.hooks.forEach((h, n) => {
      const key = `${h.phase}/${h.name}`;
      if (h.phase === 'up' && h.name === DNS_HOOK_NAME) issue(['hooks', n, 'name'], `${DNS_HOOK_NAME} is the agent's own up hook (it applies the interfaces' dns); choose another name`);
      else if (hookKeys.has(key)) issue(['hooks', n, 'name'], `duplicates hooks[${hookKeys.get(key)}] (same phase and name)`);
      else hookKeys.set(key, n);
    });
  });
export type NetworkSection = z.infer<typeof networkSectionSchema>;
