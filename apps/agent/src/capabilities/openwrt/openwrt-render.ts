import { type OpenwrtConfig, type UciPackageName, parseCidr, prefixToNetmask, uciSectionNameOf } from '@ibex/spec';
import type { UciPackage, UciSection, UciValue } from './uci.js';

/** A Wi-Fi radio as the agent found it: the phy name now (it changes after a replug) and its MAC. */
export interface ResolvedRadio {
  phy: string;
  mac?: string;
}

type Opts = Array<[string, UciValue | undefined | false]>;

/** A named section; options whose value is undefined or false are left out, true is '1'. */
function section(type: string, name: string, opts: Opts): UciSection {
  const options: Array<[string, UciValue]> = [];
  for (const [k, v] of opts) if (v !== undefined && v !== false && !(Array.isArray(v) && v.length === 0)) options.push([k, v]);
  return { type, name, options };
}
const flag = (b: boolean) => (b ? '1' : false);

function renderNetwork(cfg: OpenwrtConfig): UciPackage {
  const lan = parseCidr(cfg.lan.address)!;
  const sections: UciSection[] = [
    section('interface', 'loopback', [
      ['device', 'lo'],
      ['proto', 'static'],
      ['ipaddr', '127.0.0.1'],
      ['netmask', '255.0.0.0'],
    ]),
    // The LAN is always the bridge br-lan (as OpenWrt's own default), so Wi-Fi networks can join it.
    section('device', 'br_lan', [
      ['name', 'br-lan'],
      ['type', 'bridge'],
      ['ports', cfg.lan.devices],
    ]),
    section('interface', 'lan', [
      ['device', 'br-lan'],
      ['proto', 'static'],
      // Dotted netmask: what OpenWrt's own defaults and older netifd read.
      ['ipaddr', lan.address],
      ['netmask', prefixToNetmask(lan.prefix)],
      ['ip6assign', cfg.lan.ipv6Assign === undefined ? undefined : String(cfg.lan.ipv6Assign)],
      ['dns', cfg.lan.dns],
    ]),
  ];
  const wan = cfg.wan;
  if (wan) {
    const a = wan.address ? parseCidr(wan.address) : undefined;
    sections.push(
      section('interface', 'wan', [
        ['device', wan.device],
        ['proto', wan.proto],
        ['ipaddr', a?.address],
        ['netmask', a ? prefixToNetmask(a.prefix) : undefined],
        ['gateway', wan.gateway],
        ['dns', wan.dns],
      ]),
    );
    if (wan.ipv6)
      sections.push(
        section('interface', 'wan6', [
          ['device', wan.device],
          ['proto', 'dhcpv6'],
        ]),
      );
  }
  return { name: 'network', sections: [...sections, ...extra(cfg, 'network')] };
}

function renderWireless(cfg: OpenwrtConfig, radios: ReadonlyMap<string, ResolvedRadio>): UciPackage | undefined {
  if (!cfg.wireless) return undefined;
  const sections: UciSection[] = [];
  for (const r of cfg.wireless.radios) {
    const found = radios.get(r.radio);
    sections.push(
      section('wifi-device', r.radio, [
        ['type', 'mac80211'],
        // The phy as it is named now (re-resolved at every apply) and its MAC, which survives a rename.
        ['phy', found?.phy],
        ['macaddr', found?.mac],
        ['band', r.band],
        ['channel', String(r.channel)],
        ['htmode', r.htmode],
        ['country', r.country],
        ['txpower', r.txpower === undefined ? undefined : String(r.txpower)],
        ['disabled', flag(r.disabled)],
      ]),
    );
    r.networks.forEach((n, i) => {
      sections.push(
        section('wifi-iface', n.name ?? (i === 0 ? `default_${r.radio}` : `${r.radio}_${i}`), [
          ['device', r.radio],
          ['network', n.network],
          ['mode', 'ap'],
          ['ssid', n.ssid],
          ['encryption', n.encryption],
          ['key', n.key],
          ['hidden', flag(n.hidden)],
          ['isolate', flag(n.isolate)],
        ]),
      );
    });
  }
  return { name: 'wireless', sections: [...sections, ...extra(cfg, 'wireless')] };
}

function renderDhcp(cfg: OpenwrtConfig): UciPackage {
  const d = cfg.lan.dhcp;
  const sections: UciSection[] = [
    // OpenWrt's stock dnsmasq settings (its anonymous section, named here so it can be diffed).
    section('dnsmasq', 'dnsmasq', [
      ['domainneeded', '1'],
      ['localise_queries', '1'],
      ['rebind_protection', '1'],
      ['rebind_localhost', '1'],
      ['local', '/lan/'],
      ['domain', 'lan'],
      ['expandhosts', '1'],
      ['cachesize', '1000'],
      ['authoritative', '1'],
      ['readethers', '1'],
      ['leasefile', '/tmp/dhcp.leases'],
      ['resolvfile', '/tmp/resolv.conf.d/resolv.conf.auto'],
      ['localservice', '1'],
      ['ednspacket_max', '1232'],
    ]),
    d
      ? section('dhcp', 'lan', [
          ['interface', 'lan'],
          ['start', String(d.start)],
          ['limit', String(d.limit)],
          ['leasetime', d.leaseTime],
          ['dhcpv4', 'server'],
          ...(cfg.lan.ipv6Assign !== undefined
            ? ([
                ['dhcpv6', 'server'],
                ['ra', 'server'],
                ['ra_flags', ['managed-config', 'other-config']],
              ] as Opts)
            : []),
        ])
      : section('dhcp', 'lan', [
          ['interface', 'lan'],
          ['ignore', '1'],
        ]),
  ];
  if (cfg.wan)
    sections.push(
      section('dhcp', 'wan', [
        ['interface', 'wan'],
        ['ignore', '1'],
      ]),
    );
  sections.push(
    section('odhcpd', 'odhcpd', [
      ['maindhcp', '0'],
      ['leasefile', '/tmp/hosts/odhcpd'],
      ['leasetrigger', '/usr/sbin/odhcpd-update'],
      ['loglevel', '4'],
    ]),
  );
  return { name: 'dhcp', sections: [...sections, ...extra(cfg, 'dhcp')] };
}

/** OpenWrt's stock rules for the wan zone (package firewall4's default config). */
const STOCK_RULES: Array<{ name: string; opts: Opts }> = [
  { name: 'Allow-DHCP-Renew', opts: [['src', 'wan'], ['proto', 'udp'], ['dest_port', '68'], ['target', 'ACCEPT'], ['family', 'ipv4']] },
  { name: 'Allow-Ping', opts: [['src', 'wan'], ['proto', 'icmp'], ['icmp_type', 'echo-request'], ['family', 'ipv4'], ['target', 'ACCEPT']] },
  { name: 'Allow-IGMP', opts: [['src', 'wan'], ['proto', 'igmp'], ['family', 'ipv4'], ['target', 'ACCEPT']] },
  { name: 'Allow-DHCPv6', opts: [['src', 'wan'], ['proto', 'udp'], ['dest_port', '546'], ['family', 'ipv6'], ['target', 'ACCEPT']] },
  { name: 'Allow-MLD', opts: [['src', 'wan'], ['proto', 'icmp'], ['src_ip', 'fe80::/10'], ['icmp_type', ['130/0', '131/0', '132/0', '143/0']], ['family', 'ipv6'], ['target', 'ACCEPT']] },
  {
    name: 'Allow-ICMPv6-Input',
    opts: [['src', 'wan'], ['proto', 'icmp'], ['icmp_type', ['echo-request', 'echo-reply', 'destination-unreachable', 'packet-too-big', 'time-exceeded', 'bad-header', 'unknown-header-type', 'router-solicitation', 'neighbour-solicitation', 'router-advertisement', 'neighbour-advertisement']], ['limit', '1000/sec'], ['family', 'ipv6'], ['target', 'ACCEPT']],
  },
  {
    name: 'Allow-ICMPv6-Forward',
    opts: [['src', 'wan'], ['dest', '*'], ['proto', 'icmp'], ['icmp_type', ['echo-request', 'echo-reply', 'destination-unreachable', 'packet-too-big', 'time-exceeded', 'bad-header', 'unknown-header-type']], ['limit', '1000/sec'], ['family', 'ipv6'], ['target', 'ACCEPT']],
  },
  { name: 'Allow-IPSec-ESP', opts: [['src', 'wan'], ['dest', 'lan'], ['proto', 'esp'], ['target', 'ACCEPT']] },
  { name: 'Allow-ISAKMP', opts: [['src', 'wan'], ['dest', 'lan'], ['dest_port', '500'], ['proto', 'udp'], ['target', 'ACCEPT']] },
];

function renderFirewall(cfg: OpenwrtConfig): UciPackage {
  const fw = cfg.firewall;
  const wan = cfg.wan;
  const zones =
    fw.zones ??
    [
      { name: 'lan', networks: ['lan'], input: 'ACCEPT', output: 'ACCEPT', forward: 'ACCEPT', masq: false, mtuFix: false } as const,
      ...(wan ? [{ name: 'wan', networks: wan.ipv6 ? ['wan', 'wan6'] : ['wan'], input: 'REJECT', output: 'ACCEPT', forward: 'REJECT', masq: true, mtuFix: true } as const] : []),
    ];
  const forwardings = fw.forwardings ?? (wan ? [{ src: 'lan', dest: 'wan' }] : []);
  const sections: UciSection[] = [
    section('defaults', 'defaults', [
      ['syn_flood', flag(fw.defaults.synFlood)],
      ['input', fw.defaults.input],
      ['output', fw.defaults.output],
      ['forward', fw.defaults.forward],
    ]),
    ...zones.map((z) =>
      section('zone', `zone_${z.name}`, [
        ['name', z.name],
        ['network', [...z.networks]],
        ['input', z.input],
        ['output', z.output],
        ['forward', z.forward],
        ['masq', flag(z.masq)],
        ['mtu_fix', flag(z.mtuFix)],
      ]),
    ),
    ...forwardings.map((f) =>
      section('forwarding', `fwd_${f.src}_${f.dest}`, [
        ['src', f.src],
        ['dest', f.dest],
      ]),
    ),
  ];
  if (fw.defaultRules && zones.some((z) => z.name === 'wan')) {
    const hasLan = zones.some((z) => z.name === 'lan');
    for (const r of STOCK_RULES) {
      if (!hasLan && r.opts.some(([k, v]) => k === 'dest' && v === 'lan')) continue;
      sections.push(section('rule', uciSectionNameOf('stock', r.name), [['name', r.name], ...r.opts]));
    }
  }
  for (const r of fw.rules) {
    sections.push(
      section('rule', uciSectionNameOf('rule', r.name), [
        ['name', r.name],
        ['src', r.src],
        ['dest', r.dest],
        ['proto', r.proto === 'tcpudp' ? ['tcp', 'udp'] : r.proto],
        ['src_ip', r.srcIp],
        ['dest_ip', r.destIp],
        ['dest_port', r.destPort],
        ['family', r.family],
        ['target', r.target],
      ]),
    );
  }
  for (const r of fw.redirects) {
    sections.push(
      section('redirect', uciSectionNameOf('redirect', r.name), [
        ['name', r.name],
        ['target', 'DNAT'],
        ['src', r.src],
        ['src_dport', r.srcDPort],
        ['dest', r.dest],
        ['dest_ip', r.destIp],
        ['dest_port', r.destPort],
        ['proto', r.proto === 'tcpudp' ? ['tcp', 'udp'] : r.proto],
      ]),
    );
  }
  return { name: 'firewall', sections: [...sections, ...extra(cfg, 'firewall')] };
}

function extra(cfg: OpenwrtConfig, pkg: UciPackageName): UciSection[] {
  return (cfg.extraSections[pkg] ?? []).map((x) => ({ type: x.type, name: x.name, options: Object.entries(x.options) }));
}

/**
 * Pure: the UCI packages the agent manages for this config, as complete packages (every
 * section named). `wireless` only when the config has radios; `radios` are the phys found for
 * the wifi links (by their `radio`).
 */
export function renderOpenwrtConfig(cfg: OpenwrtConfig, radios: ReadonlyMap<string, ResolvedRadio>): UciPackage[] {
  const pkgs = [renderNetwork(cfg), renderWireless(cfg, radios), renderDhcp(cfg), renderFirewall(cfg)];
  return pkgs.filter((p): p is UciPackage => p !== undefined);
}
