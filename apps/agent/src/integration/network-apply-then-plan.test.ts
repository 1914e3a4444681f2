import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { runAgent } from '../testing/agent-process.js';
import { type PassSection, assertApplyThenPlanIsEmpty } from '../testing/apply-then-plan.js';
import { PrivateMountNamespace } from '../testing/mount-namespace.js';
import { NetnsDevice, sh } from '../testing/netns-device.js';

/**
 * Network: apply, then plan is empty (issue 16), on real network namespaces with ifupdown-ng,
 * from varied starting states: lo and eth0 up or down (with a stray address or not), the
 * interfaces file missing, Alpine's stock one, a hand-written eth0 stanza, or what an earlier
 * apply of another spec left; resolv.conf a plain file or a bind mount. Few runs: each is a
 * real namespace and two agent processes.
 */

const start = fc.record({
  loUp: fc.boolean(),
  eth0: fc.constantFrom('down', 'up', 'up-with-stray-address'),
  file: fc.constantFrom('missing', 'alpine-stock', 'hand-written-eth0', 'earlier-apply'),
  resolv: fc.constantFrom('file', 'bind-mount'),
  address: fc.constantFrom('192.168.1.100/24', '10.9.0.2/16', '172.16.5.5/28'),
  dns: fc.constantFrom(undefined, { servers: ['192.0.2.53'] }, { servers: ['198.51.100.1', '198.51.100.2'], search: ['example.net'] }),
  route: fc.boolean(),
});
type Start = typeof start extends fc.Arbitrary<infer T> ? T : never;

const specOf = (s: Pick<Start, 'address' | 'dns' | 'route'>) => {
  const gw = s.address.replace(/\.\d+\/\d+$/, '.1');
  return {
    network: {
      interfaces: [{ name: 'lo', method: 'loopback' }, { name: 'eth0_static', match: { name: 'eth0' }, method: 'static', addresses: [s.address], ...(s.dns ? { dns: s.dns } : {}) }],
      routes: s.route ? [{ interface: 'eth0_static', to: '203.0.113.0/24', via: gw }] : [],
    },
  };
};

describe('network: apply, then plan is empty (property, real namespaces)', () => {
  it('holds from every starting state drawn', async () => {
    let dev: NetnsDevice | undefined;
    let ns: PrivateMountNamespace | undefined;
    const agent = async (verb: 'apply' | 'plan', spec: Record<string, unknown>): Promise<PassSection[]> => {
      const f = join(dev!.root, `${verb}-${Date.now()}.json`);
      writeFileSync(f, JSON.stringify(spec));
      const r = await runAgent([verb, '--spec', f, '--root', dev!.root, '--data-dir', dev!.dataDir, '--json'], {}, 120_000, [...(ns?.prefix ?? []), ...dev!.prefix]);
      try {
        return (JSON.parse(r.stdout) as { sections: PassSection[] }).sections;
      } catch {
        throw new Error(`ibex-agent ${verb} printed no JSON (exit ${r.code}): ${r.stderr}`);
      }
    };
    await assertApplyThenPlanIsEmpty<Start>(
      {
        starts: start,
        async arrange(s) {
          dev = NetnsDevice.create();
          dev.addLink('eth0', 'p0');
          const etc = join(dev.root, 'etc');
          writeFileSync(join(etc, 'resolv.conf'), 'nameserver 10.0.0.53\n');
          if (s.resolv === 'bind-mount') {
            ns = PrivateMountNamespace.create();
            const src = join(ns.dir, 'resolv.conf');
            writeFileSync(src, 'nameserver 10.0.0.53\n');
            ns.bind(src, join(etc, 'resolv.conf'));
          }
          const inNs = (argv: string[]) => sh([...dev!.prefix, ...argv]);
          if (s.file === 'alpine-stock') writeFileSync(join(etc, 'network/interfaces'), 'auto lo\niface lo inet loopback\n');
          if (s.file === 'hand-written-eth0') writeFileSync(join(etc, 'network/interfaces'), 'auto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet static\n\taddress 10.1.1.1\n\tnetmask 255.255.255.0\n');
          if (s.file === 'earlier-apply') {
            const earlier = await agent('apply', specOf({ address: '10.200.0.9/24', dns: { servers: ['192.0.2.99'] }, route: false }));
            if (earlier[0]?.state !== 'in_sync') throw new Error(`arranging the earlier apply failed: ${JSON.stringify(earlier)}`);
          }
          // The live state last: whatever the earlier apply did, the drawn link states hold.
          inNs(['ip', 'link', 'set', 'lo', s.loUp ? 'up' : 'down']);
          const eth = s.file === 'earlier-apply' ? 'eth0_static' : 'eth0';
          inNs(['ip', 'link', 'set', eth, s.eth0 === 'down' ? 'down' : 'up']);
          if (s.eth0 === 'up-with-stray-address') inNs(['ip', 'addr', 'add', '10.77.7.7/24', 'dev', eth]);
          return specOf(s);
        },
        apply: (spec) => agent('apply', spec),
        plan: (spec) => agent('plan', spec),
        cleanup() {
          ns?.destroy();
          dev?.destroy();
          ns = undefined;
          dev = undefined;
        },
      },
      { runs: 6, seed: 1616 },
    );
  });
});
