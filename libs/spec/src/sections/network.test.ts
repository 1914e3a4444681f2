import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { z } from 'zod';
import { desiredStateSchema } from '../desired-state.js';
import { fieldIssues } from '../errors.js';
import { inNetwork, netmaskToPrefix, parseCidr, prefixToNetmask } from './ip.js';
import { networkSectionSchema } from './network.js';
import { networkScenarioExample } from './network-example.js';

const issueScenario = networkScenarioExample;

function issuesOf(spec: unknown): Map<string, string> {
  const r = desiredStateSchema.safeParse({ network: spec });
  assert.equal(r.success, false, 'expected the spec to be refused');
  if (r.success) return new Map();
  return new Map(fieldIssues(r.error).map((i) => [i.path, i.message]));
}

const withIface = (extra: Record<string, unknown>, idx = 1) => ({
  ...issueScenario,
  interfaces: issueScenario.interfaces.map((i, n) => (n === idx ? { ...i, ...extra } : i)),
});

describe('network section schema', () => {
  it('accepts the issue scenario and fills defaults', () => {
    const s = networkSectionSchema.parse(issueScenario);
    assert.equal(s.confirmTimeoutSec, 60);
    assert.equal(s.interfaces[1]!.auto, true);
    assert.deepEqual(s.interfaces[1]!.dns, { servers: ['8.8.8.8', '8.8.4.4'], search: [] });
    assert.equal(s.hooks[0]!.mode, '0755');
    assert.deepEqual(s.interfaces[2]!.addresses, []);
  });

  it('accepts IPv6, MAC matching, MTU, search domains and a per-apply deadline', () => {
    const s = networkSectionSchema.parse({
      interfaces: [
        { name: 'lan0', match: { mac: '02:AA:bb:00:00:01' }, method: 'static', addresses: ['10.0.0.2/8', 'fd00::2/64'], gateway6: 'fd00::1', mtu: 1400, dns: { servers: ['fd00::53'], search: ['example.lab'] } },
        { name: 'wan', method: 'manual', auto: false },
      ],
      routes: [{ interface: 'lan0', to: 'fd01::/64', via: 'fd00::1', metric: 10 }],
      confirmTimeoutSec: 5,
    });
    assert.equal(s.interfaces[0]!.match?.mac, '02:AA:bb:00:00:01');
    assert.equal(s.confirmTimeoutSec, 5);
  });

  it('can be published as JSON Schema (the controller documents the API with it)', () => {
    const js = JSON.stringify(z.toJSONSchema(desiredStateSchema, { io: 'output' }));
    assert.match(js, /confirmTimeoutSec/);
    assert.match(JSON.stringify(z.toJSONSchema(desiredStateSchema, { io: 'input' })), /gateway6/);
  });

  it('refuses bad addresses, prefixes and gateways with the field path', () => {
    const issues = issuesOf(withIface({ addresses: ['192.168.1.300/24', '192.168.1.5/33', '192.168.1.0/24', 'fd00::1'], gateway: '10.9.9.9' }));
    assert.match(issues.get('network.interfaces[1].addresses[0]') ?? '', /IPv4 or IPv6 address with a prefix/);
    assert.match(issues.get('network.interfaces[1].addresses[1]') ?? '', /prefix/);
    assert.match(issues.get('network.interfaces[1].addresses[2]') ?? '', /network address/);
    assert.ok(issues.has('network.interfaces[1].addresses[3]'));
    const gw = issuesOf(withIface({ gateway: '10.9.9.9' }));
    assert.match(gw.get('network.interfaces[1].gateway') ?? '', /not on any IPv4 network/);
    assert.match(issuesOf(withIface({ gateway: 'fd00::1' })).get('network.interfaces[1].gateway') ?? '', /IPv4 address/);
  });

  it('refuses bad interface names (IFNAMSIZ, characters)', () => {
    assert.match(issuesOf(withIface({ name: 'a-very-long-name0' })).get('network.interfaces[1].name') ?? '', /15 characters/);
    assert.match(issuesOf(withIface({ name: 'eth0.5' })).get('network.interfaces[1].name') ?? '', /letters, digits/);
    assert.match(issuesOf(withIface({ name: 'eth 0' })).get('network.interfaces[1].name') ?? '', /letters, digits/);
    assert.match(issuesOf(withIface({ match: { name: 'eth/0' } })).get('network.interfaces[1].match.name') ?? '', /letters, digits/);
    assert.ok(issuesOf(withIface({ match: { name: 'eth0', mac: '02:00:00:00:00:01' } })).has('network.interfaces[1].match'));
    assert.match(issuesOf(withIface({ match: { mac: '02:00:00:00:01' } })).get('network.interfaces[1].match.mac') ?? '', /MAC address/);
  });

  it('refuses duplicate names, renames and MACs', () => {
    const dupName = issuesOf({ ...issueScenario, interfaces: [...issueScenario.interfaces, { name: 'eth1_dhcp', method: 'dhcp' }] });
    assert.match(dupName.get('network.interfaces[3].name') ?? '', /duplicates interfaces\[2\]\.name/);
    const dupMatch = issuesOf({ ...issueScenario, interfaces: [...issueScenario.interfaces, { name: 'x', match: { name: 'eth0' }, method: 'dhcp' }] });
    assert.match(dupMatch.get('network.interfaces[3].match.name') ?? '', /duplicates interfaces\[1\]\.match\.name/);
    const dupMac = issuesOf({
      interfaces: [
        { name: 'a', match: { mac: '02:00:00:00:00:01' }, method: 'dhcp' },
        { name: 'b', match: { mac: '02:00:00:00:00:01'.toUpperCase() }, method: 'dhcp' },
      ],
    });
    assert.match(dupMac.get('network.interfaces[1].match.mac') ?? '', /duplicates/);
    const swap = issuesOf({
      interfaces: [
        { name: 'eth1', match: { name: 'eth0' }, method: 'dhcp' },
        { name: 'eth0', match: { name: 'eth1' }, method: 'dhcp' },
      ],
    });
    assert.match(swap.get('network.interfaces[0].name') ?? '', /must not chain or swap/);
    assert.ok(issuesOf({ ...issueScenario, interfaces: [...issueScenario.interfaces, { name: 'lo2', method: 'loopback' }] }).has('network.interfaces[3].method'));
    assert.match(issuesOf({ interfaces: [{ name: 'eth0', method: 'loopback' }] }).get('network.interfaces[0].name') ?? '', /the loopback interface is lo, not eth0/);
  });

  it('refuses routes to nowhere', () => {
    const noIface = issuesOf({ ...issueScenario, routes: [{ interface: 'eth9', to: '192.168.2.0/24', via: '192.168.1.1' }] });
    assert.match(noIface.get('network.routes[0].interface') ?? '', /no interface named eth9/);
    const offLink = issuesOf({ ...issueScenario, routes: [{ interface: 'eth0_static', to: '192.168.2.0/24', via: '10.1.1.1' }] });
    assert.match(offLink.get('network.routes[0].via') ?? '', /not reachable on eth0_static/);
    const hostBits = issuesOf({ ...issueScenario, routes: [{ interface: 'eth0_static', to: '192.168.2.7/24', via: '192.168.1.1' }] });
    assert.match(hostBits.get('network.routes[0].to') ?? '', /network address/);
    const family = issuesOf({ ...issueScenario, routes: [{ interface: 'eth0_static', to: 'fd01::/64', via: '192.168.1.1' }] });
    assert.match(family.get('network.routes[0].via') ?? '', /IPv4 but to is IPv6/);
    const lo = issuesOf({ ...issueScenario, routes: [{ interface: 'lo', to: '10.0.0.0/8' }] });
    assert.match(lo.get('network.routes[0].interface') ?? '', /loopback/);
  });

  it('refuses method mismatches, bad hooks and deadlines', () => {
    assert.ok(issuesOf(withIface({ method: 'dhcp' })).has('network.interfaces[1].addresses'));
    assert.ok(issuesOf(withIface({ addresses: [] , gateway: undefined })).has('network.interfaces[1].addresses'));
    const hooks = issuesOf({ ...issueScenario, hooks: [{ phase: 'up', name: 'add.route', content: '#!/bin/sh\n' }, { phase: 'sideways', name: 'x', content: '#!/bin/sh\n' }, { phase: 'up', name: 'y', content: 'echo no shebang' }] });
    assert.ok(hooks.has('network.hooks[0].name'));
    assert.ok(hooks.has('network.hooks[1].phase'));
    assert.ok(hooks.has('network.hooks[2].content'));
    assert.ok(issuesOf({ ...issueScenario, confirmTimeoutSec: 0 }).has('network.confirmTimeoutSec'));
    assert.match(issuesOf({ ...issueScenario, hooks: [{ phase: 'up', name: 'ibex-dns', content: '#!/bin/sh\n' }] }).get('network.hooks[0].name') ?? '', /the agent's own up hook/);
    assert.ok(issuesOf({ ...issueScenario, extra: 1 }).size > 0);
    const hook = { phase: 'down', name: 'log-down', content: '#!/bin/sh\n' };
    const dup = issuesOf({ ...issueScenario, hooks: [hook, hook, hook] });
    assert.match(dup.get('network.hooks[1].name') ?? '', /duplicates hooks\[0\]/);
    assert.match(dup.get('network.hooks[2].name') ?? '', /duplicates hooks\[0\]/);
  });

  it('takes a DHCP lease wait per section (default 30 s) and per dhcp interface, and refuses it elsewhere', () => {
    const s = networkSectionSchema.parse({ ...issueScenario, interfaces: issueScenario.interfaces.map((i, n) => (n === 2 ? { ...i, dhcpTimeoutSec: 5 } : i)) });
    assert.equal(s.dhcpTimeoutSec, 30);
    assert.equal(s.interfaces[2]!.dhcpTimeoutSec, 5);
    assert.match(issuesOf(withIface({ dhcpTimeoutSec: 5 })).get('network.interfaces[1].dhcpTimeoutSec') ?? '', /only a dhcp interface waits for a lease \(method is static\)/);
    assert.match(issuesOf(withIface({ dhcpTimeoutSec: 0 }, 2)).get('network.interfaces[2].dhcpTimeoutSec') ?? '', /at least 1/);
    assert.match(issuesOf({ ...issueScenario, dhcpTimeoutSec: 601 }).get('network.dhcpTimeoutSec') ?? '', /at most 600/);
  });
});

describe('ip helpers', () => {
  it('converts prefixes and netmasks both ways', () => {
    assert.equal(prefixToNetmask(24), '255.255.255.0');
    assert.equal(prefixToNetmask(0), '0.0.0.0');
    assert.equal(prefixToNetmask(32), '255.255.255.255');
    assert.equal(netmaskToPrefix('255.255.252.0'), 22);
    assert.equal(netmaskToPrefix('255.0.255.0'), undefined);
  });

  it('checks membership for IPv4 and IPv6', () => {
    assert.ok(inNetwork('192.168.1.1', parseCidr('192.168.1.100/24')!));
    assert.ok(!inNetwork('192.168.2.1', parseCidr('192.168.1.100/24')!));
    assert.ok(inNetwork('fd00::ffff', parseCidr('fd00::1/64')!));
    assert.ok(!inNetwork('fd01::1', parseCidr('fd00::1/64')!));
    assert.ok(inNetwork('::ffff:10.0.0.1', parseCidr('::ffff:10.0.0.0/120')!));
  });
});
