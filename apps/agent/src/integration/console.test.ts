// Jobs run at the device console (`ibex-agent generations ...`, `ibex-agent job TYPE`) by the
// agent process (node main.js, or the single executable with IBEX_AGENT_BIN) on a real btrfs
// volume under its --root; then `ibex-agent run` against the scripted controller reports them.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { JobOutcome } from '@ibex/proto';
import { generationsInventorySchema } from '@ibex/spec';
import { INTERRUPTED_ERROR } from '../jobs/job-runner.js';
import { AgentProcess, runAgent } from '../testing/agent-process.js';
import { makeBtrfsVolume, makeRootfsTarball, makeWikiLayout, sha256File, type BtrfsVolume } from '../testing/btrfs-volume.js';
import { type AgentFixture, agentFixture } from '../testing/fixtures.js';
import { waitFor } from '../testing/wait.js';

const JOB_MS = 90_000;

async function setup(t: TestContext) {
  const agents: AgentProcess[] = [];
  // FIFO after-hooks: stop the agents, then unmount (makeBtrfsVolume's hook), then remove the root.
  t.after(async () => {
    await Promise.all(agents.map((a) => a.kill()));
  });
  const fx: AgentFixture = await agentFixture();
  const v = await makeBtrfsVolume(t, { root: fx.root });
  t.after(() => fx.cleanup());
  // The real /proc under the root: mountinfo (GC and the booted generation) and the boot id.
  symlinkSync('/proc', join(fx.root, 'proc'));
  const start = () => {
    const a = fx.startAgent();
    agents.push(a);
    return a;
  };
  /** `ibex-agent ARGS --root ROOT`, to completion. */
  const cli = (args: string[], env: Record<string, string> = {}) => runAgent([...args, '--root', v.root], env, JOB_MS);
  const paramsFile = (name: string, params: unknown) => {
    const f = join(v.scratch, `${name}.json`);
    writeFileSync(f, JSON.stringify(params));
    return f;
  };
  const tar = makeRootfsTarball(v.scratch, 'base', 'base');
  const initParams = (extra: object = {}) => paramsFile('init', { volume: v.volume, image: { kind: 'tarball', path: tar.slice(v.root.length), sha256: sha256File(tar) }, ...extra });
  return { fx, v, start, cli, paramsFile, initParams, agents };
}

const current0 = (v: BtrfsVolume) => readlinkSync(join(v.host, 'current/0')).replace('../../snapshots/', '');
const upgradeCommands = (file: string) => ({ from: { kind: 'commands' }, commands: [['/bin/busybox', 'touch', `/etc/${file}`]], trial: false });
const status = async (cli: (a: string[]) => Promise<{ code: number | null; stdout: string; stderr: string }>) => {
  const r = await cli(['status', '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
};

describe('jobs at the console', { concurrency: false }, () => {
  it('init, upgrade, rollback and gc run at the console; status shows the inventory; the next connection sends the facts and each local change once', async (t) => {
    const { fx, v, start, cli, paramsFile, initParams } = await setup(t);
    const init = await cli(['generations', 'init', '--params', initParams({ fallbacks: 1 })]);
    assert.equal(init.code, 0, init.stderr);
    const a = current0(v);
    assert.match(init.stdout, new RegExp(`^generations\\.init: succeeded\\ngenerations on /vol/root: 1, current ${a}`));
    assert.match(init.stderr, /\[100%\] initialised \/vol\/root with generation/, 'progress on stderr (not a terminal: one line per message)');
    assert.match(init.stderr, /local change [0-9a-f-]{36}: reported to the controller when ibex-agent run next connects/);

    // --json: one JSON object per line on stdout, every update as it happens, then the result.
    const up = await cli(['generations', 'upgrade', '--json', '--params', paramsFile('up1', upgradeCommands('one'))]);
    assert.equal(up.code, 0, up.stderr);
    const events = up.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(events[0]!.event, 'started');
    assert.ok(events.filter((e) => e.event === 'progress').length >= 4, up.stdout);
    assert.ok(events.some((e) => e.event === 'log' && /^switched from /.test(String(e.text))));
    const result = events.at(-1)! as { event: string; outcome: string; output: { id: string; from: string } };
    assert.deepEqual([result.event, result.outcome, result.output.from], ['result', 'succeeded', a]);
    const b = result.output.id;
    assert.equal(current0(v), b);
    assert.ok(existsSync(join(v.host, 'snapshots', b, '@/etc/one')), 'the command ran in the new generation');

    const up2 = await cli(['job', 'generations.upgrade', '--params', paramsFile('up2', upgradeCommands('two'))]);
    assert.equal(up2.code, 0, up2.stderr);
    const c = current0(v);
    assert.notEqual(c, b);
    // fallbacks 1: the links hold c and b; a is linked nowhere now.
    const rb = await cli(['generations', 'rollback']);
    assert.equal(rb.code, 0, rb.stderr);
    assert.equal(current0(v), b, 'rolled back to the previous generation');
    const gc = await cli(['generations', 'gc']);
    assert.equal(gc.code, 0, gc.stderr);
    assert.match(gc.stdout, new RegExp(`deleted: ${a}\\n`));
    assert.equal(existsSync(join(v.host, 'snapshots', a)), false);

    const s = await status(cli);
    const inv = generationsInventorySchema.parse(s.generations);
    assert.equal(inv.current, b);
    assert.deepEqual(
      inv.generations.map((g) => [g.id, g.status, g.current, g.slot]),
      [
        [b, 'good', true, 0],
        [c, 'good', false, 1],
      ],
    );
    assert.equal(inv.lastGood, c);
    assert.equal(s.lastRollback.from, c);
    assert.equal(s.lastRollback.to, b);
    assert.deepEqual(
      s.localJobs.map((j: { type: string; outcome: string; reported: boolean }) => [j.type, j.outcome, j.reported]),
      ['generations.gc', 'generations.rollback', 'generations.upgrade', 'generations.upgrade', 'generations.init'].map((x) => [x, 'succeeded', false]),
    );
    assert.equal(s.pendingLocalChanges, 5);
    assert.equal(s.pendingJobUpdates, 0, 'nothing of a console job is sent as a job update');
    const text = await cli(['status']);
    assert.match(text.stdout, new RegExp(`generations on /vol/root: 2, current ${b}, booted -, last good ${c}\\n`));
    // Newest first.
    assert.match(text.stdout, new RegExp(`\\n  ${c} +\\S+ +good +1 +last good\\n  ${b} +\\S+ +good +0 +current\\n`));
    assert.match(text.stdout, /local jobs: {2}5 run at the console, 5 not yet reported to the controller/);

    // The next connection: the Hello carries the inventory, then each local change, oldest first.
    start();
    const session = await fx.controller.waitForSession();
    const hello = generationsInventorySchema.parse(JSON.parse(session.hello!.facts!.generationsJson));
    assert.equal(hello.current, b);
    const changes = await fx.controller.waitFor('five local changes', () => fx.controller.localChanges().length >= 5 && fx.controller.localChanges(), 30_000);
    assert.deepEqual(
      changes.map((x) => x.type),
      ['generations.init', 'generations.upgrade', 'generations.upgrade', 'generations.rollback', 'generations.gc'],
    );
    assert.deepEqual(new Set(changes.map((x) => x.result?.outcome)), new Set([JobOutcome.JOB_OUTCOME_SUCCEEDED]));
    assert.equal(new Set(changes.map((x) => x.changeId)).size, 5);
    assert.equal(JSON.parse(changes[3]!.paramsJson).reason.startsWith('requested at the console'), true);
    assert.equal(JSON.parse(changes[1]!.result!.outputJson).id, b);
    assert.ok(changes[1]!.log.some((l) => /^switched from /.test(l.text)), 'the job log travels with it');
    // Acknowledged: not sent again, on this stream or the next.
    await waitFor('the changes journaled as reported', async () => (await status(cli)).pendingLocalChanges === 0, 30_000);
    await fx.controller.waitFor('heartbeats after the Welcome', () => fx.controller.ofKind('heartbeat').some((h) => h.session === session.index));
    fx.controller.endCurrent();
    const second = await fx.controller.waitForSession(session.index);
    await fx.controller.waitFor('a heartbeat on the new stream', () => fx.controller.ofKind('heartbeat').some((h) => h.session === second.index));
    assert.equal(fx.controller.localChanges().length, 5, 'each local change was sent once');
  });

  it('bad params are refused by field with nothing journaled; Ctrl-C cancels an upgrade and undoes it; one SIGKILLed is recovered and reported interrupted; the running agent holds the data dir', async (t) => {
    const { fx, v, start, cli, paramsFile, initParams } = await setup(t);
    assert.equal((await cli(['generations', 'init', '--params', initParams()])).code, 0);
    const a = current0(v);
    const journaled = () => readdirSync(join(fx.dataDir, 'jobs')).length;
    const before = journaled();

    const bad = await cli(['generations', 'upgrade', '--params', paramsFile('bad', { from: { kind: 'tarball', path: '/x.tar' } })]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^ibex-agent generations upgrade: invalid params: params\.from\.sha256: required: the artifact is verified before it is used/m);
    const unknown = await cli(['job', 'generations.upgrad']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown job type "generations\.upgrad"; this agent \(ibex-agent [^)]+\) runs: facts\.collect, /);
    const twice = await cli(['generations', 'rollback', '--to', a, '--params', paramsFile('to', { to: a })]);
    assert.equal(twice.code, 2);
    assert.match(twice.stderr, /--to and params\.to both given; give one/);
    const notJson = await runAgent(['job', 'facts.collect', '--params', join(v.scratch, 'missing.json'), '--root', v.root]);
    assert.equal(notJson.code, 2);
    assert.match(notJson.stderr, /params file .*missing\.json cannot be read/);
    assert.equal(journaled(), before, 'nothing journaled for refused input');

    // Ctrl-C while a command runs in the new root: cancelled, and the new generation removed.
    const slow = AgentProcess.start(['generations', 'upgrade', '--root', v.root, '--params', paramsFile('slow', { from: { kind: 'commands' }, commands: [['/bin/busybox', 'sleep', '60']] })]);
    t.after(() => slow.kill());
    await slow.waitForLine(/\[ *\d+%\] running \/bin\/busybox sleep 60/, 30_000);
    slow.child.kill('SIGINT');
    const ended = await slow.exited;
    assert.equal(ended.code, 1, slow.lines.join('\n'));
    assert.ok(slow.lines.some((l) => /^generations\.upgrade: cancelled: interrupted at the console \(SIGINT\)/.test(l)), slow.lines.join('\n'));
    assert.equal(current0(v), a);
    assert.deepEqual(readdirSync(join(v.host, 'snapshots')), [a], 'the cancelled generation was removed');

    // SIGKILLed half way (the new root read-only, not linked): the next command recovers first.
    const killed = await cli(['generations', 'upgrade', '--params', paramsFile('k', upgradeCommands('k'))], { IBEX_AGENT_FAILPOINTS: 'gen-readonly' });
    assert.equal(killed.code, null);
    assert.ok(existsSync(join(fx.dataDir, 'generations/journal.json')), 'the upgrade was journaled');
    assert.equal((await status(cli)).localJobs[0].outcome, 'running');
    const gc = await cli(['generations', 'gc']);
    assert.equal(gc.code, 0, gc.stderr);
    assert.match(gc.stderr, /rolled back the interrupted upgrade/);
    assert.equal(existsSync(join(fx.dataDir, 'generations/journal.json')), false);
    assert.equal(current0(v), a);
    const s = await status(cli);
    assert.deepEqual(
      s.localJobs.map((j: { type: string; outcome: string; error?: string }) => [j.type, j.outcome, j.error]),
      [
        ['generations.gc', 'succeeded', undefined],
        ['generations.upgrade', 'failed', INTERRUPTED_ERROR],
        ['generations.upgrade', 'cancelled', 'cancelled: interrupted at the console (SIGINT)'],
        ['generations.init', 'succeeded', undefined],
      ],
    );

    // While `ibex-agent run` uses the data dir, the console refuses (the generations lock is per process).
    start();
    await fx.controller.waitForSession();
    const refused = await cli(['generations', 'rollback']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^ibex-agent generations rollback: an agent \(pid \d+\) is running with data dir .*; stop it first/m);
    const interrupted = await fx.controller.waitFor('the interrupted upgrade reported', () =>
      fx.controller.localChanges().find((x) => x.type === 'generations.upgrade' && x.result?.outcome === JobOutcome.JOB_OUTCOME_FAILED),
    );
    assert.equal(interrupted.result!.error, INTERRUPTED_ERROR);
    assert.equal(fx.controller.localChanges().find((x) => x.result?.outcome === JobOutcome.JOB_OUTCOME_CANCELLED)?.type, 'generations.upgrade');
  });

  it('adopt: the generations other than current are `unknown`, in the records and wherever the inventory is shown', async (t) => {
    const { fx, v, cli } = await setup(t);
    const [older, newer] = ['20240101000000olderAAA', '20240201000000newerBBB'];
    makeWikiLayout(v, [older, newer]);
    const r = await cli(['generations', 'adopt', '--volume', v.volume, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!).output;
    assert.deepEqual(
      out.generations.map((g: { id: string; status: string }) => [g.id, g.status]),
      [
        [older, 'unknown'],
        [newer, 'good'],
      ],
    );
    const state = JSON.parse(readFileSync(join(fx.dataDir, 'generations/state.json'), 'utf8'));
    assert.deepEqual(state.statuses, { [newer]: 'good', [older]: 'unknown' });
    const list = await cli(['generations', 'list']);
    assert.match(list.stdout, new RegExp(`\\n  ${older} +2024-01-01T00:00:00Z +unknown +1\\n`));
  });

  it('records an older agent kept at the fixed place move to --data-dir; a crash at either point of the move loses nothing', async (t) => {
    const { v, cli, paramsFile, initParams } = await setup(t);
    // As an older agent left them: <root>/var/lib/ibex-agent/generations, with an operation journaled.
    assert.equal((await cli(['generations', 'init', '--params', initParams()])).code, 0);
    assert.equal((await cli(['generations', 'upgrade', '--params', paramsFile('u', upgradeCommands('u'))])).code, 0);
    const b = current0(v);
    const killed = await cli(['generations', 'upgrade', '--params', paramsFile('k', upgradeCommands('k'))], { IBEX_AGENT_FAILPOINTS: 'gen-linked' });
    assert.equal(killed.code, null);
    const old = join(v.root, 'var/lib/ibex-agent/generations');
    const records = (dir: string) => Object.fromEntries(['config.json', 'state.json', 'journal.json'].map((f) => [f, readFileSync(join(dir, f), 'utf8')]));
    const before = records(old);
    const dataDir = join(v.root, 'data');
    const withData = (args: string[], env: Record<string, string> = {}) => cli([...args, '--data-dir', dataDir], env);

    // Killed after the copy, before the rename: the old records are still the ones in use.
    assert.equal((await withData(['status'], { IBEX_AGENT_FAILPOINTS: 'gen-records-copied' })).code, null);
    assert.deepEqual(records(old), before);
    assert.equal(existsSync(join(dataDir, 'generations')), false);
    // Killed after the rename, before the old directory went: the new records are complete.
    assert.equal((await withData(['status'], { IBEX_AGENT_FAILPOINTS: 'gen-records-moved' })).code, null);
    assert.deepEqual(records(join(dataDir, 'generations')), before);
    assert.ok(existsSync(old), 'the old records are still there');
    // The next command finishes the move.
    const s = await withData(['status', '--json']);
    assert.equal(s.code, 0, s.stderr);
    assert.equal(existsSync(old), false, 'the old records are gone');
    assert.deepEqual(readdirSync(join(dataDir, 'generations')).sort(), ['config.json', 'journal.json', 'state.json']);
    const inv = generationsInventorySchema.parse(JSON.parse(s.stdout).generations);
    assert.equal(inv.current, b);
    const statuses = JSON.parse(before['state.json']!).statuses as Record<string, string>;
    assert.equal(Object.keys(statuses).length, 2);
    for (const [id, st] of Object.entries(statuses)) assert.equal(inv.generations.find((g) => g.id === id)?.status, st, `status of ${id} kept`);
    // The journaled operation moved with them: the next generations job undoes it from the new place.
    const gc = await withData(['generations', 'gc']);
    assert.equal(gc.code, 0, gc.stderr);
    assert.match(gc.stderr, /rolled back the interrupted upgrade/);
    assert.equal(existsSync(join(dataDir, 'generations/journal.json')), false);
    assert.equal(current0(v), b);
  });
});
