import { describe, it } from 'node:test';
import { join } from 'node:path';
import fc from 'fast-check';
import { silentLogger } from '../../common/log.js';
import { CapabilityRegistry } from '../../engine/capability.js';
import { Engine } from '../../engine/engine.js';
import { DataDir } from '../../journal/data-dir.js';
import { NodeSystemAdapter } from '../../system/node-system-adapter.js';
import { agentCommand } from '../../testing/agent-process.js';
import { assertApplyThenPlanIsEmpty } from '../../testing/apply-then-plan.js';
import { makeBtrfsVolume, makeRootfsTarball, sha256File } from '../../testing/btrfs-volume.js';
import { generationsCapability } from './generations-capability.js';
import { GenerationsRoot, defaultHealth } from './generations-root.js';
import { init, setConfig } from './init-adopt.js';

const health = fc.record(
  { deadlineSec: fc.integer({ min: 1, max: 86_400 }), boots: fc.integer({ min: 1, max: 10 }), checks: fc.array(fc.array(fc.constantFrom('true', '/bin/true', '-x'), { minLength: 1, maxLength: 3 }), { maxLength: 2 }), requireBoot: fc.boolean() },
  { requiredKeys: [] },
);

describe('generations: apply, then plan is empty (property, real btrfs)', () => {
  it('holds from no config (adopt), another config, or the same one', async (t) => {
    const v = await makeBtrfsVolume(t);
    const [cmd, pre] = agentCommand();
    const g = new GenerationsRoot({ root: v.root, sys: new NodeSystemAdapter(), log: silentLogger, selfCommand: [cmd, ...pre] });
    const tar = makeRootfsTarball(v.scratch, 'base', 'base');
    await init(g, { volume: v.volume, commons: [], image: { kind: 'tarball', path: tar.slice(v.root.length), sha256: sha256File(tar) } });
    const engine = new Engine({ registry: new CapabilityRegistry().register(generationsCapability(g)), sys: new NodeSystemAdapter(), log: silentLogger, root: v.root, dataDir: new DataDir(join(v.root, 'var/lib/ibex-agent')), agentVersion: 'test' });
    await assertApplyThenPlanIsEmpty(
      {
        starts: fc.record({ before: fc.option(fc.record({ fallbacks: fc.integer({ min: 0, max: 16 }), health }), { nil: undefined }), want: fc.record({ fallbacks: fc.integer({ min: 0, max: 16 }), health }, { requiredKeys: ['health'] }) }),
        async arrange(s) {
          await setConfig(g, s.before ? { volume: v.volume, fallbacks: s.before.fallbacks, health: { ...defaultHealth(), ...s.before.health } } : null);
          return { generations: { volume: v.volume, ...s.want } };
        },
        apply: (spec) => engine.apply(spec),
        plan: (spec) => engine.plan(spec),
      },
      { runs: 25, seed: 1601 },
    );
  });
});
