import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { desiredStateSchema, generationsSectionSchema } from '@ibex/spec';
import { runAgent } from '../../testing/agent-process.js';
import { listVolume, makeBtrfsVolume, makeRootfsTarball, execArgv } from '../../testing/btrfs-volume.js';
import { desiredConfig, planGenerations } from './generations-capability.js';

const spec = (v: unknown) => generationsSectionSchema.parse(v);

describe('generations section (pure)', () => {
  it('validates naming the field', () => {
    const r = desiredStateSchema.safeParse({ generations: { volume: 'vol', fallbacks: 99, health: { checks: [[]] } } });
    assert.equal(r.success, false);
    const paths = r.error!.issues.map((i) => i.path.join('.'));
    assert.deepEqual(paths.sort(), ['generations.fallbacks', 'generations.health.checks.0', 'generations.volume'].sort());
  });

  it('plans nothing when in sync, adopt+configure when unset, configure when settings differ, refuse without a layout', () => {
    const s = spec({ volume: '/vol/root', health: { checks: [['true']] } });
    assert.deepEqual(planGenerations(s, { config: desiredConfig(s), layoutProblem: undefined, busy: false }), []);
    assert.deepEqual(planGenerations(s, { config: undefined, layoutProblem: undefined, busy: false }), [{ action: 'configure', config: desiredConfig(s), adopt: true }]);
    assert.deepEqual(planGenerations(s, { config: { ...desiredConfig(s), fallbacks: 1 }, layoutProblem: undefined, busy: true }), [{ action: 'configure', config: desiredConfig(s), adopt: false }]);
    const refused = planGenerations(s, { config: undefined, layoutProblem: '/vol/root/current is missing', busy: false });
    assert.equal(refused[0]?.action, 'refuse');
    assert.match(refused[0]?.action === 'refuse' ? refused[0].reason : '', /^generations\.volume: .*run the generations\.init job/);
    const moving = planGenerations(spec({ volume: '/other' }), { config: desiredConfig(s), layoutProblem: undefined, busy: true });
    assert.equal(moving[0]?.action, 'refuse');
  });
});

describe('generations section applied by ibex-agent apply on a real btrfs', () => {
  it('adopts the wiki layout without changing the volume, then is in sync; refuses a volume without a layout', async (t) => {
    const v = await makeBtrfsVolume(t);
    const specFile = join(v.scratch, 'spec.json');
    writeFileSync(specFile, JSON.stringify({ generations: { volume: v.volume, fallbacks: 3, health: { deadlineSec: 120 } } }));
    let r = await runAgent(['apply', '--spec', specFile, '--root', v.root]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout + r.stderr, /generations: reverted: .*generations\.volume: \/vol\/root\/current is missing.*run the generations\.init job/);
    assert.equal(existsSync(join(v.root, 'var/lib/ibex-agent/generations/config.json')), false, 'nothing configured');

    const gen = '20240101000000abcdefgh';
    for (const d of ['next', 'snapshots', 'links', `snapshots/${gen}`, 'links/L1']) mkdirSync(join(v.host, d));
    execArgv(['btrfs', 'subvolume', 'create', join(v.host, 'snapshots', gen, '@')]);
    execArgv(['tar', '-x', '-z', '-f', makeRootfsTarball(v.scratch, 'w', 'w'), '-C', join(v.host, 'snapshots', gen, '@')]);
    execArgv(['btrfs', 'property', 'set', '-ts', join(v.host, 'snapshots', gen, '@'), 'ro', 'true']);
    for (const i of [0, 1, 2, 3]) symlinkSync(`../../snapshots/${gen}`, join(v.host, 'links/L1', String(i)));
    symlinkSync('./links/L1', join(v.host, 'current'));
    const before = listVolume(v.host);
    r = await runAgent(['apply', '--spec', specFile, '--root', v.root]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /generations: in sync \(1 step\(s\) applied\)\n {2}- adopt the layout on \/vol\/root \(read only\) and set fallbacks 3, health deadline 120 s/);
    assert.equal(listVolume(v.host), before);
    const cfg = JSON.parse(readFileSync(join(v.root, 'var/lib/ibex-agent/generations/config.json'), 'utf8'));
    assert.deepEqual(cfg, { volume: '/vol/root', fallbacks: 3, health: { deadlineSec: 120, boots: 2, checks: [], requireBoot: false } });
    r = await runAgent(['plan', '--spec', specFile, '--root', v.root]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /generations: in sync, nothing to do/);
  });
});
