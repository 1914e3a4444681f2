import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { z } from 'zod';
import { desiredStateSchema } from '../desired-state.js';
import { fieldIssues } from '../errors.js';
import { openwrtSectionSchema } from './openwrt.js';
import { openwrtExample } from './openwrt-example.js';

type Json = Record<string, unknown>;
const ex = () => structuredClone(openwrtExample) as unknown as Json & { links: Json[]; config: Json & { lan: Json; wan: Json; wireless: { radios: Json[] }; firewall: Json } };

function issuesOf(spec: unknown): Map<string, string> {
  const r = desiredStateSchema.safeParse({ openwrt: spec });
  assert.equal(r.success, false, 'expected the spec to be refused');
  if (r.success) return new Map();
  return new Map(fieldIssues(r.error).map((i) => [i.path, i.message]));
}

function refused(spec: unknown, path: string, message: RegExp): void {
  const issues = issuesOf(spec);
  assert.ok(issues.has(path), `no issue at ${path}: ${JSON.stringify([...issues])}`);
  assert.match(issues.get(path)!, message);
}

describe('openwrt section schema', () => {
  it('accepts the example and fills the defaults', () => {
    const s = openwrtSectionSchema.parse(openwrtExample);
    assert.equal(s.confirmTimeoutSec, 90);
    assert.deepEqual(s.links[0], { type: 'macvlan', name: 'eth0', parent: { name: 'enp2s0' }, mode: 'bridge', mac: '02:42:c0:a8:0a:01', shim: { name: 'owrt-shim', addresses: ['192.168.10.2/24'], routes: [] } });
    assert.equal(s.config!.wan!.ipv6, true);
    assert.equal(s.config!.firewall.defaultRules, true);
    assert.deepEqual(s.config!.firewall.defaults, { input: 'REJECT', output: 'ACCEPT', forward: 'REJECT', synFlood: true });
    const net = s.config!.wireless!.radios[0]!.networks[0]!;
    assert.equal(net.network, 'lan');
    assert.equal(net.hidden, false);
    assert.equal(s.config!.firewall.redirects[0]!.src, 'wan');
  });

  it('accepts every container runtime and a wiring-only section (no config)', () => {
    for (const container of [{ runtime: 'podman', name: 'owrt' }, { runtime: 'process', pid: 4242 }, { runtime: 'process', pidFile: '/run/openwrt.pid' }, { runtime: 'netns', path: '/run/netns/openwrt' }, { runtime: 'netns', path: '/proc/77/ns/net' }]) {
      const s = openwrtSectionSchema.parse({ container, links: [{ type: 'veth', name: 'eth0', host: { name: 'owrt0', addresses: ['10.0.0.2/24'] } }] });
      assert.equal(s.config, undefined);
    }
    const ipvlan = openwrtSectionSchema.parse({ container: { runtime: 'docker', name: 'x' }, links: [{ type: 'ipvlan', name: 'eth0', parent: { mac: '02:00:00:00:00:09' } }] });
    assert.equal(ipvlan.links[0]!.type === 'ipvlan' && ipvlan.links[0]!.mode, 'l2');
  });

  it('refuses bad containers naming the field', () => {
    refused({ ...ex(), container: { runtime: 'lxc', name: 'x' } }, 'openwrt.container.runtime', /docker|Invalid/);
    refused({ ...ex(), container: { runtime: 'docker', name: '-rm' } }, 'openwrt.container.name', /container name/);
    refused({ ...ex(), container: { runtime: 'process' } }, 'openwrt.container.pid', /exactly one of pid or pidFile/);
    refused({ ...ex(), container: { runtime: 'process', pid: 1 } }, 'openwrt.container.pid', /2 or more/);
    refused({ ...ex(), container: { runtime: 'process', pidFile: 'run/x.pid' } }, 'openwrt.container.pidFile', /absolute/);
    refused({ ...ex(), container: { runtime: 'netns', path: '/tmp/ns' } }, 'openwrt.container.path', /run\/netns/);
    refused({ ...ex(), container: { runtime: 'netns', path: '/run/netns/openwrt' } }, 'openwrt.container.rootfs', /required with config/);
  });

  it('refuses links that collide or cannot work', () => {
    const withLinks = (links: unknown[]) => ({ ...ex(), links, config: undefined });
    refused(withLinks([{ type: 'port', name: 'eth0', match: { name: 'enp1s0' } }, { type: 'port', name: 'eth0', match: { name: 'enp2s0' } }]), 'openwrt.links[1].name', /duplicates links\[0\]\.name/);
    refused(withLinks([{ type: 'port', name: 'eth0', match: { mac: '02:00:00:00:00:01' } }, { type: 'port', name: 'eth1', match: { mac: '02:00:00:00:00:01' } }]), 'openwrt.links[1].match', /already moves the port/);
    refused(withLinks([{ type: 'port', name: 'eth0', match: { name: 'enp1s0' } }, { type: 'macvlan', name: 'eth1', parent: { name: 'enp1s0' } }]), 'openwrt.links[1].parent', /a parent stays on the host/);
    refused(withLinks([{ type: 'port', name: 'eth0', match: { name: 'enp1s0', mac: '02:00:00:00:00:01' } }]), 'openwrt.links[0].match', /exactly one of name or mac/);
    refused(withLinks([{ type: 'macvlan', name: 'eth0', parent: { name: 'p' }, shim: { name: 's0' } }, { type: 'veth', name: 'eth1', host: { name: 's0' } }]), 'openwrt.links[1].host.name', /already the host shim of links\[0\]/);
    refused(withLinks([{ type: 'macvlan', name: 'eth0', parent: { name: 'p' }, mode: 'passthru', shim: { name: 's0' } }]), 'openwrt.links[0].shim', /passthru/);
    refused(withLinks([{ type: 'wifi', match: { interface: 'wlan0', phy: 'phy0' } }]), 'openwrt.links[0].match', /exactly one of interface, phy or mac/);
    refused(withLinks([{ type: 'wifi', match: { phy: 'phy0' } }, { type: 'wifi', match: { phy: 'phy1' } }]), 'openwrt.links[1].radio', /duplicates links\[0\]\.radio/);
    refused(withLinks([{ type: 'port', name: 'lo', match: { name: 'x' } }]), 'openwrt.links[0].name', /loopback/);
    refused(withLinks([{ type: 'veth', name: 'eth0', host: { name: 's0', addresses: ['10.0.0.1/33'] } }]), 'openwrt.links[0].host.addresses[0]', /prefix length/);
    refused(withLinks([{ type: 'veth', name: 'eth0', host: { name: 's0', routes: ['10.0.0.1/24'] } }]), 'openwrt.links[0].host.routes[0]', /no host bits/);
  });

  it('refuses config that names links, interfaces or zones that do not exist', () => {
    const s = ex();
    s.config.lan.devices = ['eth9'];
    refused(s, 'openwrt.config.lan.devices[0]', /no link named eth9/);
    const w = ex();
    w.config.wan.device = 'eth0';
    refused(w, 'openwrt.config.wan.device', /already in config.lan.devices/);
    const r = ex();
    r.config.wireless.radios[0]!.radio = 'radio7';
    refused(r, 'openwrt.config.wireless.radios[0].radio', /no wifi link with radio radio7/);
    const n = ex();
    (n.config.wireless.radios[0]!.networks as Json[])[0]!.network = 'guest';
    refused(n, 'openwrt.config.wireless.radios[0].networks[0].network', /no OpenWrt interface guest/);
    const z1 = ex();
    z1.config.firewall = { forwardings: [{ src: 'lan', dest: 'dmz' }] };
    refused(z1, 'openwrt.config.firewall.forwardings[0].dest', /no firewall zone dmz/);
    const z2 = ex();
    z2.config.firewall = { zones: [{ name: 'lan', networks: ['lan', 'iot'], input: 'ACCEPT', output: 'ACCEPT', forward: 'ACCEPT' }], defaultRules: false };
    refused(z2, 'openwrt.config.firewall.zones[0].networks[1]', /no OpenWrt interface iot/);
    const z3 = ex();
    z3.config.firewall = { rules: [{ name: 'Allow ssh', src: 'wan', destPort: '22', target: 'ACCEPT' }] };
    refused(z3, 'openwrt.config.firewall.rules[0].destPort', /needs proto/);
    const z4 = ex();
    z4.config.firewall = { rules: [{ name: 'a b', src: 'wan', target: 'DROP' }, { name: 'a_b', src: 'wan', target: 'DROP' }] };
    refused(z4, 'openwrt.config.firewall.rules[1].name', /same UCI section name \(rule_a_b\)/);
  });

  it('refuses bad OpenWrt settings with the reason', () => {
    const lan = ex();
    lan.config.lan.address = '192.168.10.0/24';
    refused(lan, 'openwrt.config.lan.address', /IPv4 host address/);
    const dhcp = ex();
    dhcp.config.lan.dhcp = { start: 200, limit: 100 };
    refused(dhcp, 'openwrt.config.lan.dhcp.limit', /goes past the 254 host addresses/);
    const wan = ex();
    wan.config.wan = { device: 'eth1', proto: 'static' };
    refused(wan, 'openwrt.config.wan.address', /required with proto "static"/);
    const gw = ex();
    gw.config.wan = { device: 'eth1', proto: 'static', address: '10.0.0.2/24', gateway: '10.1.0.1' };
    refused(gw, 'openwrt.config.wan.gateway', /not on the network/);
    const overlap = ex();
    overlap.config.wan = { device: 'eth1', proto: 'static', address: '192.168.10.200/24' };
    refused(overlap, 'openwrt.config.wan.address', /overlaps the LAN/);
    const radio = (patch: Json) => {
      const s = ex();
      Object.assign(s.config.wireless.radios[0]!, patch);
      return s;
    };
    refused(radio({ channel: 36 }), 'openwrt.config.wireless.radios[0].channel', /2g channel from 1 to 14/);
    refused(radio({ country: 'de' }), 'openwrt.config.wireless.radios[0].country', /two-letter/);
    refused(radio({ htmode: 'VHT320' }), 'openwrt.config.wireless.radios[0].htmode', /HT20|Invalid/);
    const net = (patch: Json) => radio({ networks: [{ ssid: 'x', encryption: 'psk2', key: 'long enough', ...patch }] });
    refused(net({ key: 'short' }), 'openwrt.config.wireless.radios[0].networks[0].key', /8-63 printable ASCII/);
    refused(net({ encryption: 'none' }), 'openwrt.config.wireless.radios[0].networks[0].key', /open network/);
    refused(net({ key: undefined }), 'openwrt.config.wireless.radios[0].networks[0].key', /required with encryption "psk2"/);
    refused(net({ ssid: 'x'.repeat(33) }), 'openwrt.config.wireless.radios[0].networks[0].ssid', /32 bytes/);
    refused(net({ ssid: 'two\nlines' }), 'openwrt.config.wireless.radios[0].networks[0].ssid', /one line/);
  });

  it('refuses extra sections that take a rendered name or carry a newline', () => {
    const s = ex();
    s.config.extraSections = { network: [{ type: 'interface', name: 'lan', options: { proto: 'none' } }] };
    refused(s, 'openwrt.config.extraSections.network[0].name', /sections the agent renders/);
    const w = ex();
    w.config.extraSections = { wireless: [{ type: 'wifi-iface', name: 'default_radio0' }] };
    refused(w, 'openwrt.config.extraSections.wireless[0].name', /radio or wifi-iface the agent renders/);
    const v = ex();
    v.config.extraSections = { dhcp: [{ type: 'host', name: 'nas', options: { name: 'a\nb' } }] };
    refused(v, 'openwrt.config.extraSections.dhcp[0].options.name', /one line/);
    const ok = ex();
    ok.config.extraSections = { dhcp: [{ type: 'host', name: 'nas', options: { mac: '02:00:00:00:00:20', ip: '192.168.10.20' } }], network: [{ type: 'interface', name: 'iot', options: { proto: 'none' } }] };
    ok.config.firewall = { zones: [{ name: 'lan', networks: ['lan', 'iot'], input: 'ACCEPT', output: 'ACCEPT', forward: 'ACCEPT' }, { name: 'wan', networks: ['wan'], input: 'REJECT', output: 'ACCEPT', forward: 'REJECT', masq: true }] };
    assert.equal(openwrtSectionSchema.safeParse(ok).success, true, JSON.stringify(openwrtSectionSchema.safeParse(ok).error?.issues));
  });

  it('can be published as JSON Schema (no transforms), as the controller does', () => {
    const js = z.toJSONSchema(openwrtSectionSchema, { io: 'input' }) as { properties: Record<string, unknown> };
    assert.ok(js.properties.container && js.properties.links && js.properties.config);
  });
});
