import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { desiredStateSchema, generationsSectionSchema } from '@ibex/spec';
import { silentLogger } from '../../common/log.js';
import { NodeSystemAdapter } from '../../system/node-system-adapter.js';
import { agentCommand, runAgent } from '../../testing/agent-process.js';
import { listVolume, makeBtrfsVolume, makeRootfsTarball, execArgv, sha256File } from '../../testing/btrfs-volume.js';
import { desiredConfig, generationsCapability, planGenerations } from './generations-capability.js';
import { GenerationsRoot } from './generations-root.js';
import { init } from './init-adopt.js';
import { upgrade } from './upgrade.js';

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

describe('generations section and jobs on one device', () => {
  it('share one lock: the section\'s adopt and configure wait for a running upgrade job instead of interleaving with it', async (t) => {
    const v = await makeBtrfsVolume(t);
    const tar = makeRootfsTarball(v.scratch, 'base', 'base');
    const [cmd, pre] = agentCommand();
    // One GenerationsRoot for the --root, shared by the jobs and the section, as in the agent.
    const jobs = new GenerationsRoot({ root: v.root, sys: new NodeSystemAdapter(), log: silentLogger, selfCommand: [cmd, ...pre] });
    await init(jobs, { volume: v.volume, commons: [], image: { kind: 'tarball', path: tar.slice(v.root.length), sha256: sha256File(tar) } });
    const ctx = { root: v.root, sys: new NodeSystemAdapter(), log: silentLogger, signal: new AbortController().signal, backupDir: v.scratch };
    const want = desiredConfig(spec({ volume: v.volume, fallbacks: 2, health: { deadlineSec: 90 } }));
    let upgraded = false;
    const upgrading = upgrade(jobs, { from: { kind: 'commands' }, commands: [['/bin/busybox', 'sleep', '1.5']], trial: true }).then((r) => ((upgraded = true), r));
    // Wait until the upgrade is journaled and running its command.
    const until = Date.now() + 10_000;
    while (Date.now() < until && !existsSync(jobs.store.journal.path)) await new Promise((ok) => setTimeout(ok, 20));
    assert.ok(existsSync(jobs.store.journal.path), 'the upgrade is under way');
    const seen: string[] = [];
    const section = async (adopt: boolean) => {
      await generationsCapability(jobs).executors.configure({ action: 'configure', config: want, adopt }, ctx);
      seen.push(`${adopt ? 'adopt' : 'configure'}: upgrade ${upgraded ? 'done' : 'running'}, journal ${existsSync(jobs.store.journal.path) ? 'present' : 'gone'}`);
    };
    await Promise.all([section(true), section(false), upgrading]);
    assert.deepEqual(seen.sort(), ['adopt: upgrade done, journal gone', 'configure: upgrade done, journal gone']);
    const r = await upgrading;
    // Nothing the upgrade recorded was lost: the trial stands, with the section's settings.
    assert.equal(jobs.store.readState().trial?.id, r.id);
    assert.deepEqual(jobs.requireConfig(), want);
  });
});
