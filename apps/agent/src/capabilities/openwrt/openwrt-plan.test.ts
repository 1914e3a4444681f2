import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { openwrtExample, openwrtSectionSchema } from '@ibex/spec';
import type { RunningContainer } from './container.js';
import { emptyLedger } from './ledger.js';
import { type LiveLink, type OpenwrtActual, type OpenwrtStep, derivedMac, inverseOf, planOpenwrt, summarizeOpenwrtStep, tmpName } from './openwrt-plan.js';

/** The planner is pure: these tests hand it an actual state and read the steps. */

const running: RunningContainer = {
  running: true,
  label: 'docker container openwrt (pid 4242)',
  nsPath: '/proc/4242/ns/net',
  netns: 'net:[4026532777]',
  nsId: 'net:[4026532777]@4242.81234',
  target: { pid: 4242 },
  exec: { prefix: ['docker', 'exec', '-i', 'openwrt'] },
};
const link = (name: string, extra: Partial<LiveLink> = {}): LiveLink => ({ name, ifindex: 10, up: true, addresses: [], ...extra });

function actual(extra: Partial<OpenwrtActual> = {}): OpenwrtActual {
  return {
    container: running,
    agentNsId: 'net:[4026531840]',
    host: [link('enp2s0', { ifindex: 2, mac: '00:e0:4c:68:00:01' }), link('wan9', { ifindex: 3, mac: '00:e0:4c:68:00:02', up: false })],
    hostRoutes: [],
    inside: [link('lo', { ifindex: 1 })],
    hostPhys: [{ phy: 'phy0', mac: '00:c0:ca:12:34:56', netdevs: ['wlp3s0'] }],
    insidePhys: [],
    ledger: emptyLedger(),
    handle: { path: '/run/netns/openwrt', state: 'absent' },
    uci: { packages: { network: null, wireless: null, dhcp: null, firewall: null } },
    ...extra,
  };
}
const spec = () => openwrtSectionSchema.parse(openwrtExample);
const actions = (steps: OpenwrtStep[]) => steps.map((s) => s.action);

describe('openwrt planner', () => {
  it('wires a fresh container in order: links, shim, radio, handle, then the UCI packages (created: they do not exist yet)', () => {
    const steps = planOpenwrt(spec(), actual());
    assert.deepEqual(actions(steps), ['create-child', 'create-shim', 'shim-config', 'move-port', 'move-phy', 'link-handle', 'uci-apply']);
    const child = steps[0] as Extract<OpenwrtStep, { action: 'create-child' }>;
    assert.deepEqual([child.parent, child.mac, child.tmp, child.name], ['enp2s0', '02:42:c0:a8:0a:01', tmpName(running.nsId, 'eth0'), 'eth0']);
    const uci = steps.at(-1) as Extract<OpenwrtStep, { action: 'uci-apply' }>;
    assert.deepEqual(uci.packages.map((p) => [p.name, p.create]), [
      ['network', true],
      ['wireless', true],
      ['dhcp', true],
      ['firewall', true],
    ]);
    assert.match(uci.packages[1]!.after, /option phy 'phy0'\n\toption macaddr '00:c0:ca:12:34:56'/);
    // The network reload comes first: the links it names are new.
    assert.deepEqual(uci.reloads.map((r) => r.slice(4).join(' ')), ['/etc/init.d/network reload', '/sbin/wifi reload', '/etc/init.d/dnsmasq reload', '/etc/init.d/firewall reload']);
    assert.deepEqual(summarizeOpenwrtStep(steps[4]!).commands, [['iw', 'phy', 'phy0', 'set', 'netns', '4242']]);
  });

  it('refuses, changing nothing, when the container is not there or cannot be told; cleans up only when it is certainly gone', () => {
    const gone = { running: false, certain: true, label: 'docker container openwrt', reason: 'docker container openwrt is not running' } as const;
    const unknown = { running: false, certain: false, label: 'docker container openwrt', reason: 'docker inspect openwrt failed (exit 1): Cannot connect to the Docker daemon' } as const;
    const owned = { ...emptyLedger(), shims: ['owrt-shim'], handle: { path: '/run/netns/openwrt', target: '/proc/1/ns/net' } };
    assert.deepEqual(planOpenwrt(spec(), actual({ container: gone })), [{ action: 'refuse', reason: 'docker container openwrt is not running; the agent wires it again when it runs (at the next drift check)' }]);
    assert.deepEqual(actions(planOpenwrt(spec(), actual({ container: gone, ledger: owned }))), ['cleanup-gone']);
    assert.deepEqual(actions(planOpenwrt(spec(), actual({ container: unknown, ledger: owned }))), ['refuse'], 'no cleanup on a guess');
    const shared = planOpenwrt(spec(), actual({ container: { ...running, netns: 'net:[4026531840]' } }));
    assert.match((shared[0] as { reason: string }).reason, /shares the agent's network namespace/);
  });

  it('refuses a handle that is not the agent\'s, and a UCI config it cannot read, naming the field', () => {
    const h = planOpenwrt(spec(), actual({ handle: { path: '/run/netns/openwrt', state: 'other' } }));
    assert.deepEqual(actions(h), ['refuse']);
    assert.match((h[0] as { reason: string }).reason, /^netnsName: \/run\/netns\/openwrt exists and is not the agent's/);
    const u = planOpenwrt(spec(), actual({ uci: { packages: {}, error: 'docker exec -i openwrt /sbin/uci export network exited 126: executable file not found' } }));
    assert.match((u[0] as { reason: string }).reason, /^config: reading the container's UCI configuration failed: .*executable file not found.*is it OpenWrt/);
  });

  it('leaves alone what is in place, and returns or deletes, first, what the spec no longer has', () => {
    const s = openwrtSectionSchema.parse({ ...openwrtExample, links: [openwrtExample.links[0]], config: undefined, netnsName: undefined });
    const ns = running.nsId;
    const a = actual({
      host: [link('enp2s0', { ifindex: 2 }), link('owrt-shim', { kind: 'macvlan', parent: 'enp2s0', mode: 'bridge', addresses: ['192.168.10.2/24'] }), link('old-shim', { kind: 'macvlan', parent: 'enp2s0', mode: 'bridge' })],
      inside: [link('lo'), link('eth0', { kind: 'macvlan', mode: 'bridge', mac: '02:42:c0:a8:0a:01', parentIndex: 2 }), link('eth1', { mac: '00:e0:4c:68:00:02' })],
      ledger: {
        links: [
          { name: 'eth0', type: 'macvlan', nsId: ns, mac: '02:42:c0:a8:0a:01', parent: 'enp2s0', mode: 'bridge' },
          { name: 'eth1', type: 'port', nsId: ns, hostName: 'enp3s0', mac: '00:e0:4c:68:00:02' },
        ],
        phys: [],
        shims: ['owrt-shim', 'old-shim'],
        handle: { path: '/run/netns/openwrt', target: '/proc/4242/ns/net' },
      },
      handle: undefined,
    });
    const steps = planOpenwrt(s, a);
    assert.deepEqual(
      steps.map((x) => summarizeOpenwrtStep(x).text),
      ['return eth1 from docker container openwrt (pid 4242) to the host as enp3s0', 'delete host link old-shim (no longer in the spec)', 'remove /run/netns/openwrt'],
    );
    // Each removal carries its undo: the port goes back in, the shim is made again.
    assert.deepEqual(actions(inverseOf(steps[0]!)), ['move-port']);
    assert.deepEqual(actions(inverseOf(steps[1]!)), ['create-shim', 'shim-config']);
    assert.deepEqual(actions(inverseOf(steps[2]!)), ['link-handle']);
  });

  it('derives a stable locally administered MAC per container and link', () => {
    const c = { runtime: 'docker', name: 'openwrt' } as const;
    assert.equal(derivedMac(c, 'eth0'), derivedMac(c, 'eth0'));
    assert.notEqual(derivedMac(c, 'eth0'), derivedMac(c, 'eth2'));
    assert.notEqual(derivedMac(c, 'eth0'), derivedMac({ runtime: 'podman', name: 'openwrt' }, 'eth0'));
    assert.match(derivedMac(c, 'eth0'), /^02(:[0-9a-f]{2}){5}$/);
  });
});
