import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type NetworkSection, networkSectionSchema } from '@ibex/spec';
import { type LiveLink, type LiveRoute, type NetworkActual, type NetworkStep, planNetwork, summarizeNetworkStep } from './network-plan.js';
import { parseInterfaces } from './parse.js';
import { INTERFACES, renderNetwork } from './render.js';
import { scenarioSpec } from '../../testing/network-scenario.js';

const paths = {
  interfaces: '/r/etc/network/interfaces',
  interfacesD: '/r/etc/network/interfaces.d',
  stateFile: '/r/run/ifstate',
  staging: '/d/backup/network/staged',
  host: (p: string) => `/r${p}`,
};

const linksUp: LiveLink[] = [
  { name: 'lo', up: true, addresses: ['127.0.0.1/8'] },
  { name: 'eth0_static', up: true, addresses: ['192.168.1.100/24'] },
  { name: 'eth1_dhcp', up: true, addresses: ['192.168.50.101/24'] },
];
const routesUp: LiveRoute[] = [
  { dst: 'default', gateway: '192.168.1.1', dev: 'eth0_static', metric: 1 },
  { dst: '192.168.2.0/24', gateway: '192.168.1.1', dev: 'eth0_static' },
];

/** The device as it is once `applied` was applied: its files on disk and its live state. */
function actualAfter(applied: NetworkSection | undefined, links: LiveLink[], routes: LiveRoute[]): NetworkActual {
  const files: NetworkActual['files'] = {};
  const rendered = applied ? renderNetwork(applied, { interfacesD: [] }, { sourceDir: paths.interfacesD, resolvConf: paths.host('/etc/resolv.conf'), dnsStampDir: paths.host('/run/ibex-dns') }) : [];
  for (const f of rendered) files[f.path] = { content: f.content, mode: f.mode };
  const main = files[INTERFACES]?.content;
  return {
    paths,
    existing: { main, interfacesD: rendered.filter((f) => f.path.includes('/interfaces.d/')).map((f) => f.path.split('/').pop()!) },
    files,
    current: rendered.filter((f) => !f.path.includes('/if-')).map((f) => parseInterfaces(f.content)),
    links,
    routes,
    busybox: true,
  };
}

const brief = (steps: NetworkStep[]) =>
  steps.map((s) => (s.action === 'write' || s.action === 'remove' ? `${s.action} ${s.path}` : s.action === 'ifdown' || s.action === 'ifup' ? `${s.action} ${s.interfaces.join(',')}` : s.action));

describe('network planner', () => {
  it('plans nothing when the files and the live state match', () => {
    assert.deepEqual(planNetwork(scenarioSpec(), actualAfter(scenarioSpec(), linksUp, routesUp)), []);
  });

  it('first apply: validate, write every file, bring the interfaces up (nothing to bring down)', () => {
    const fresh = [{ name: 'lo', up: false, addresses: [] }, { name: 'eth0', up: false, addresses: [] }, { name: 'eth1', up: false, addresses: [] }];
    const steps = planNetwork(scenarioSpec(), actualAfter(undefined, fresh, []));
    assert.deepEqual(brief(steps), [
      'validate',
      'write /etc/network/interfaces',
      'write /etc/network/interfaces.d/lo',
      'write /etc/network/interfaces.d/eth0_static',
      'write /etc/network/interfaces.d/eth1_dhcp',
      'write /etc/network/if-down.d/log-down',
      'write /etc/network/if-up.d/ibex-dns',
      'ifup eth0_static,eth1_dhcp,lo',
    ]);
    const v = summarizeNetworkStep(steps[0]!);
    assert.deepEqual(v.commands, [
      ['ifup', '-n', '-a', '-i', '/d/backup/network/staged/interfaces', '-S', '/d/backup/network/staged/ifstate'],
      ['busybox', 'ifup', '-n', '-a', '-i', '/d/backup/network/staged/interfaces'],
    ]);
    assert.deepEqual(summarizeNetworkStep(steps.at(-1)!).commands, [['ifup', '-i', '/r/etc/network/interfaces', '-S', '/r/run/ifstate', 'eth0_static', 'eth1_dhcp', 'lo']]);
    assert.match(String(summarizeNetworkStep(steps[3]!).diff), /^--- \/dev\/null\n\+\+\+ b\/etc\/network\/interfaces\.d\/eth0_static\n@@ -0,0 \+1,10 @@\n/);
    // The dhcp interface is waited for (the section's default), and the summary says so.
    const up = steps.at(-1)!;
    assert.deepEqual(up.action === 'ifup' && up.leases, [{ name: 'eth1_dhcp', timeoutSec: 30 }]);
    assert.match(summarizeNetworkStep(up).text, /; wait up to 30 s for a DHCP lease on eth1_dhcp$/);
  });

  it('a dhcp interface waits for its own dhcpTimeoutSec when it has one', () => {
    const spec = networkSectionSchema.parse({ ...scenarioSpec(), dhcpTimeoutSec: 45, interfaces: scenarioSpec().interfaces.map((i) => (i.method === 'dhcp' ? { ...i, dhcpTimeoutSec: 7 } : i)) });
    const fresh = [{ name: 'lo', up: false, addresses: [] }, { name: 'eth0', up: false, addresses: [] }, { name: 'eth1', up: false, addresses: [] }];
    const up = planNetwork(spec, actualAfter(undefined, fresh, [])).at(-1)!;
    assert.deepEqual(up.action === 'ifup' && up.leases, [{ name: 'eth1_dhcp', timeoutSec: 7 }]);
  });

  it('a changed address touches only that interface: down with the old config (undoing its rename), one file, up', () => {
    const next = networkSectionSchema.parse({ ...scenarioSpec(), interfaces: scenarioSpec().interfaces.map((i) => (i.name === 'eth0_static' ? { ...i, addresses: ['192.168.1.101/24'] } : i)) });
    const steps = planNetwork(next, actualAfter(scenarioSpec(), linksUp, routesUp));
    assert.deepEqual(brief(steps), ['validate', 'ifdown eth0_static', 'write /etc/network/interfaces.d/eth0_static', 'ifup eth0_static']);
    const down = steps[1]!;
    assert.ok(down.action === 'ifdown');
    assert.deepEqual(down.commands, [
      ['ifdown', '-f', '-i', '/r/etc/network/interfaces', '-S', '/r/run/ifstate', 'eth0_static'],
      ['ip', 'link', 'set', 'dev', 'eth0_static', 'name', 'eth0'],
    ]);
    assert.match(String(summarizeNetworkStep(steps[2]!).diff), /-\taddress 192\.168\.1\.100\n\+\taddress 192\.168\.1\.101\n/);
  });

  it('a hook change rewrites the hook only; a dropped interface is brought down and its file removed', () => {
    const hookOnly = networkSectionSchema.parse({ ...scenarioSpec(), hooks: [{ phase: 'down', name: 'log-down', content: '#!/bin/sh\nlogger down\n' }] });
    assert.deepEqual(brief(planNetwork(hookOnly, actualAfter(scenarioSpec(), linksUp, routesUp))), ['validate', 'write /etc/network/if-down.d/log-down']);
    const dropped = networkSectionSchema.parse({ ...scenarioSpec(), interfaces: scenarioSpec().interfaces.filter((i) => i.name !== 'eth1_dhcp') });
    assert.deepEqual(brief(planNetwork(dropped, actualAfter(scenarioSpec(), linksUp, routesUp))), ['validate', 'ifdown eth1_dhcp', 'write /etc/network/interfaces', 'remove /etc/network/interfaces.d/eth1_dhcp']);
  });

  it('drift: files in place but the route is gone -> restart that interface', () => {
    const steps = planNetwork(scenarioSpec(), actualAfter(scenarioSpec(), linksUp, routesUp.slice(0, 1)));
    assert.deepEqual(brief(steps), ['ifdown eth0_static', 'ifup eth0_static']);
    assert.match(summarizeNetworkStep(steps[1]!).text, /eth0_static: the route to 192\.168\.2\.0\/24 via 192\.168\.1\.1 is missing/);
  });

  it('a change to one interface also brings up an unchanged one that is down (issue 16: lo down in a fresh namespace)', () => {
    const next = networkSectionSchema.parse({ ...scenarioSpec(), interfaces: scenarioSpec().interfaces.map((i) => (i.name === 'eth0_static' ? { ...i, addresses: ['192.168.1.101/24'] } : i)) });
    const loDown = linksUp.map((l) => (l.name === 'lo' ? { ...l, up: false, addresses: [] } : l));
    const steps = planNetwork(next, actualAfter(scenarioSpec(), loDown, routesUp));
    assert.deepEqual(brief(steps), ['validate', 'ifdown eth0_static,lo', 'write /etc/network/interfaces.d/eth0_static', 'ifup eth0_static,lo']);
    assert.match(summarizeNetworkStep(steps.at(-1)!).text, /lo: the link is down/);
  });

  it('DNS: resolv.conf without the nameservers the spec asks for is drift of the interface that has them', () => {
    const spec = networkSectionSchema.parse({ ...scenarioSpec(), interfaces: scenarioSpec().interfaces.filter((i) => i.method !== 'dhcp') });
    const at = (resolvConf: NetworkActual['resolvConf']) => ({ ...actualAfter(spec, linksUp, routesUp), resolvConf });
    const written = '# Written by ibex-agent (if-up.d/ibex-dns) for eth0_static from its dns-nameservers / dns-search\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n';
    assert.deepEqual(planNetwork(spec, at({ kind: 'file', content: written })), []);
    for (const resolvConf of [{ kind: 'file' as const, content: 'nameserver 10.0.0.53\n' }, { kind: 'absent' as const }]) {
      const steps = planNetwork(spec, at(resolvConf));
      assert.deepEqual(brief(steps), ['ifdown eth0_static', 'ifup eth0_static']);
      assert.match(summarizeNetworkStep(steps[1]!).text, /eth0_static: \/etc\/resolv\.conf does not hold its dns-nameservers 8\.8\.8\.8 8\.8\.4\.4/);
    }
    // A resolv.conf the hook writes through (a symlink) cannot be read under the root: not judged.
    assert.deepEqual(planNetwork(spec, at({ kind: 'unreadable' })), []);
  });

  it('DNS with a DHCP interface in the spec: its client rewrites resolv.conf, so the hook\'s stamp is what must hold the DNS', () => {
    const at = (dnsStamps: Record<string, string | undefined>) => ({ ...actualAfter(scenarioSpec(), linksUp, routesUp), resolvConf: { kind: 'file' as const, content: '' }, dnsStamps });
    // resolv.conf emptied by udhcpc after the hook: not judged; the stamp says the hook's write landed.
    assert.deepEqual(planNetwork(scenarioSpec(), at({ eth0_static: 'nameserver 8.8.8.8\nnameserver 8.8.4.4\n' })), []);
    for (const stamps of [{}, { eth0_static: 'nameserver 10.0.0.53\n' }]) {
      const steps = planNetwork(scenarioSpec(), at(stamps));
      assert.deepEqual(brief(steps), ['ifdown eth0_static', 'ifup eth0_static']);
      assert.match(summarizeNetworkStep(steps[1]!).text, /eth0_static: the DNS hook did not write its dns-nameservers 8\.8\.8\.8 8\.8\.4\.4 to \/etc\/resolv\.conf/);
    }
  });

  it('refuses, before any other step, an interface that is not on the device', () => {
    const steps = planNetwork(scenarioSpec(), actualAfter(undefined, [{ name: 'eth0', up: false, addresses: [] }], []));
    assert.deepEqual(brief(steps), ['refuse']);
    assert.match(summarizeNetworkStep(steps[0]!).text, /no network interface eth1 \(to be renamed eth1_dhcp\)/);
  });
});
