// The agent process (node main.js, or the single executable with IBEX_AGENT_BIN) against the
// scripted controller, with a real btrfs volume under its --root: generations jobs end to end.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { JobOutcome, type JobUpdate } from '@ibex/proto';
import { generationsInventorySchema } from '@ibex/spec';
import { type AgentFixture, agentFixture } from '../testing/fixtures.js';
import { makeBtrfsVolume, makeRootfsTarball, sha256File } from '../testing/btrfs-volume.js';
import type { AgentProcess } from '../testing/agent-process.js';
import { killWithCommandLine, pidsWithCommandLine } from '../testing/processes.js';

const assign = (jobId: string, type: string, params: unknown) =>
  ({ $case: 'assign', value: { jobId, attempt: 1, type, paramsJson: JSON.stringify(params), timeoutMs: 300_000, createdAtMs: Date.now() } }) as const;

const resultOf = (updates: JobUpdate[]) => {
  const r = updates.find((u) => u.update?.$case === 'result');
  return r?.update?.$case === 'result' ? r.update.value : undefined;
};

async function setup(t: TestContext) {
  const agents: AgentProcess[] = [];
  let fx: AgentFixture | undefined;
  // FIFO after-hooks: stop the agents, then unmount (makeBtrfsVolume's hook), then remove the root.
  t.after(async () => {
    await Promise.all(agents.map((a) => a.kill()));
  });
  fx = await agentFixture();
  const v = await makeBtrfsVolume(t, { root: fx.root });
  t.after(() => fx?.cleanup());
  const start = (env: Record<string, string> = {}) => {
    const a = fx!.startAgent([], env);
    agents.push(a);
    return a;
  };
  return { fx, v, start };
}

const current0 = (host: string) => readlinkSync(join(host, 'current/0')).replace('../../snapshots/', '');

describe('generations jobs through the agent', { concurrency: false }, () => {
  it('init, then an upgrade whose health check fails is rolled back by the agent itself; bad params are refused by field', async (t) => {
    const { fx, v, start } = await setup(t);
    const agent = start();
    await fx.controller.waitForSession();
    const tar = makeRootfsTarball(v.scratch, 'base', 'base');
    fx.controller.send(assign('init-1', 'generations.init', { volume: v.volume, commons: ['@var@log'], image: { kind: 'tarball', path: tar.slice(v.root.length), sha256: sha256File(tar) }, health: { checks: [['ls', '/run/ibex-test-no-such-service']] } }));
    const init = await fx.controller.waitFor('init result', () => resultOf(fx.controller.jobUpdates('init-1')), 60_000);
    assert.equal(init.outcome, JobOutcome.JOB_OUTCOME_SUCCEEDED, init.error);
    const inv = generationsInventorySchema.parse(JSON.parse(init.outputJson));
    const first = inv.current!;
    assert.equal(current0(v.host), first);

    fx.controller.send(assign('boot-1', 'generations.bootEntries', { rootUuid: 'b9ff5e7b-e128-4e64-861a-2fdd794a9828', options: 'quiet' }));
    const boot = await fx.controller.waitFor('boot entries', () => resultOf(fx.controller.jobUpdates('boot-1')));
    assert.equal(boot.outcome, JobOutcome.JOB_OUTCOME_SUCCEEDED, boot.error);
    const entries = JSON.parse(boot.outputJson);
    assert.match(entries.refind, /options "root=UUID=b9ff5e7b-e128-4e64-861a-2fdd794a9828 rootfstype=btrfs rootflags=subvol=\/current\/0\/@ ro quiet"/);
    assert.equal(entries.refind.match(/submenuentry/g).length, 3);
    assert.deepEqual(entries.systemdBoot.map((e: { file: string }) => e.file), [`ibex-0-${first}.conf`]);

    fx.controller.send(assign('bad-1', 'generations.upgrade', { from: { kind: 'tarball', path: '/x.tar' } }));
    const bad = await fx.controller.waitFor('rejection', () => resultOf(fx.controller.jobUpdates('bad-1')));
    assert.equal(bad.outcome, JobOutcome.JOB_OUTCOME_REJECTED);
    assert.match(bad.error, /params\.from\.sha256: required: the artifact is verified before it is used/);

    fx.controller.send(assign('up-1', 'generations.upgrade', { from: { kind: 'commands' }, commands: [['/bin/busybox', 'touch', '/etc/new']] }));
    const up = await fx.controller.waitFor('upgrade result', () => resultOf(fx.controller.jobUpdates('up-1')), 60_000);
    assert.equal(up.outcome, JobOutcome.JOB_OUTCOME_SUCCEEDED, up.error);
    const next = JSON.parse(up.outputJson).id as string;
    assert.ok(fx.controller.jobUpdates('up-1').some((u) => u.update?.$case === 'progress'), 'the upgrade reports progress');
    assert.ok(existsSync(join(v.host, 'snapshots', next, '@/etc/new')), 'the command ran in the new generation');
    // The acknowledgement of the result reaches the agent: its health check runs, fails, and it switches back.
    await agent.waitForLine(/generations: rolled-back .*reason="?health check ls \/run\/ibex-test-no-such-service failed \(exit 2\)/, 30_000);
    assert.equal(current0(v.host), first);
    const state = JSON.parse(readFileSync(join(v.root, 'var/lib/ibex-agent/generations/state.json'), 'utf8'));
    assert.equal(state.statuses[next], 'bad');
  });

  it('SIGTERM while a trial health check runs: the agent kills the check, exits at once with no verdict, and the trial stays pending', async (t) => {
    const { fx, v, start } = await setup(t);
    const agent = start();
    await fx.controller.waitForSession();
    const tar = makeRootfsTarball(v.scratch, 'base', 'base');
    // A check that would pass, but only after a minute: the agent must not wait for it, nor let it decide after stopping.
    const secs = `60.${process.pid}${Math.floor(Math.random() * 1e6)}`;
    const checkPids = () => pidsWithCommandLine(`sleep ${secs}`);
    const running = () => checkPids().length > 0;
    // Without the fix the check outlives the agent: never leave it behind.
    t.after(() => killWithCommandLine(`sleep ${secs}`));
    fx.controller.send(assign('init-3', 'generations.init', { volume: v.volume, image: { kind: 'tarball', path: tar.slice(v.root.length), sha256: sha256File(tar) }, health: { checks: [['sleep', secs]], deadlineSec: 3600 } }));
    const init = await fx.controller.waitFor('init result', () => resultOf(fx.controller.jobUpdates('init-3')), 60_000);
    assert.equal(init.outcome, JobOutcome.JOB_OUTCOME_SUCCEEDED, init.error);
    fx.controller.send(assign('up-3', 'generations.upgrade', { from: { kind: 'commands' }, commands: [['/bin/busybox', 'touch', '/etc/new']], trial: true }));
    const up = await fx.controller.waitFor('upgrade result', () => resultOf(fx.controller.jobUpdates('up-3')), 60_000);
    assert.equal(up.outcome, JobOutcome.JOB_OUTCOME_SUCCEEDED, up.error);
    const next = JSON.parse(up.outputJson).id as string;
    await fx.controller.waitFor('the health check running', () => running() || undefined, 30_000);
    const t0 = Date.now();
    const exit = await agent.stop(20_000);
    assert.deepEqual(exit, { code: 0, signal: null }, 'the agent exited by itself on SIGTERM');
    assert.ok(Date.now() - t0 < 10_000, `the agent took ${Date.now() - t0} ms to stop`);
    assert.equal(running(), false, 'the check was killed');
    assert.equal(agent.count(/generations: (good|rolled-back)/), 0, 'no verdict');
    const state = JSON.parse(readFileSync(join(v.root, 'var/lib/ibex-agent/generations/state.json'), 'utf8'));
    assert.equal(state.trial?.id, next, 'the trial is pending for the next start');
    assert.equal(state.statuses[next], 'trial');
    assert.equal(current0(v.host), next);
  });

  it('the agent SIGKILLed in the middle of an upgrade job recovers at restart: current stays a complete read-only generation', async (t) => {
    const { fx, v, start } = await setup(t);
    let agent = start();
    await fx.controller.waitForSession();
    const tar = makeRootfsTarball(v.scratch, 'base', 'base');
    fx.controller.send(assign('init-2', 'generations.init', { volume: v.volume, image: { kind: 'tarball', path: tar.slice(v.root.length), sha256: sha256File(tar) } }));
    const init = await fx.controller.waitFor('init result', () => resultOf(fx.controller.jobUpdates('init-2')), 60_000);
    assert.equal(init.outcome, JobOutcome.JOB_OUTCOME_SUCCEEDED, init.error);
    const first = current0(v.host);
    await agent.kill();

    agent = start({ IBEX_AGENT_FAILPOINTS: 'gen-readonly' });
    await fx.controller.waitForSession(1);
    fx.controller.send(assign('up-2', 'generations.upgrade', { from: { kind: 'commands' }, commands: [['/bin/busybox', 'touch', '/etc/new']], trial: false }));
    const exit = await agent.exitedWithin();
    assert.equal(exit.signal, 'SIGKILL');
    assert.ok(existsSync(join(v.root, 'var/lib/ibex-agent/generations/journal.json')), 'the upgrade was journaled');

    agent = start();
    await agent.waitForLine(/generations: rolled back the interrupted upgrade/, 30_000);
    assert.equal(current0(v.host), first);
    assert.equal(existsSync(join(v.root, 'var/lib/ibex-agent/generations/journal.json')), false);
    const r = await fx.controller.waitFor('the interrupted job is reported', () => resultOf(fx.controller.jobUpdates('up-2')), 30_000);
    assert.notEqual(r.outcome, JobOutcome.JOB_OUTCOME_SUCCEEDED);
  });
});
