import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { networkSectionSchema } from '@ibex/spec';
import { autoNames, ifaceNames, ifaceOptions, parseInterfaces, renamesOf, serializeInterfaces, withoutInterfaces } from './parse.js';
import { BEGIN_MARK, END_MARK, managedBlockOf, renderNetwork, staleManagedPaths } from './render.js';
import { scenarioSpec } from '../../testing/network-scenario.js';

const HEADER = '# Managed by ibex-agent (the network section of the desired state); changes here are replaced at the next apply.';

/** The hand-written setup of the Alpine write-up (seed), main file. */
const handWritten = `#!/bin/ash
# /etc/network/interfaces
# Main network interfaces configuration file

# Loopback interface
auto lo

# DHCP configuration for eth1_dhcp
auto eth1_dhcp
iface eth1_dhcp inet dhcp

mapping eth*
    script /usr/local/bin/map-scheme
    map HOME eth0-home

iface wlan0 inet dhcp
    # a comment inside a stanza
    wpa-conf /etc/wpa.conf
    hwaddress ether 02:00:00:00:00:09
allow-hotplug wlan0 usb0
source-directory /etc/network/interfaces.d
weird-top-level-line here
`;

describe('interfaces parser', () => {
  it('round-trips any text byte for byte', () => {
    for (const text of [handWritten, '', '\n', 'auto lo', 'iface x inet manual\n  up true\n\n\n# end', '\t\n# only comments\n', 'source /a\nsource-directory /b\n']) {
      assert.equal(serializeInterfaces(parseInterfaces(text)), text);
    }
  });

  it('reads stanzas, options, auto/allow lines, mappings and sources', () => {
    const p = parseInterfaces(handWritten);
    assert.deepEqual(ifaceNames(p), ['eth1_dhcp', 'wlan0']);
    assert.deepEqual(autoNames(p), ['lo', 'eth1_dhcp']);
    assert.deepEqual(
      ifaceOptions(p, 'wlan0').map((o) => o.key),
      ['wpa-conf', 'hwaddress'],
    );
    assert.deepEqual(p.items.filter((i) => i.kind === 'mapping').map((i) => i.kind === 'mapping' && i.options.map((o) => o.key)), [['script', 'map']]);
    assert.deepEqual(p.items.filter((i) => i.kind === 'source').map((i) => i.kind === 'source' && `${i.keyword} ${i.path}`), ['source-directory /etc/network/interfaces.d']);
    assert.deepEqual(p.items.filter((i) => i.kind === 'other').map((i) => i.lines[0]), ['weird-top-level-line here']);
    assert.ok(p.items.some((i) => i.kind === 'auto' && i.keyword === 'allow-hotplug' && i.names.join() === 'wlan0,usb0'));
  });

  it('drops only what concerns the named interfaces', () => {
    const out = serializeInterfaces(withoutInterfaces(parseInterfaces(handWritten), new Set(['eth1_dhcp', 'usb0'])));
    assert.ok(!out.includes('iface eth1_dhcp'));
    assert.ok(!out.includes('auto eth1_dhcp'));
    assert.ok(out.includes('allow-hotplug wlan0\n'));
    for (const kept of ['mapping eth*', 'map HOME eth0-home', '# a comment inside a stanza', 'hwaddress ether 02:00:00:00:00:09', 'weird-top-level-line here', '#!/bin/ash']) assert.ok(out.includes(kept), kept);
  });

  it('recognises the renames the renderer writes', () => {
    const [, eth0] = renderNetwork(scenarioSpec(), { interfacesD: [] }, { sourceDir: '/etc/network/interfaces.d' }).slice(1);
    assert.deepEqual(renamesOf(parseInterfaces(eth0!.content)), [{ from: 'eth0', to: 'eth0_static' }]);
  });
});

describe('network renderer', () => {
  it('renders the issue scenario exactly', () => {
    const files = renderNetwork(scenarioSpec(), { interfacesD: [] }, { sourceDir: '/etc/network/interfaces.d' });
    assert.deepEqual(
      files.map((f) => [f.path, f.mode.toString(8)]),
      [
        ['/etc/network/interfaces', '644'],
        ['/etc/network/interfaces.d/lo', '644'],
        ['/etc/network/interfaces.d/eth0_static', '644'],
        ['/etc/network/interfaces.d/eth1_dhcp', '644'],
        ['/etc/network/if-down.d/log-down', '755'],
        ['/etc/network/if-up.d/ibex-dns', '755'],
      ],
    );
    assert.equal(
      files[0]!.content,
      `${HEADER}

${BEGIN_MARK}
source /etc/network/interfaces.d/lo
source /etc/network/interfaces.d/eth0_static
source /etc/network/interfaces.d/eth1_dhcp
# managed hook: /etc/network/if-down.d/log-down
# managed hook: /etc/network/if-up.d/ibex-dns
${END_MARK}
`,
    );
    assert.equal(files[1]!.content, `${HEADER}\nauto lo\niface lo inet loopback\n`);
    assert.equal(
      files[2]!.content,
      `${HEADER}
auto eth0_static
iface eth0_static inet static
\tpre-up [ -e /sys/class/net/eth0_static ] || ip link set dev eth0 name eth0_static
\taddress 192.168.1.100
\tnetmask 255.255.255.0
\tgateway 192.168.1.1
\tdns-nameservers 8.8.8.8 8.8.4.4
\tup ip route add 192.168.2.0/24 via 192.168.1.1 dev eth0_static
\tpre-down ip route del 192.168.2.0/24 via 192.168.1.1 dev eth0_static 2>/dev/null || true
`,
    );
    assert.equal(files[3]!.content, `${HEADER}\nauto eth1_dhcp\niface eth1_dhcp inet dhcp\n\tpre-up [ -e /sys/class/net/eth1_dhcp ] || ip link set dev eth1 name eth1_dhcp\n`);
    assert.equal(files[4]!.content, '#!/bin/sh\nlogger -t ifdown "Bringing down interface: ${IFACE}"\n');
    assert.match(files[5]!.content, /^#!\/bin\/sh\n/);
    assert.match(files[5]!.content, /\nconf='\/etc\/resolv\.conf'\n/);
  });

  it('writes the DNS hook only when an interface has DNS, naming the root\'s resolv.conf (quoted)', () => {
    const noDns = networkSectionSchema.parse({ interfaces: [{ name: 'eth0', method: 'dhcp' }] });
    const none = renderNetwork(noDns, { interfacesD: [] }, { sourceDir: '/x' });
    assert.ok(!none.some((f) => f.path === '/etc/network/if-up.d/ibex-dns'));
    assert.ok(!none[0]!.content.includes('ibex-dns'));
    const withDns = networkSectionSchema.parse({ interfaces: [{ name: 'eth0', method: 'dhcp', dns: { search: ['example.lab'] } }] });
    const hook = renderNetwork(withDns, { interfacesD: [] }, { sourceDir: '/x', resolvConf: "/tmp/it's root/etc/resolv.conf" }).find((f) => f.path === '/etc/network/if-up.d/ibex-dns');
    assert.match(hook!.content, /\nconf='\/tmp\/it'\\''s root\/etc\/resolv\.conf'\n/);
  });

  it('is deterministic and writes one address per stanza', () => {
    const spec = networkSectionSchema.parse({
      interfaces: [{ name: 'lan0', match: { mac: '02:00:00:00:00:01' }, method: 'static', addresses: ['fd00::2/64', '10.0.0.2/8', '10.1.0.2/16'], gateway: '10.0.0.1', gateway6: 'fd00::1', mtu: 1400, dns: { search: ['example.lab'] } }],
    });
    const a = renderNetwork(spec, { interfacesD: [] }, { sourceDir: '/x' });
    assert.deepEqual(a, renderNetwork(spec, { interfacesD: [] }, { sourceDir: '/x' }));
    const text = a[1]!.content;
    assert.equal((text.match(/^iface lan0 /gm) ?? []).length, 3);
    assert.equal((text.match(/^\taddress /gm) ?? []).length, 3);
    assert.match(text, /iface lan0 inet static\n\tpre-up .*02:00:00:00:00:01.* name lan0 .*\n\taddress 10\.0\.0\.2\n\tnetmask 255\.0\.0\.0\n\tgateway 10\.0\.0\.1\n\tmtu 1400\n\tdns-search example\.lab\n/);
    assert.match(text, /iface lan0 inet6 static\n\taddress fd00::2\n\tnetmask 64\n\tgateway fd00::1\n/);
  });

  it('adopts a hand-written main file without losing what it does not manage', () => {
    const spec = scenarioSpec();
    const [main] = renderNetwork(spec, { main: handWritten, interfacesD: ['eth0_static', 'vpn0'] }, { sourceDir: '/etc/network/interfaces.d' });
    const text = main!.content;
    for (const kept of ['#!/bin/ash', 'mapping eth*', '    script /usr/local/bin/map-scheme', 'iface wlan0 inet dhcp', '    # a comment inside a stanza', '    hwaddress ether 02:00:00:00:00:09', 'allow-hotplug wlan0 usb0', 'weird-top-level-line here']) {
      assert.ok(text.includes(kept + '\n'), `kept: ${kept}`);
    }
    // The spec takes over lo and eth1_dhcp; source-directory becomes literal sources of the
    // hand-written files (eth0_static is now rendered by the agent, vpn0 is kept).
    assert.ok(!text.includes('iface eth1_dhcp inet dhcp\n\nmapping'));
    assert.ok(!/^auto (lo|eth1_dhcp)$/m.test(text));
    assert.ok(!text.includes('source-directory'));
    assert.ok(text.includes('source /etc/network/interfaces.d/vpn0\n'));
    // Applying again keeps it stable (the managed block is replaced, not duplicated).
    const again = renderNetwork(spec, { main: text, interfacesD: ['eth0_static', 'eth1_dhcp', 'lo', 'vpn0'] }, { sourceDir: '/etc/network/interfaces.d' });
    assert.equal(again[0]!.content, text);
    assert.equal(managedBlockOf(text)?.sources.length, 3);
  });

  it('lists files the previous apply wrote that the spec dropped', () => {
    const old = renderNetwork(scenarioSpec(), { interfacesD: [] }, { sourceDir: '/etc/network/interfaces.d' });
    const spec = networkSectionSchema.parse({ interfaces: [{ name: 'lo', method: 'loopback' }] });
    const next = renderNetwork(spec, { main: old[0]!.content, interfacesD: ['lo', 'eth0_static', 'eth1_dhcp'] }, { sourceDir: '/etc/network/interfaces.d' });
    assert.deepEqual(staleManagedPaths({ main: old[0]!.content, interfacesD: [] }, next), ['/etc/network/if-down.d/log-down', '/etc/network/if-up.d/ibex-dns', '/etc/network/interfaces.d/eth0_static', '/etc/network/interfaces.d/eth1_dhcp']);
  });

  it('never takes a hand-edited managed block\'s foreign paths for files to remove', () => {
    const old = renderNetwork(scenarioSpec(), { interfacesD: [] }, { sourceDir: '/etc/network/interfaces.d' });
    const edited = old[0]!.content.replace(END_MARK, `# managed hook: /etc/passwd\n# managed hook: /etc/network/if-up.d/../../shadow\nsource /etc/network/interfaces.d/..\n${END_MARK}`);
    const spec = networkSectionSchema.parse({ interfaces: [{ name: 'lo', method: 'loopback' }] });
    const next = renderNetwork(spec, { main: edited, interfacesD: ['lo'] }, { sourceDir: '/etc/network/interfaces.d' });
    assert.deepEqual(staleManagedPaths({ main: edited, interfacesD: [] }, next), ['/etc/network/if-down.d/log-down', '/etc/network/if-up.d/ibex-dns', '/etc/network/interfaces.d/eth0_static', '/etc/network/interfaces.d/eth1_dhcp']);
  });
});

function tool(argv: string[]): { code: number | null; out: string } {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8' });
  if (r.error) throw r.error;
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('the real tools accept the rendered files', () => {
  it('ifupdown-ng (ifquery, ifup -n) and BusyBox ifup -n parse the issue scenario and a dual-stack interface', (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'ibex-net-render-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const spec = networkSectionSchema.parse({
      ...scenarioSpec(),
      interfaces: [...scenarioSpec().interfaces, { name: 'lan0', match: { mac: '02:00:00:00:00:01' }, method: 'static', addresses: ['10.0.0.2/8', 'fd00::2/64', '10.1.0.2/16'], gateway6: 'fd00::1', mtu: 1400 }],
    });
    const sourceDir = join(dir, 'interfaces.d');
    mkdirSync(sourceDir);
    const files = renderNetwork(spec, { interfacesD: [] }, { sourceDir });
    for (const f of files) if (!f.path.includes('/if-')) writeFileSync(f.path === '/etc/network/interfaces' ? join(dir, 'interfaces') : join(sourceDir, f.path.split('/').pop()!), f.content);
    const main = join(dir, 'interfaces');

    const addrs = tool(['ifquery', '-i', main, '-S', join(dir, 'state'), '-p', 'address', 'eth0_static']);
    assert.equal(addrs.code, 0, addrs.out);
    assert.equal(addrs.out.trim(), '192.168.1.100/24');
    const lan = tool(['ifquery', '-i', main, '-S', join(dir, 'state'), '-p', 'address', 'lan0']);
    assert.deepEqual(lan.out.trim().split('\n'), ['10.0.0.2/8', '10.1.0.2/16', 'fd00::2/64']);
    const dry = tool(['ifup', '-n', '-a', '-i', main, '-S', join(dir, 'state')]);
    assert.equal(dry.code, 0, dry.out);
    assert.match(dry.out, /ip route add 192\.168\.2\.0\/24 via 192\.168\.1\.1 dev eth0_static/);

    const bb = tool(['busybox', 'ifup', '-n', '-a', '-i', main]);
    assert.equal(bb.code, 0, bb.out);
    const lines = bb.out.split('\n');
    const at = (re: RegExp) => lines.findIndex((l) => re.test(l));
    // BusyBox renames before it configures the interface, then adds the address, gateway and route.
    assert.ok(at(/ip link set dev eth0 name eth0_static/) >= 0 && at(/ip link set dev eth0 name eth0_static/) < at(/ip addr add 192\.168\.1\.100\/24 dev eth0_static/), bb.out);
    assert.ok(at(/ip route add default via 192\.168\.1\.1 dev eth0_static/) >= 0, bb.out);
    assert.ok(at(/ip route add 192\.168\.2\.0\/24 via 192\.168\.1\.1 dev eth0_static/) > at(/ip addr add 192\.168\.1\.100\/24/), bb.out);
    assert.ok(at(/udhcpc .*-i eth1_dhcp/) > at(/ip link set dev eth1 name eth1_dhcp/), bb.out);
    assert.ok(at(/ip addr add 10\.1\.0\.2\/16 dev lan0/) >= 0 && at(/ip addr add fd00::2\/64 dev lan0/) >= 0, bb.out);
    const bbDown = tool(['busybox', 'ifdown', '-n', '-f', '-i', main, 'eth0_static']);
    assert.equal(bbDown.code, 0, bbDown.out);
    assert.match(bbDown.out, /ip route del 192\.168\.2\.0\/24 via 192\.168\.1\.1 dev eth0_static/);
    assert.match(bbDown.out, /run-parts \/etc\/network\/if-down\.d/);
  });

  it('BusyBox refuses what the renderer avoids (so the check above means something)', (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'ibex-net-render-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'cidr'), 'auto eth9\niface eth9 inet static\n\taddress 10.0.0.1/24\n');
    assert.notEqual(tool(['busybox', 'ifup', '-n', '-a', '-i', join(dir, 'cidr')]).code, 0);
    writeFileSync(join(dir, 'glob'), `source ${dir}/nothing/*\n`);
    assert.notEqual(tool(['busybox', 'ifup', '-n', '-a', '-i', join(dir, 'glob')]).code, 0);
  });
});
