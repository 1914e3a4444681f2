import { z } from 'zod';
import { type Cidr, inNetwork, isNetworkAddress, parseCidr } from './ip.js';
import { DEFAULT_CONFIRM_TIMEOUT_SEC, cidrSchema, interfaceNameSchema, ipSchema, ipv4Schema, macSchema } from './network.js';

/**
 * `openwrt`: OpenWrt running in a container on this device (docs/openwrt.md). The agent gives the
 * container its network interfaces (ethernet ports and Wi-Fi radios moved into its network
 * namespace, macvlan/ipvlan/veth links with a host shim) and, when `config` is given, owns the
 * container's UCI packages `network`, `dhcp`, `firewall` (and `wireless` when configured): it
 * renders them, applies the difference with `uci batch` + commit + reload inside the container,
 * and keeps the change only if the agent reaches the controller again within
 * `confirmTimeoutSec`.
 */

/** A device path (resolved under --root). */
const devicePathSchema = z
  .string()
  .min(2)
  .max(4096)
  .startsWith('/', 'must be an absolute path')
  .refine((p) => !p.split('/').includes('..') && !p.includes('\0'), 'must not contain ".." or NUL');

/** Docker's and podman's container names (or an id). */
const containerNameSchema = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'must be a container name or id (letters, digits, "_", ".", "-")');

export const openwrtContainerSchema = z.discriminatedUnion('runtime', [
  z.object({ runtime: z.literal('docker'), name: containerNameSchema }).strict(),
  z.object({ runtime: z.literal('podman'), name: containerNameSchema }).strict(),
  z
    .object({
      runtime: z.literal('process'),
      /** The container's init process. */
      pid: z.number().int().min(2, 'must be a process id (2 or more)').max(4_194_304).optional(),
      /** A file holding the pid (re-read at every apply, so a restarted container is found). */
      pidFile: devicePathSchema.optional(),
    })
    .strict(),
  z
    .object({
      runtime: z.literal('netns'),
      /** A network namespace file in the agent's mount namespace: /run/netns/NAME or /proc/PID/ns/net. */
      path: z
        .string()
        .max(4096)
        .regex(/^\/(run|var\/run)\/netns\/[A-Za-z0-9_.-]+$|^\/proc\/[0-9]+\/ns\/net$/, 'must be /run/netns/NAME or /proc/PID/ns/net'),
      /** The container's root filesystem (device path): UCI commands run chrooted there. Needed with `config`. */
      rootfs: devicePathSchema.optional(),
    })
    .strict(),
]);
export type OpenwrtContainer = z.infer<typeof openwrtContainerSchema>;

/** A host interface by its kernel name or MAC (exactly one). */
export const linkMatchSchema = z
  .object({ name: interfaceNameSchema.optional(), mac: macSchema.optional() })
  .strict()
  .refine((m) => (m.name === undefined) !== (m.mac === undefined), 'give exactly one of name or mac');
export type LinkMatch = z.infer<typeof linkMatchSchema>;

const hostNetworkSchema = cidrSchema.refine((s) => {
  const c = parseCidr(s);
  return !c || isNetworkAddress(c);
}, 'must be a network address (no host bits), such as 192.168.1.0/24');

/** The host's own interface on the container's LAN (macvlan children cannot reach their parent, so the host needs one). */
export const shimSchema = z
  .object({
    /** Name on the host. */
    name: interfaceNameSchema,
    /** Host addresses on it (with prefix); none = the link is only brought up. */
    addresses: z.array(cidrSchema).max(8).default([]),
    /** Extra networks reached through it (e.g. the LAN behind OpenWrt when the shim's address is on another one). */
    routes: z.array(hostNetworkSchema).max(16).default([]),
  })
  .strict();
export type Shim = z.infer<typeof shimSchema>;

/** UCI section and option names: letters, digits and "_" (uci refuses anything else). */
export const uciNameSchema = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9_]+$/, 'may contain only letters, digits and "_" (a UCI name)');

export const openwrtLinkSchema = z.discriminatedUnion('type', [
  /** A host ethernet port moved into the container (and renamed `name` there). */
  z.object({ type: z.literal('port'), name: interfaceNameSchema, match: linkMatchSchema }).strict(),
  /** A macvlan child of a host port, created for the container. */
  z
    .object({
      type: z.literal('macvlan'),
      name: interfaceNameSchema,
      parent: linkMatchSchema,
      mode: z.enum(['bridge', 'private', 'vepa', 'passthru']).default('bridge'),
      /** Fixed MAC (default: one derived from the container and the link name, stable across restarts). */
      mac: macSchema.optional(),
      shim: shimSchema.optional(),
    })
    .strict(),
  /** An ipvlan child of a host port (shares the parent's MAC). */
  z
    .object({
      type: z.literal('ipvlan'),
      name: interfaceNameSchema,
      parent: linkMatchSchema,
      mode: z.enum(['l2', 'l3', 'l3s']).default('l2'),
      shim: shimSchema.optional(),
    })
    .strict(),
  /** A veth pair: `name` in the container, `host` (the shim) on the host. */
  z.object({ type: z.literal('veth'), name: interfaceNameSchema, mac: macSchema.optional(), host: shimSchema }).strict(),
  /** A Wi-Fi radio moved with `iw phy PHY set netns` (re-resolved at every apply: phy names change after a replug). */
  z
    .object({
      type: z.literal('wifi'),
      match: z
        .object({ interface: interfaceNameSchema.optional(), phy: z.string().regex(/^[A-Za-z0-9_-]{1,32}$/, 'must be a phy name such as phy0').optional(), mac: macSchema.optional() })
        .strict()
        .refine((m) => [m.interface, m.phy, m.mac].filter((x) => x !== undefined).length === 1, 'give exactly one of interface, phy or mac'),
      /** The UCI wifi-device it becomes. */
      radio: uciNameSchema.default('radio0'),
    })
    .strict(),
]);
export type OpenwrtLink = z.infer<typeof openwrtLinkSchema>;

/** A UCI value we write: one line (batch lines are line based), no NUL. */
const uciValueSchema = z
  .string()
  .max(4096)
  .refine((v) => !/[\n\r\0]/.test(v), 'must be one line (no newline or NUL)');

const hostAddress4 = cidrSchema.refine((s) => {
  const c = parseCidr(s);
  return !c || (c.family === 4 && c.prefix > 0 && c.prefix <= 30 && !isNetworkAddress(c));
}, 'must be an IPv4 host address with a prefix of 1-30, such as 192.168.1.1/24');

const leaseTimeSchema = z.string().regex(/^(\d+[smhdw]?|infinite)$/, 'must be a lease time such as 12h, 30m, 3600 or infinite');

export const lanSchema = z
  .object({
    /** The container links (their `name`) bridged into br-lan; Wi-Fi networks with network "lan" join it too. */
    devices: z.array(interfaceNameSchema).max(16),
    /** OpenWrt's LAN address, e.g. 192.168.1.1/24 (written as ipaddr + dotted netmask). */
    address: hostAddress4,
    /** `ip6assign`: the prefix length delegated to the LAN (omitted: none). */
    ipv6Assign: z.number().int().min(48).max(64).optional(),
    /** OpenWrt's DHCP server on the LAN (false: off). start is an offset in the subnet, as OpenWrt counts it. */
    dhcp: z
      .union([
        z
          .object({
            start: z.number().int().min(1).default(100),
            limit: z.number().int().min(1).default(150),
            leaseTime: leaseTimeSchema.default('12h'),
          })
          .strict(),
        z.literal(false),
      ])
      .default({ start: 100, limit: 150, leaseTime: '12h' }),
    dns: z.array(ipSchema).max(8).default([]),
  })
  .strict();

export const wanSchema = z
  .object({
    device: interfaceNameSchema,
    proto: z.enum(['dhcp', 'static', 'none']).default('dhcp'),
    /** static only. */
    address: hostAddress4.optional(),
    gateway: ipv4Schema.optional(),
    dns: z.array(ipSchema).max(8).default([]),
    /** Also a `wan6` interface (DHCPv6 client) on the same device. */
    ipv6: z.boolean().default(true),
  })
  .strict();

export const wifiEncryptions = ['none', 'psk2', 'psk-mixed', 'sae', 'sae-mixed'] as const;
export const wifiHtmodes = ['NOHT', 'HT20', 'HT40', 'HT40+', 'HT40-', 'VHT20', 'VHT40', 'VHT80', 'VHT160', 'HE20', 'HE40', 'HE80', 'HE160', 'EHT20', 'EHT40', 'EHT80', 'EHT160', 'EHT320'] as const;

export const wifiNetworkSchema = z
  .object({
    /** The wifi-iface section name (default `default_<radio>` for the first, `<radio>_<n>` after). */
    name: uciNameSchema.optional(),
    ssid: z
      .string()
      .min(1)
      .refine((s) => Buffer.byteLength(s) <= 32, 'must be at most 32 bytes')
      .refine((s) => !/[\n\r\0]/.test(s), 'must be one line (no newline or NUL)'),
    encryption: z.enum(wifiEncryptions),
    /** The passphrase (8-63 characters) or a 64-digit hex PSK; not with encryption "none". */
    key: z.string().optional(),
    /** The OpenWrt interface the clients join. */
    network: uciNameSchema.default('lan'),
    hidden: z.boolean().default(false),
    /** Clients cannot talk to each other. */
    isolate: z.boolean().default(false),
  })
  .strict()
  .superRefine((n, ctx) => {
    if (n.encryption === 'none') {
      if (n.key !== undefined) ctx.addIssue({ code: 'custom', path: ['key'], message: 'an open network (encryption "none") has no key' });
    } else if (n.key === undefined) ctx.addIssue({ code: 'custom', path: ['key'], message: `is required with encryption "${n.encryption}"` });
    else if (!(/^[\x20-\x7e]{8,63}$/.test(n.key) || /^[0-9a-fA-F]{64}$/.test(n.key))) ctx.addIssue({ code: 'custom', path: ['key'], message: 'must be 8-63 printable ASCII characters or 64 hex digits' });
  });

const channelRanges = { '2g': [1, 14], '5g': [32, 177], '6g': [1, 233] } as const;

export const wifiRadioSchema = z
  .object({
    /** The wifi link's `radio`. */
    radio: uciNameSchema,
    band: z.enum(['2g', '5g', '6g']),
    channel: z.union([z.literal('auto'), z.number().int()]).default('auto'),
    htmode: z.enum(wifiHtmodes).optional(),
    /** ISO 3166 country code for the regulatory domain. */
    country: z
      .string()
      .regex(/^[A-Z]{2}$/, 'must be a two-letter country code such as DE')
      .optional(),
    /** dBm. */
    txpower: z.number().int().min(1).max(30).optional(),
    disabled: z.boolean().default(false),
    networks: z.array(wifiNetworkSchema).min(1).max(8),
  })
  .strict()
  .superRefine((r, ctx) => {
    if (typeof r.channel === 'number') {
      const [lo, hi] = channelRanges[r.band];
      if (r.channel < lo || r.channel > hi) ctx.addIssue({ code: 'custom', path: ['channel'], message: `must be "auto" or a ${r.band} channel from ${lo} to ${hi}` });
    }
  });

const fwPolicy = z.enum(['ACCEPT', 'REJECT', 'DROP']);
/** fw3/fw4 zone names: at most 11 characters (the chain names they become are limited). */
const zoneNameSchema = z
  .string()
  .min(1)
  .max(11, 'must be at most 11 characters (a firewall zone name)')
  .regex(/^[A-Za-z0-9_]+$/, 'may contain only letters, digits and "_"');
const portsSchema = z.string().regex(/^\d{1,5}(-\d{1,5})?( \d{1,5}(-\d{1,5})?)*$/, 'must be a port, a range (1000-2000) or several separated by spaces');
const protoSchema = z.enum(['tcp', 'udp', 'tcpudp', 'icmp', 'all']);

export const firewallZoneSchema = z
  .object({
    name: zoneNameSchema,
    networks: z.array(uciNameSchema).max(16).default([]),
    input: fwPolicy,
    output: fwPolicy,
    forward: fwPolicy,
    masq: z.boolean().default(false),
    mtuFix: z.boolean().default(false),
  })
  .strict();

export const firewallRuleSchema = z
  .object({
    name: z.string().min(1).max(64).regex(/^[A-Za-z0-9_. -]+$/, 'may contain only letters, digits, space, "_", "." and "-"'),
    src: zoneNameSchema.optional(),
    dest: zoneNameSchema.optional(),
    proto: protoSchema.optional(),
    srcIp: cidrSchema.or(ipSchema).optional(),
    destIp: cidrSchema.or(ipSchema).optional(),
    destPort: portsSchema.optional(),
    family: z.enum(['ipv4', 'ipv6', 'any']).optional(),
    target: z.enum(['ACCEPT', 'REJECT', 'DROP']),
  })
  .strict();

export const firewallRedirectSchema = z
  .object({
    name: z.string().min(1).max(64).regex(/^[A-Za-z0-9_. -]+$/, 'may contain only letters, digits, space, "_", "." and "-"'),
    src: zoneNameSchema.default('wan'),
    srcDPort: portsSchema,
    dest: zoneNameSchema.default('lan'),
    destIp: ipv4Schema,
    destPort: portsSchema.optional(),
    proto: z.enum(['tcp', 'udp', 'tcpudp']).default('tcpudp'),
  })
  .strict();

export const firewallSchema = z
  .object({
    defaults: z
      .object({ input: fwPolicy.default('REJECT'), output: fwPolicy.default('ACCEPT'), forward: fwPolicy.default('REJECT'), synFlood: z.boolean().default(true) })
      .strict()
      .default({ input: 'REJECT', output: 'ACCEPT', forward: 'REJECT', synFlood: true }),
    /** Default: OpenWrt's lan (accept) and wan (reject, masquerade) zones; wan only with a wan. */
    zones: z.array(firewallZoneSchema).max(32).optional(),
    /** Default: lan to wan, with a wan. */
    forwardings: z
      .array(z.object({ src: zoneNameSchema, dest: zoneNameSchema }).strict())
      .max(64)
      .optional(),
    /** OpenWrt's stock rules (DHCP renew, ping, IGMP, DHCPv6, MLD, ICMPv6, IPSec) on the wan zone. */
    defaultRules: z.boolean().default(true),
    rules: z.array(firewallRuleSchema).max(256).default([]),
    /** Port forwards. */
    redirects: z.array(firewallRedirectSchema).max(256).default([]),
  })
  .strict();

export const uciPackageNames = ['network', 'wireless', 'dhcp', 'firewall'] as const;
export type UciPackageName = (typeof uciPackageNames)[number];

/** The UCI section name of a firewall rule or redirect (from its free-text name). */
export const uciSectionNameOf = (prefix: string, name: string) => `${prefix}_${name.toLowerCase().replace(/[^a-z0-9_]/g, '_')}`;

/** The section names the agent's renderer uses in each package (docs/openwrt.md); extra sections must not take them. */
export const renderedSectionName: Record<UciPackageName, RegExp> = {
  network: /^(loopback|globals|br_lan|lan|wan|wan6)$/,
  // Radio and wifi-iface names come from the spec: checked one by one.
  wireless: /^$/,
  dhcp: /^(dnsmasq|odhcpd|lan|wan)$/,
  firewall: /^(defaults|zone_[A-Za-z0-9_]+|fwd_[A-Za-z0-9_]+|rule_[A-Za-z0-9_]+|stock_[A-Za-z0-9_]+|redirect_[A-Za-z0-9_]+)$/,
};

/** A raw UCI section added to a package after the rendered ones (an escape hatch for what the fields do not cover). */
export const extraSectionSchema = z
  .object({
    type: uciNameSchema,
    name: uciNameSchema,
    options: z.record(uciNameSchema, z.union([uciValueSchema, z.array(uciValueSchema).min(1).max(256)])).default({}),
  })
  .strict();

export const openwrtConfigSchema = z
  .object({
    lan: lanSchema,
    wan: wanSchema.optional(),
    /** Rendered into `wireless` (which is then managed); each radio is a wifi link's `radio`. */
    wireless: z.object({ radios: z.array(wifiRadioSchema).max(8) }).strict().optional(),
    firewall: firewallSchema.default({ defaults: { input: 'REJECT', output: 'ACCEPT', forward: 'REJECT', synFlood: true }, defaultRules: true, rules: [], redirects: [] }),
    extraSections: z
      .object({
        network: z.array(extraSectionSchema).max(64).optional(),
        wireless: z.array(extraSectionSchema).max(64).optional(),
        dhcp: z.array(extraSectionSchema).max(64).optional(),
        firewall: z.array(extraSectionSchema).max(256).optional(),
      })
      .strict()
      .default({}),
  })
  .strict();
export type OpenwrtConfig = z.infer<typeof openwrtConfigSchema>;

export const openwrtSectionSchema = z
  .object({
    container: openwrtContainerSchema,
    /** A handle `/run/netns/<netnsName>` (a symlink to the container's namespace) for `ip netns exec`; removed when the container is gone. */
    netnsName: z
      .string()
      .regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must be a plain name (letters, digits, "_", ".", "-")')
      .refine((n) => n !== '.' && n !== '..', 'must be a plain name')
      .optional(),
    links: z.array(openwrtLinkSchema).max(16).default([]),
    /** The container's UCI configuration (omitted: the agent does not touch it). */
    config: openwrtConfigSchema.optional(),
    /** How long the agent waits, after the change, to reach the controller again before it restores the previous state. */
    confirmTimeoutSec: z.number().int().min(1).max(3600).default(DEFAULT_CONFIRM_TIMEOUT_SEC),
  })
  .strict()
  .superRefine((s, ctx) => {
    const issue = (path: PropertyKey[], message: string) => ctx.addIssue({ code: 'custom', path, message });
    const c = s.container;
    if (c.runtime === 'process' && (c.pid === undefined) === (c.pidFile === undefined)) issue(['container', 'pid'], 'give exactly one of pid or pidFile');
    if (c.runtime === 'netns' && s.config && c.rootfs === undefined) issue(['container', 'rootfs'], 'is required with config: the UCI commands run chrooted in the container filesystem');

    // Names in the container, host names (shims, veth ends), and the host ports they use.
    const inContainer = new Map<string, number>();
    const onHost = new Map<string, string>();
    const ports = new Map<string, number>();
    const radios = new Map<string, number>();
    const wifiKeys = new Map<string, number>();
    const hostName = (name: string, where: PropertyKey[], what: string) => {
      if (onHost.has(name)) issue(where, `${name} is already ${onHost.get(name)}`);
      else onHost.set(name, what);
    };
    const matchKey = (m: { name?: string; mac?: string }) => (m.mac !== undefined ? `mac ${m.mac.toLowerCase()}` : `name ${m.name}`);
    s.links.forEach((l, n) => {
      if (l.type === 'wifi') {
        if (radios.has(l.radio)) issue(['links', n, 'radio'], `duplicates links[${radios.get(l.radio)}].radio`);
        else radios.set(l.radio, n);
        const key = JSON.stringify(l.match);
        if (wifiKeys.has(key)) issue(['links', n, 'match'], `duplicates links[${wifiKeys.get(key)}].match`);
        else wifiKeys.set(key, n);
        return;
      }
      if (l.name === 'lo') issue(['links', n, 'name'], 'lo is the container\'s loopback');
      else if (inContainer.has(l.name)) issue(['links', n, 'name'], `duplicates links[${inContainer.get(l.name)}].name`);
      else inContainer.set(l.name, n);
      if (l.type === 'port') {
        const k = matchKey(l.match);
        if (ports.has(k)) issue(['links', n, 'match'], `links[${ports.get(k)}] already moves the port with ${k}`);
        else ports.set(k, n);
      }
      if ((l.type === 'macvlan' || l.type === 'ipvlan') && l.shim) hostName(l.shim.name, ['links', n, 'shim', 'name'], `the host shim of links[${n}]`);
      if (l.type === 'veth') hostName(l.host.name, ['links', n, 'host', 'name'], `the host end of links[${n}]`);
      if (l.type === 'macvlan' && l.mode === 'passthru' && l.shim) issue(['links', n, 'shim'], 'a passthru macvlan takes the whole parent: there can be no shim beside it');
    });
    // A parent stays on the host: it cannot also be a port moved into the container.
    s.links.forEach((l, n) => {
      if (l.type !== 'macvlan' && l.type !== 'ipvlan') return;
      const k = matchKey(l.parent);
      if (ports.has(k)) issue(['links', n, 'parent'], `links[${ports.get(k)}] moves that port into the container; a parent stays on the host`);
      if (l.parent.name !== undefined && onHost.has(l.parent.name)) issue(['links', n, 'parent', 'name'], `${l.parent.name} is ${onHost.get(l.parent.name)}`);
    });

    const cfg = s.config;
    if (!cfg) return;
    const links = new Map(s.links.flatMap((l, n) => (l.type === 'wifi' ? [] : [[l.name, n] as const])));
    const used = new Map<string, string>();
    cfg.lan.devices.forEach((d, n) => {
      if (!links.has(d)) issue(['config', 'lan', 'devices', n], `no link named ${d} in links`);
      else if (used.has(d)) issue(['config', 'lan', 'devices', n], `${d} is already ${used.get(d)}`);
      else used.set(d, `in config.lan.devices`);
    });
    if (cfg.wan) {
      const w = cfg.wan;
      if (!links.has(w.device)) issue(['config', 'wan', 'device'], `no link named ${w.device} in links`);
      else if (used.has(w.device)) issue(['config', 'wan', 'device'], `${w.device} is already in config.lan.devices`);
      if (w.proto === 'static') {
        if (!w.address) issue(['config', 'wan', 'address'], 'is required with proto "static"');
        if (w.gateway && w.address) {
          const a = parseCidr(w.address);
          if (a && !inNetwork(w.gateway, a)) issue(['config', 'wan', 'gateway'], `${w.gateway} is not on the network of ${w.address}`);
        }
      } else {
        if (w.address) issue(['config', 'wan', 'address'], `only a static wan has an address (proto is ${w.proto})`);
        if (w.gateway) issue(['config', 'wan', 'gateway'], `only a static wan has a gateway (proto is ${w.proto})`);
      }
    }
    const lanNet = parseCidr(cfg.lan.address);
    if (cfg.lan.dhcp && lanNet) {
      const hosts = 2 ** (32 - lanNet.prefix) - 2;
      if (cfg.lan.dhcp.start + cfg.lan.dhcp.limit - 1 > hosts) issue(['config', 'lan', 'dhcp', 'limit'], `start ${cfg.lan.dhcp.start} + limit ${cfg.lan.dhcp.limit} goes past the ${hosts} host addresses of ${cfg.lan.address}`);
    }
    if (cfg.wan?.address && lanNet) {
      const w = parseCidr(cfg.wan.address) as Cidr | undefined;
      if (w && (inNetwork(w.address, lanNet) || inNetwork(lanNet.address, w))) issue(['config', 'wan', 'address'], `overlaps the LAN ${cfg.lan.address}`);
    }

    // OpenWrt interfaces the other packages may name.
    const ifaces = new Set(['lan', ...(cfg.wan ? ['wan', ...(cfg.wan.ipv6 ? ['wan6'] : [])] : []), ...(cfg.extraSections.network ?? []).filter((x) => x.type === 'interface').map((x) => x.name)]);
    const seenRadios = new Map<string, number>();
    const ifaceNames = new Map<string, string>();
    cfg.wireless?.radios.forEach((r, n) => {
      if (!radios.has(r.radio)) issue(['config', 'wireless', 'radios', n, 'radio'], `no wifi link with radio ${r.radio} in links`);
      if (seenRadios.has(r.radio)) issue(['config', 'wireless', 'radios', n, 'radio'], `duplicates config.wireless.radios[${seenRadios.get(r.radio)}].radio`);
      else seenRadios.set(r.radio, n);
      r.networks.forEach((w, m) => {
        if (!ifaces.has(w.network)) issue(['config', 'wireless', 'radios', n, 'networks', m, 'network'], `no OpenWrt interface ${w.network} (there are: ${[...ifaces].join(', ')})`);
        const name = w.name ?? (m === 0 ? `default_${r.radio}` : `${r.radio}_${m}`);
        if (ifaceNames.has(name)) issue(['config', 'wireless', 'radios', n, 'networks', m, 'name'], `the wifi-iface name ${name} is already ${ifaceNames.get(name)}`);
        else ifaceNames.set(name, `config.wireless.radios[${n}].networks[${m}]`);
      });
    });

    const fw = cfg.firewall;
    const zones = new Map<string, number>();
    (fw.zones ?? []).forEach((z, n) => {
      if (zones.has(z.name)) issue(['config', 'firewall', 'zones', n, 'name'], `duplicates config.firewall.zones[${zones.get(z.name)}].name`);
      else zones.set(z.name, n);
      z.networks.forEach((net, m) => {
        if (!ifaces.has(net)) issue(['config', 'firewall', 'zones', n, 'networks', m], `no OpenWrt interface ${net} (there are: ${[...ifaces].join(', ')})`);
      });
    });
    const zoneNames = fw.zones ? new Set(zones.keys()) : new Set(['lan', ...(cfg.wan ? ['wan'] : [])]);
    const zoneRef = (z: string | undefined, path: PropertyKey[]) => {
      if (z !== undefined && !zoneNames.has(z)) issue(path, `no firewall zone ${z} (there are: ${[...zoneNames].join(', ')})`);
    };
    (fw.forwardings ?? []).forEach((f, n) => {
      zoneRef(f.src, ['config', 'firewall', 'forwardings', n, 'src']);
      zoneRef(f.dest, ['config', 'firewall', 'forwardings', n, 'dest']);
      if (f.src === f.dest) issue(['config', 'firewall', 'forwardings', n, 'dest'], 'is the same zone as src');
    });
    const ruleSections = new Map<string, string>();
    const uniqueSection = (sec: string, path: PropertyKey[], what: string) => {
      if (ruleSections.has(sec)) issue(path, `gives the same UCI section name (${sec}) as ${ruleSections.get(sec)}`);
      else ruleSections.set(sec, what);
    };
    fw.rules.forEach((r, n) => uniqueSection(uciSectionNameOf('rule', r.name), ['config', 'firewall', 'rules', n, 'name'], `config.firewall.rules[${n}]`));
    fw.redirects.forEach((r, n) => uniqueSection(uciSectionNameOf('redirect', r.name), ['config', 'firewall', 'redirects', n, 'name'], `config.firewall.redirects[${n}]`));
    fw.rules.forEach((r, n) => {
      zoneRef(r.src, ['config', 'firewall', 'rules', n, 'src']);
      zoneRef(r.dest, ['config', 'firewall', 'rules', n, 'dest']);
      if (r.destPort !== undefined && (r.proto === 'icmp' || r.proto === 'all' || r.proto === undefined)) issue(['config', 'firewall', 'rules', n, 'destPort'], 'needs proto tcp, udp or tcpudp');
    });
    fw.redirects.forEach((r, n) => {
      zoneRef(r.src, ['config', 'firewall', 'redirects', n, 'src']);
      zoneRef(r.dest, ['config', 'firewall', 'redirects', n, 'dest']);
    });
    if (fw.defaultRules && !zoneNames.has('wan') && cfg.wan) issue(['config', 'firewall', 'defaultRules'], 'the stock rules are for a zone named wan; name one wan or set defaultRules to false');
    for (const pkg of uciPackageNames) {
      const extra = cfg.extraSections[pkg] ?? [];
      const seen = new Map<string, number>();
      extra.forEach((x, n) => {
        if (pkg === 'wireless' && (radios.has(x.name) || ifaceNames.has(x.name))) issue(['config', 'extraSections', pkg, n, 'name'], `${x.name} is a radio or wifi-iface the agent renders; choose another`);
        else if (renderedSectionName[pkg].test(x.name)) issue(['config', 'extraSections', pkg, n, 'name'], `${x.name} is a name of the sections the agent renders in ${pkg} (${renderedSectionName[pkg].source}); choose another`);
        else if (seen.has(x.name)) issue(['config', 'extraSections', pkg, n, 'name'], `duplicates config.extraSections.${pkg}[${seen.get(x.name)}].name`);
        else seen.set(x.name, n);
      });
    }
    if ((cfg.extraSections.wireless ?? []).length && !cfg.wireless) issue(['config', 'extraSections', 'wireless'], 'wireless is only managed with config.wireless');
  });
export type OpenwrtSection = z.infer<typeof openwrtSectionSchema>;
