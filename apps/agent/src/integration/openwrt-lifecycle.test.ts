import assert from 'node:assert/strict';
import { existsSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ledgerPath } from '../capabilities/openwrt/ledger.js';
import { derivedMac } from '../capabilities/openwrt/openwrt-plan.js';
import { expectedConfig, names, openwrtWorld, parsed, ping } from '../testing/openwrt-world.js';

/**
 * The openwrt capability over time, as root (the world of openwrt-world.ts): the container
 * restarts or goes away, links are given back, drift inside the container is repaired.
 */

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
