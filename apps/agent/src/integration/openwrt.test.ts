import assert from 'node:assert/strict';
import { existsSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ledgerPath } from '../capabilities/openwrt/ledger.js';
import { derivedMac } from '../capabilities/openwrt/openwrt-plan.js';
import { expectedConfig, names, openwrtWorld, parsed, ping } from '../testing/openwrt-world.js';

/**
 * The openwrt capability with real namespaces, as root. The "host" is a NetnsDevice namespace
 * (the agent runs there, against a scratch root); the "container" is StandinOpenwrt: a process
 * in its own network/mount namespaces, chrooted into a BusyBox filesystem whose /sbin/uci and
 * init scripts are test stand-ins (OpenWrt's uci does not exist on Debian). Ports are veth ends
 * whose peers sit in the device's peer namespace; the LAN parent is such a veth.
 */

describe('openwrt capability: a stand-in container in network namespaces', () => {
  it('plans, then wires the container (macvlan + shim, a port moved in), applies the UCI config inside, and the shim reaches OpenWrt; again is a no-op', async (t) => {
    const w = await openwrtWorld(t);
    const spec = w.spec();
    const before = { host: names(w.hostLinks()), network: w.owrt.config('network') };

    const plan = await w.agent('plan', spec);
    assert.equal(plan.code, 2, 'plan exits 2 when there are changes to make\n' + plan.stdout + plan.stderr);
    assert.match(plan.stdout, /openwrt: \d+ step\(s\) to run/);
    assert.match(plan.stdout, /create a macvlan \(mode bridge\) on lan0 with MAC 02:[0-9a-f:]+ as eth0 in process \(pid \d+\)/);
    assert.match(plan.stdout, new RegExp(`move host port wan0 \\(${w.wanMac}\\) into process \\(pid ${w.owrt.pid}\\) as eth1`));
    assert.match(plan.stdout, /\$ ip link add link lan0 name ibx[0-9a-f]{10} address 02:[0-9a-f:]+ type macvlan mode bridge/);
    assert.match(plan.stdout, new RegExp(`\\$ nsenter -t ${w.owrt.pid} -m -u -i -n -p -r -w -- /sbin/uci batch`));
    assert.match(plan.stdout, /\+\s+option ipaddr '192\.168\.77\.1'/);
    assert.match(plan.stdout, /-\s+option ipaddr '192\.168\.1\.1'/);
    assert.deepEqual(names(w.hostLinks()), before.host, 'plan changed nothing on the host');
    assert.equal(w.owrt.config('network'), before.network, 'plan changed nothing in the container');

    const apply = await w.agent('apply', spec);
    assert.equal(apply.code, 0, apply.stdout + apply.stderr);
    assert.match(apply.stdout, /openwrt: in sync \(\d+ step\(s\) applied\)/);

    // The container has its links: the macvlan with the derived MAC, the port with its MAC.
    const inside = w.owrt.links();
    const eth0 = inside.find((l) => l.ifname === 'eth0')!;
    assert.equal(eth0.linkinfo?.info_kind, 'macvlan');
    assert.equal(eth0.address, derivedMac(parsed(spec).container, 'eth0'));
    assert.equal(inside.find((l) => l.ifname === 'eth1')?.address, w.wanMac);
    // The host: the port is gone, the shim is there with its address.
    const host = w.hostLinks();
    assert.ok(!host.some((l) => l.ifname === 'wan0' || l.address === w.wanMac), 'the port left the host');
    const shim = host.find((l) => l.ifname === 'owshim')!;
    assert.equal(shim.linkinfo?.info_kind, 'macvlan');
    assert.ok(shim.addr_info.some((a) => a.local === '192.168.77.2' && a.prefixlen === 24));
    // UCI inside: exactly the rendered packages, committed; the services were reloaded.
    for (const name of ['network', 'dhcp', 'firewall']) assert.equal(w.owrt.config(name), expectedConfig(spec, name), name);
    assert.ok(!existsSync(join(w.owrt.rootfs, 'tmp/.uci/network')), 'nothing left staged');
    assert.deepEqual(w.owrt.reloads(), ['network reload', 'dnsmasq reload', 'firewall reload']);
    // The stand-in netifd brought up br-lan with eth0 and the LAN address: the host reaches it through the shim.
    assert.ok(w.owrt.links().find((l) => l.ifname === 'br-lan')?.addr_info.some((a) => a.local === '192.168.77.1'));
    const p = ping(w.dev, '192.168.77.1');
    assert.equal(p.code, 0, `ping from the host through the shim: ${p.stdout}${p.stderr}`);
    const back = w.owrt.exec(['/bin/ping', '-c', '1', '-W', '3', '192.168.77.2'], false);
    assert.equal(back.code, 0, `ping from OpenWrt to the shim: ${back.stdout}${back.stderr}`);
    // The netns handle, and the ledger of what the agent owns.
    assert.equal(readlinkSync(join(w.dev.root, 'run/netns', w.handle)), `/proc/${w.owrt.pid}/ns/net`);
    const ledger = JSON.parse(readFileSync(ledgerPath(w.dev.root), 'utf8'));
    const instance = w.owrt.instance();
    assert.deepEqual(ledger.links.map((l: { name: string; type: string; nsId: string }) => [l.name, l.type, l.nsId]), [
      ['eth0', 'macvlan', instance],
      ['eth1', 'port', instance],
    ]);
    assert.deepEqual(ledger.shims, ['owshim']);

    // Again: nothing to do, nothing reloaded.
    const again = await w.agent('apply', spec, {}, ['--json']);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual((JSON.parse(again.stdout) as { sections: Array<{ state: string; steps: unknown[] }> }).sections.map((s) => [s.state, s.steps.length]), [['in_sync', 0]]);
    assert.equal(w.owrt.reloads().length, 3);
  });
});
