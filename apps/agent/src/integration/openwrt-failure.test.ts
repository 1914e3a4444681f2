import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ledgerPath } from '../capabilities/openwrt/ledger.js';
import { sh } from '../testing/netns-device.js';
import { names, openwrtWorld, ping } from '../testing/openwrt-world.js';

/**
 * The openwrt capability when things go wrong, as root (the world of openwrt-world.ts): what
 * cannot be done is refused before anything changes; a failure half way, or an agent killed
 * half way, is undone from the journaled undo steps: the host and the container are as before.
 */

const emptyLedger = { links: [], phys: [], shims: [] };

describe('openwrt capability: refusals, failures half way, crashes', () => {
  it('refuses what cannot be done (a port that is not there, a name the container already uses) and changes nothing', async (t) => {
    const w = await openwrtWorld(t);
    const host = w.hostSnapshot();
    const uci = w.uciSnapshot();
    const missing = await w.agent('apply', w.spec({ links: [...(w.spec().links as unknown[]), { type: 'port', name: 'eth2', match: { mac: '02:00:00:00:99:99' } }] }));
    assert.equal(missing.code, 1);
    assert.match(missing.stdout, /links\[2\]: no host interface with MAC 02:00:00:00:99:99 to move into process \(pid \d+\) \(and none inside it named eth2\); nothing was changed/);
    // An interface the agent did not put there, under a name the spec wants.
    w.owrt.inNetns(['ip', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'other0']);
    const taken = await w.agent('apply', w.spec());
    assert.equal(taken.code, 1);
    assert.match(taken.stdout, /links\[0\]: the container already has an interface eth0 that the agent did not put there; rename it in the container or choose another name; nothing was changed/);
    assert.deepEqual(w.hostSnapshot(), host);
    assert.deepEqual(w.uciSnapshot(), uci);
    assert.deepEqual(names(w.owrt.links()), ['eth0', 'lo', 'other0']);
    assert.equal(w.owrt.reloads().length, 0);
  });

  it('a reload that fails after the host side was wired and the UCI committed is undone: links, shim, handle and the old UCI config come back', async (t) => {
    const w = await openwrtWorld(t);
    const host = w.hostSnapshot();
    const uci = w.uciSnapshot();
    w.owrt.failing('firewall', 'once');
    const r = await w.agent('apply', w.spec());
    assert.equal(r.code, 1);
    assert.match(r.stdout, /openwrt: reverted: step \d+ of \d+ \(change network .*\) failed: reloading \(\/etc\/init\.d\/firewall reload\) in process \(pid \d+\) failed .*standin: firewall reload fails on purpose.*; the previous state was restored/);
    assert.deepEqual(w.hostSnapshot(), host, 'the host is as before: the port is back as wan0, the shim is gone');
    assert.deepEqual(w.uciSnapshot(), uci, 'the container has its old UCI config');
    assert.deepEqual(names(w.owrt.links()), ['br-lan', 'lo'], 'the links are out of the container (br-lan is the stand-in netifd\'s, from the first reload)');
    assert.ok(!existsSync(join(w.dev.root, 'run/netns', w.handle)));
    assert.deepEqual(JSON.parse(readFileSync(ledgerPath(w.dev.root), 'utf8')), emptyLedger);
    // The restore reloaded what it put back.
    assert.deepEqual(w.owrt.reloads(), ['network reload', 'dnsmasq reload', 'firewall reload', 'network reload', 'dnsmasq reload', 'firewall reload']);

    // The reload works again: the same spec applies.
    const ok = await w.agent('apply', w.spec());
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
  });

  it('an agent killed after wiring the host side, before the UCI change, undoes it at its next start', async (t) => {
    const w = await openwrtWorld(t);
    const host = w.hostSnapshot();
    const uci = w.uciSnapshot();
    const killed = await w.agent('apply', w.spec(), { IBEX_AGENT_FAILPOINTS: 'openwrt-before-uci' });
    assert.equal(killed.code, null, `killed by its failpoint: ${killed.stderr}`);
    assert.ok(existsSync(join(w.dev.root, 'var/lib/ibex-agent/intents/openwrt.json')), 'the intent is on disk');
    assert.ok(w.hostLinks().some((l) => l.ifname === 'owshim'), 'half done: the shim exists');
    assert.deepEqual(names(w.owrt.links()), ['eth0', 'eth1', 'lo'], 'half done: the links are in the container');

    // The next start (here: a local apply of another section) reverts before anything else.
    const next = await w.agent('apply', undefined);
    assert.equal(next.code, 0, next.stdout + next.stderr);
    assert.match(next.stderr, /reverting an apply that was interrupted.*section=openwrt/);
    assert.deepEqual(w.hostSnapshot(), host);
    assert.deepEqual(w.uciSnapshot(), uci);
    assert.deepEqual(names(w.owrt.links()), ['lo']);
    assert.ok(!existsSync(join(w.dev.root, 'var/lib/ibex-agent/intents/openwrt.json')));
    assert.deepEqual(JSON.parse(readFileSync(ledgerPath(w.dev.root), 'utf8')), emptyLedger);
  });

  it('ipvlan: created and reachable through its shim where the kernel has it, refused clearly and undone where it does not', async (t) => {
    const w = await openwrtWorld(t);
    const probe = sh([...w.dev.prefix, 'ip', 'link', 'add', 'link', 'lan0', 'name', 'ibxprobe', 'type', 'ipvlan', 'mode', 'l2'], false);
    const supported = probe.code === 0;
    if (supported) sh([...w.dev.prefix, 'ip', 'link', 'del', 'ibxprobe']);
    const host = w.hostSnapshot();
    const spec = w.spec({
      // The port first: where ipvlan is missing, its move is what the failure must undo.
      links: [...(w.spec().links as unknown[]).slice(1), { type: 'ipvlan', name: 'eth0', parent: { name: 'lan0' }, shim: { name: 'owipv', addresses: ['192.168.79.2/24'] } }],
      config: { lan: { devices: ['eth0'], address: '192.168.79.1/24' } },
    });
    const r = await w.agent('apply', spec);
    if (supported) {
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.equal(w.owrt.links().find((l) => l.ifname === 'eth0')?.linkinfo?.info_kind, 'ipvlan');
      const p = ping(w.dev, '192.168.79.1');
      assert.equal(p.code, 0, p.stdout + p.stderr);
    } else {
      assert.match(probe.stderr, /Unknown device type/);
      assert.equal(r.code, 1);
      assert.match(r.stdout, /this kernel has no ipvlan support \(ip link add \.\.\. type ipvlan: Error: Unknown device type\.\); load its module \(modprobe ipvlan\) or use another kind of link \(macvlan, veth\); the previous state was restored/);
      // The port moved first is back; no temporary link is left.
      assert.deepEqual(w.hostSnapshot(), host);
      assert.deepEqual(names(w.owrt.links()), ['lo']);
    }
  });
});
