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
    assert.equal(plan.code, 0, plan.stdout + plan.stderr);
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

describe('openwrt capability: the container restarts, goes away, links come and go', () => {
  it('a restarted container (new pid, new namespace) is wired again: the shim is kept, the links and the handle follow the new namespace', async (t) => {
    const w = await openwrtWorld(t);
    const spec = w.spec();
    assert.equal((await w.agent('apply', spec)).code, 0);
    const shimIndex = w.hostLinks().find((l) => l.ifname === 'owshim')!.ifindex;
    const oldPid = w.owrt.pid;
    const oldInstance = w.owrt.instance();

    await w.owrt.stop();
    // Its namespace went with it, and the links in it: the macvlan, and the port (a test veth dies
    // with its peer; a real NIC comes back to the host under its container name: plug one like that).
    w.dev.addLink('eth1', 'p1b', w.wanMac);
    await w.owrt.start();
    w.writePid();
    assert.notEqual(w.owrt.pid, oldPid);
    // (The new namespace may even get the old one's inode number back: the agent tells them apart by pid and start time.)
    assert.notEqual(w.owrt.instance(), oldInstance);

    const plan = await w.agent('plan', spec);
    assert.match(plan.stdout, /forget eth0, eth1: process \(pid \d+\) no longer has them/);
    assert.match(plan.stdout, new RegExp(`move host port eth1 \\(${w.wanMac}\\) into process \\(pid ${w.owrt.pid}\\) as eth1`));
    assert.match(plan.stdout, /reload the network in process \(pid \d+\) \(it has new links\)/);
    assert.doesNotMatch(plan.stdout, /owshim/, 'the shim stays as it is');

    const apply = await w.agent('apply', spec);
    assert.equal(apply.code, 0, apply.stdout + apply.stderr);
    assert.deepEqual(names(w.owrt.links()), ['br-lan', 'eth0', 'eth1', 'lo']);
    assert.equal(w.hostLinks().find((l) => l.ifname === 'owshim')?.ifindex, shimIndex, 'the same shim');
    assert.equal(readlinkSync(join(w.dev.root, 'run/netns', w.handle)), `/proc/${w.owrt.pid}/ns/net`);
    const ledger = JSON.parse(readFileSync(ledgerPath(w.dev.root), 'utf8'));
    assert.deepEqual([...new Set(ledger.links.map((l: { nsId: string }) => l.nsId))], [w.owrt.instance()]);
    // The UCI config survived the restart (it is on the container's disk): only the network was reloaded.
    assert.equal(w.owrt.reloads().at(-1), 'network reload');
    const p = ping(w.dev, '192.168.77.1');
    assert.equal(p.code, 0, p.stdout + p.stderr);
  });

  it('links removed from the spec go back (a port returns under its host name and MAC) or are deleted, and teardown leaves the host as it was', async (t) => {
    const w = await openwrtWorld(t);
    const before = w.hostSnapshot();
    assert.equal((await w.agent('apply', w.spec())).code, 0);
    assert.notDeepEqual(w.hostSnapshot(), before);

    // Only the macvlan stays: the port comes back.
    const lanOnly = w.spec({ links: [(w.spec().links as unknown[])[0]], config: { lan: { devices: ['eth0'], address: '192.168.77.1/24' } } });
    const r1 = await w.agent('apply', lanOnly);
    assert.equal(r1.code, 0, r1.stdout + r1.stderr);
    assert.match(r1.stdout, /return eth1 from process \(pid \d+\) to the host as wan0/);
    assert.equal(w.hostLinks().find((l) => l.ifname === 'wan0')?.address, w.wanMac);
    assert.deepEqual(names(w.owrt.links()), ['br-lan', 'eth0', 'lo']);

    // Nothing: everything the agent made goes; the container keeps its (last) UCI config.
    const r2 = await w.agent('apply', { container: { runtime: 'process', pidFile: '/run/openwrt.pid' }, links: [] });
    assert.equal(r2.code, 0, r2.stdout + r2.stderr);
    assert.match(r2.stdout, /delete macvlan eth0 in process/);
    assert.match(r2.stdout, /delete host link owshim \(no longer in the spec\)/);
    assert.match(r2.stdout, new RegExp(`remove /run/netns/${w.handle}`));
    assert.deepEqual(w.hostSnapshot(), before, 'the host is as it was');
    assert.ok(!existsSync(join(w.dev.root, 'run/netns', w.handle)));
    assert.deepEqual(JSON.parse(readFileSync(ledgerPath(w.dev.root), 'utf8')), { links: [], phys: [], shims: [] });
    assert.deepEqual(names(w.owrt.links()), ['br-lan', 'lo']);
  });

  it('when the container is gone its host side (shim, netns handle) is removed and the section reports why', async (t) => {
    const w = await openwrtWorld(t);
    assert.equal((await w.agent('apply', w.spec())).code, 0);
    const pid = w.owrt.pid;
    await w.owrt.stop();
    const r = await w.agent('apply', w.spec());
    assert.equal(r.code, 1);
    assert.match(r.stdout, new RegExp(`process: process ${pid} does not exist: its host side was cleaned up; the agent wires it again when it runs`));
    assert.ok(!w.hostLinks().some((l) => l.ifname === 'owshim'), 'the shim is gone');
    assert.ok(!existsSync(join(w.dev.root, 'run/netns', w.handle)), 'the handle is gone');
    assert.deepEqual(JSON.parse(readFileSync(ledgerPath(w.dev.root), 'utf8')), { links: [], phys: [], shims: [] });
    // Still gone: nothing left to clean, it says so and changes nothing.
    const again = await w.agent('apply', w.spec());
    assert.equal(again.code, 1);
    assert.match(again.stdout, new RegExp(`process ${pid} does not exist; the agent wires it again when it runs`));
  });

  it('a veth link: the host end is the shim, and it reaches OpenWrt', async (t) => {
    const w = await openwrtWorld(t);
    const spec = w.spec({ links: [{ type: 'veth', name: 'eth0', host: { name: 'owveth', addresses: ['192.168.78.2/24'] } }], config: { lan: { devices: ['eth0'], address: '192.168.78.1/24' } } });
    const r = await w.agent('apply', spec);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(w.hostLinks().find((l) => l.ifname === 'owveth')?.linkinfo?.info_kind, 'veth');
    assert.equal(w.owrt.links().find((l) => l.ifname === 'eth0')?.address, derivedMac(parsed(spec).container, 'eth0'));
    const p = ping(w.dev, '192.168.78.1');
    assert.equal(p.code, 0, p.stdout + p.stderr);
    assert.equal((await w.agent('apply', spec)).stdout.trim(), 'openwrt: in sync, nothing to do');
  });

  it('drift inside the container (a hand edit with uci) is found by plan and repaired by apply with a uci batch', async (t) => {
    const w = await openwrtWorld(t);
    const spec = w.spec();
    assert.equal((await w.agent('apply', spec)).code, 0);
    w.owrt.exec(['/sbin/uci', 'set', 'network.lan.ipaddr=10.9.9.9'], true);
    w.owrt.exec(['/sbin/uci', 'commit', 'network']);
    const plan = await w.agent('plan', spec, {}, ['--json']);
    const steps = (JSON.parse(plan.stdout) as { sections: Array<{ steps: Array<{ action: string; batch?: string[] }> }> }).sections[0]!.steps;
    assert.deepEqual(steps.map((s) => s.action), ['uci-apply']);
    assert.deepEqual(steps[0]!.batch, ["set network.lan.ipaddr='192.168.77.1'"]);
    assert.equal((await w.agent('apply', spec)).code, 0);
    assert.equal(w.owrt.config('network'), expectedConfig(spec, 'network'));
  });
});
