import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { runAgent } from '../testing/agent-process.js';
import { PrivateMountNamespace } from '../testing/mount-namespace.js';
import { NetnsDevice } from '../testing/netns-device.js';
import { scenarioDesiredState } from '../testing/network-scenario.js';

/**
 * Issue 16: the seed scenario (../shared/seeds, Alpine networking: renames, static + DHCP, a
 * route, a down hook, DNS) applied the way the agent meets a container or a VM host. The agent
 * (the single executable when IBEX_AGENT_BIN names it) runs under `ip netns exec` in a fresh
 * namespace (its `lo` is down), the root's /etc/network/interfaces is Alpine's stock one (lo
 * already configured, so its stanza does not change), and the root's /etc/resolv.conf is a bind
 * mount, as in Docker, LXC and `ip netns exec` itself: inside a private mount namespace (never
 * the host's mounts) a file outside the root is bind-mounted over it, then `ip netns exec`
 * runs the agent from there.
 */

const scenario = scenarioDesiredState;

const RUNTIME_RESOLV = '# written by the container runtime\nnameserver 10.0.0.53\n';

function containerHost(t: { after: (fn: () => void) => void }) {
  const dev = NetnsDevice.create();
  let ns: PrivateMountNamespace | undefined;
  t.after(() => {
    ns?.destroy();
    dev.destroy();
  });
  ns = PrivateMountNamespace.create();
  mkdirSync(join(dev.root, 'var/log'), { recursive: true });
  writeFileSync(join(dev.root, 'etc/network/interfaces'), 'auto lo\niface lo inet loopback\n');
  const resolvSource = join(ns.dir, 'resolv.conf');
  writeFileSync(resolvSource, RUNTIME_RESOLV, { mode: 0o644 });
  ns.bind(resolvSource, join(dev.root, 'etc/resolv.conf'));
  const agent = (args: string[]) => runAgent([...args, '--root', dev.root, '--data-dir', dev.dataDir], {}, 120_000, [...ns!.prefix, ...dev.prefix]);
  const spec = (name: string, s: unknown) => {
    const f = join(dev.root, `${name}.json`);
    writeFileSync(f, JSON.stringify(s));
    return f;
  };
  return { dev, ns, resolvSource, agent, spec };
}

describe('network on a container-like host (ip netns exec, bind-mounted resolv.conf)', () => {
  it('applies the seed scenario in a fresh namespace: lo (down, its config unchanged) is brought up, DNS lands in the bind-mounted resolv.conf, and the plan after it is empty', async (t) => {
    const h = containerHost(t);
    await h.dev.holdName('eth1_dhcp');
    h.dev.addLink('eth0', 'p0');
    h.dev.addLink('eth1', 'p1');
    h.dev.startDhcpServer('p1', '192.168.50.1', '192.168.50.100', '192.168.50.150');
    assert.ok(!h.dev.addrs().find((l) => l.ifname === 'lo')!.flags.includes('UP'), 'a fresh namespace has lo down');
    const f = h.spec('scenario', scenario(join(h.dev.root, 'var/log/network.log')));

    const apply = await h.agent(['apply', '--spec', f]);
    assert.equal(apply.code, 0, apply.stdout + apply.stderr);
    assert.match(apply.stdout, /network: in sync \(\d+ step\(s\) applied\)/);
    assert.ok(h.dev.addrs().find((l) => l.ifname === 'lo')!.flags.includes('UP'), 'lo is up');
    assert.deepEqual(h.dev.ipv4Of('eth0_static'), ['192.168.1.100/24']);
    // Written through the bind mount, in place: the DNS hook first, then udhcpc's default script
    // (with what the DHCP server sent: no DNS here), which is why with DHCP verify reads the hook's stamp instead.
    assert.notEqual(readFileSync(h.resolvSource, 'utf8'), RUNTIME_RESOLV);
    // What resolv.conf held right after the DNS hook wrote it (the hook's stamp, which verify checks).
    assert.match(readFileSync(join(h.dev.root, 'run/ibex-dns/eth0_static'), 'utf8'), /^# Written by ibex-agent .*\nnameserver 8\.8\.8\.8\nnameserver 8\.8\.4\.4\n$/);

    const plan = await h.agent(['plan', '--spec', f]);
    assert.equal(plan.code, 0, `apply, then plan is empty:\n${plan.stdout}${plan.stderr}`);
  });

  it('reverts a failing change with resolv.conf bind-mounted: the old bytes go back in place, nothing is left half applied', async (t) => {
    const h = containerHost(t);
    h.dev.addLink('eth0', 'p0');
    const iface = { name: 'eth0_static', match: { name: 'eth0' }, method: 'static', addresses: ['192.168.1.100/24'], dns: { servers: ['192.0.2.53'], search: ['example.net'] } };
    const good = h.spec('good', { network: { interfaces: [{ name: 'lo', method: 'loopback' }, iface] } });
    const first = await h.agent(['apply', '--spec', good]);
    assert.equal(first.code, 0, first.stdout + first.stderr);
    const applied = readFileSync(h.resolvSource, 'utf8');
    assert.match(applied, /\nsearch example\.net\nnameserver 192\.0\.2\.53\n$/);

    // New DNS, and a hook that takes the address away: the DNS hook rewrites resolv.conf, then verify fails.
    const bad = h.spec('bad', {
      network: {
        interfaces: [{ name: 'lo', method: 'loopback' }, { ...iface, addresses: ['192.168.1.101/24'], dns: { servers: ['198.51.100.53'], search: [] } }],
        hooks: [{ phase: 'up', name: 'flush', content: '#!/bin/sh\n[ "$IFACE" = lo ] || ip addr flush dev "$IFACE"\n' }],
      },
    });
    const r = await h.agent(['apply', '--spec', bad, '--json']);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    const sec = JSON.parse(r.stdout).sections.find((s: { section: string }) => s.section === 'network');
    assert.equal(sec.state, 'reverted', sec.error);
    assert.doesNotMatch(sec.error, /EBUSY|half applied|reverting failed/);
    assert.equal(readFileSync(h.resolvSource, 'utf8'), applied, 'the previous resolv.conf is back, written in place');
    assert.ok(!readFileSync(join(h.dev.root, 'etc/network/interfaces'), 'utf8').includes('flush'));
    const plan = await h.agent(['plan', '--spec', good]);
    assert.equal(plan.code, 0, `the previous state holds:\n${plan.stdout}${plan.stderr}`);
  });
});
