import { describe, it } from 'node:test';
import fc from 'fast-check';
import { type PassSection, assertApplyThenPlanIsEmpty } from '../testing/apply-then-plan.js';
import { openwrtWorld } from '../testing/openwrt-world.js';

/**
 * OpenWrt: apply, then plan is empty (issue 16), in the real-namespace world of the openwrt
 * tests (stand-in container). The starting states are the stock container, or what an earlier
 * apply of another configuration left (links wired, UCI changed, a shim or not); the specs vary
 * the LAN address, the WAN protocol and the shim. One world for all runs: each run starts where
 * the last one ended, plus the drawn earlier apply.
 */

const lan = fc.constantFrom('192.168.77.1/24', '192.168.78.1/24', '10.4.0.1/16');
const variant = fc.record({ lan, wan: fc.constantFrom('dhcp', 'static'), shim: fc.boolean() });

describe('openwrt: apply, then plan is empty (property, stand-in container)', () => {
  it('holds from the stock container and after earlier applies of other configurations', async (t) => {
    const w = await openwrtWorld(t);
    const specOf = (v: { lan: string; wan: string; shim: boolean }) => {
      const base = w.spec();
      const links = (base.links as Array<Record<string, unknown>>).map((l) => (l.type === 'macvlan' && !v.shim ? { ...l, shim: undefined } : l));
      const shimAddr = v.lan.replace(/\.1\/(\d+)$/, '.2/$1');
      return {
        ...base,
        links: links.map((l) => (l.shim ? { ...l, shim: { name: 'owshim', addresses: [shimAddr] } } : l)),
        config: { lan: { devices: ['eth0'], address: v.lan }, wan: v.wan === 'dhcp' ? { device: 'eth1', proto: 'dhcp' } : { device: 'eth1', proto: 'static', address: '198.51.100.7/24', gateway: '198.51.100.1' } },
      };
    };
    const pass = async (verb: 'plan' | 'apply', section: Record<string, unknown>): Promise<PassSection[]> => {
      const r = await w.agent(verb, section, {}, ['--json']);
      try {
        return (JSON.parse(r.stdout) as { sections: PassSection[] }).sections;
      } catch {
        throw new Error(`ibex-agent ${verb} printed no JSON (exit ${r.code}): ${r.stderr}`);
      }
    };
    await assertApplyThenPlanIsEmpty(
      {
        starts: fc.record({ earlier: fc.option(variant, { nil: undefined }), want: variant }),
        async arrange(s) {
          if (s.earlier) {
            const e = await pass('apply', specOf(s.earlier));
            if (e[0]?.state !== 'in_sync') throw new Error(`arranging the earlier apply failed: ${JSON.stringify(e)}`);
          }
          return specOf(s.want) as Record<string, unknown>;
        },
        apply: (section) => pass('apply', section),
        plan: (section) => pass('plan', section),
      },
      { runs: 4, seed: 1612 },
    );
  });
});
