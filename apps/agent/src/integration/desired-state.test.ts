import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { JobOutcome, SectionState, type StateReport } from '@ibex/proto';
import { jobTypes } from '@ibex/spec';
import { runAgent } from '../testing/agent-process.js';
import { type AgentFixture, agentFixture } from '../testing/fixtures.js';

const spec = {
  files: {
    entries: [
      { path: '/etc/motd', content: 'managed by ibex\n' },
      { path: '/etc/app/app.conf', content: 'level=3\n', mode: '0600' },
    ],
  },
};

const desired = (revision: number, s: unknown) => ({ $case: 'desired', value: { revision, specJson: JSON.stringify(s), createdAtMs: Date.now() } }) as const;
const sectionOf = (r: StateReport, name: string) => r.sections.find((s) => s.section === name);
const stepsOf = (r: StateReport, name: string) => JSON.parse(sectionOf(r, name)?.detailJson ?? '{"steps":[]}').steps as { action: string; text: string }[];

describe('desired state', () => {
  let fx: AgentFixture | undefined;
  afterEach(async () => {
    await fx?.cleanup();
    fx = undefined;
  });

  const finalReport = (revision: number, after = 0) =>
    fx!.controller.waitFor(`a final report for revision ${revision}`, () =>
      fx!.controller.stateReports().slice(after).find((r) => r.revision === revision && r.sections.every((s) => s.state !== SectionState.SECTION_STATE_APPLYING)),
    );

  it('applies a files section under --root, reports it in sync, and a second apply runs no step', async () => {
    fx = await agentFixture();
    fx.startAgent();
    await fx.controller.waitForSession();
    fx.controller.send(desired(1, spec));
    const report = await finalReport(1);
    assert.equal(sectionOf(report, 'files')?.state, SectionState.SECTION_STATE_IN_SYNC);
    assert.deepEqual(stepsOf(report, 'files').map((s) => s.action), ['write', 'write']);
    const applying = fx.controller.stateReports().find((r) => r.revision === 1 && sectionOf(r, 'files')?.state === SectionState.SECTION_STATE_APPLYING);
    assert.ok(applying, 'an APPLYING report came first');
    assert.equal(readFileSync(join(fx.root, 'etc/motd'), 'utf8'), 'managed by ibex\n');
    assert.equal(statSync(join(fx.root, 'etc/app/app.conf')).mode & 0o777, 0o600);

    // The same spec again, asked for by a state.apply job: nothing to do.
    fx.controller.send({ $case: 'assign', value: { jobId: 'again', attempt: 1, type: 'state.apply', paramsJson: '{}', timeoutMs: 60_000, createdAtMs: 0 } });
    const result = await fx.controller.waitFor('the state.apply result', () => fx!.controller.jobUpdates('again').find((u) => u.update?.$case === 'result'));
    if (result.update?.$case !== 'result') throw new Error('not a result');
    assert.equal(result.update.value.outcome, JobOutcome.JOB_OUTCOME_SUCCEEDED, result.update.value.error);
    const output = jobTypes['state.apply'].output.parse(JSON.parse(result.update.value.outputJson));
    assert.deepEqual(output, { revision: 1, sections: [{ section: 'files', state: 'in_sync', steps: [] }] });

    const status = JSON.parse((await runAgent(['status', '--json', '--root', fx.root])).stdout);
    assert.equal(status.appliedRevision, 1);
    assert.equal(status.receivedRevision, 1);
    assert.deepEqual(
      status.sections.map((x: { observedAtMs: number }) => ({ ...x, observedAtMs: typeof x.observedAtMs })),
      [{ section: 'files', state: 'in_sync', source: 'controller', revision: 1, observedAtMs: 'number' }],
    );
  });

  /** Applies `spec` with drift checks every second, edits /etc/motd by hand, waits for the DRIFTED report. */
  const driftAfterHandEdit = async (extraArgs: string[] = []) => {
    fx = await agentFixture();
    const agent = fx.startAgent(['--drift-check-interval-sec', '1', ...extraArgs]);
    await fx.controller.waitForSession();
    fx.controller.send(desired(1, spec));
    await finalReport(1);
    const before = fx.controller.stateReports().length;
    writeFileSync(join(fx.root, 'etc/motd'), 'edited by hand\n');
    const drifted = await fx.controller.waitFor('a DRIFTED report', () =>
      fx!.controller.stateReports().slice(before).find((r) => sectionOf(r, 'files')?.state === SectionState.SECTION_STATE_DRIFTED),
    );
    return { fx, agent, drifted };
  };

  it('detects a file edited by hand as drift and heals it', async () => {
    const { fx, agent, drifted } = await driftAfterHandEdit();
    assert.deepEqual(stepsOf(drifted, 'files').map((s) => s.text), ['write /etc/motd (16 bytes, mode 0644; replaces the file)']);
    const healed = await finalReport(1, fx.controller.stateReports().findIndex((r) => r.reportId === drifted.reportId) + 1);
    assert.equal(sectionOf(healed, 'files')?.state, SectionState.SECTION_STATE_IN_SYNC);
    assert.equal(readFileSync(join(fx.root, 'etc/motd'), 'utf8'), 'managed by ibex\n');
    await agent.waitForLine(/drift detected section=files/);
  });

  it('only reports drift when healDrift is off', async () => {
    const { fx, agent } = await driftAfterHandEdit(['--no-heal-drift']);
    const count = fx.controller.stateReports().length;
    // Two more drift checks: the file stays edited and the same drift is not reported again.
    const checks = agent.count(/drift check/);
    await fx.controller.waitFor('two more drift checks', () => agent.count(/drift check/) >= checks + 2);
    assert.equal(readFileSync(join(fx.root, 'etc/motd'), 'utf8'), 'edited by hand\n');
    assert.equal(fx.controller.stateReports().length, count);
  });

  it('re-sends an unacknowledged state report after reconnecting, and refuses a local apply meanwhile', async () => {
    fx = await agentFixture();
    fx.controller.autoAck = false;
    fx.startAgent();
    const s1 = await fx.controller.waitForSession();
    fx.controller.send(desired(1, spec));
    const report = await finalReport(1);
    const specFile = join(fx.root, 'local.json');
    writeFileSync(specFile, JSON.stringify(spec));
    const local = await runAgent(['apply', '--spec', specFile, '--root', fx.root]);
    assert.equal(local.code, 1);
    assert.match(local.stderr, /an agent \(pid \d+\) is running with data dir/);
    fx.controller.endCurrent();
    const s2 = await fx.controller.waitForSession(s1.index);
    assert.equal(s2.hello!.lastAppliedRevision, 1);
    const again = await fx.controller.waitFor('the report again', () => fx!.controller.stateReports().find((r) => r.session === s2.index));
    assert.equal(again.reportId, report.reportId);
    assert.deepEqual(again.sections, report.sections);
  });

  it('reports a section it has no capability for as unsupported, applying the others', async () => {
    fx = await agentFixture();
    fx.startAgent();
    await fx.controller.waitForSession();
    fx.controller.send(desired(3, { ...spec, teleporter: { enabled: true } }));
    const report = await finalReport(3);
    const other = sectionOf(report, 'teleporter');
    assert.equal(other?.state, SectionState.SECTION_STATE_UNSUPPORTED);
    assert.match(other!.error, /^this agent \(ibex-agent \d+\.\d+\.\d+\) has no capability for section 'teleporter'$/);
    assert.equal(sectionOf(report, 'files')?.state, SectionState.SECTION_STATE_IN_SYNC);
    // Unsupported sections do not hold the revision back from being applied.
    const status = JSON.parse((await runAgent(['status', '--json', '--root', fx.root])).stdout);
    assert.equal(status.appliedRevision, 3);
  });

  it('applies a desired state journaled just before a crash when it starts again, and reports its revisions in Hello', async () => {
    fx = await agentFixture();
    const crashing = fx.startAgent([], { IBEX_AGENT_FAILPOINTS: 'desired-written' });
    await fx.controller.waitForSession();
    fx.controller.send(desired(7, spec));
    await crashing.exitedWithin();
    assert.throws(() => statSync(join(fx!.root, 'etc/motd')), 'nothing was applied before the crash');
    const sessions = fx.controller.sessions.length;
    fx.startAgent();
    const s = await fx.controller.waitForSession(sessions);
    assert.equal(s.hello!.lastReceivedRevision, 7);
    const report = await finalReport(7);
    assert.equal(sectionOf(report, 'files')?.state, SectionState.SECTION_STATE_IN_SYNC);
    assert.equal(readFileSync(join(fx.root, 'etc/motd'), 'utf8'), 'managed by ibex\n');
  });

  it('reverts a file write interrupted by a crash before reconciling again', async () => {
    fx = await agentFixture();
    const crashing = fx.startAgent([], { IBEX_AGENT_FAILPOINTS: 'files-before-rename' });
    await fx.controller.waitForSession();
    fx.controller.send(desired(2, spec));
    await crashing.exitedWithin();
    assert.deepEqual(readdirSync(join(fx.root, 'etc')).map((n) => n.replace(/ibex-\w+/, 'ibex-X')), ['.motd.ibex-X.tmp']);
    assert.ok(existsSync(join(fx.dataDir, 'intents/files.json')));
    // The intent is on disk: the next start reverts (removes the half-made tree), then applies.
    const sessions = fx.controller.sessions.length;
    const restarted = fx.startAgent();
    await fx.controller.waitForSession(sessions);
    await restarted.waitForLine(/reverting an apply that was interrupted section=files/);
    const report = await finalReport(2);
    assert.deepEqual(readdirSync(join(fx.root, 'etc')).sort(), ['app', 'motd']);
    assert.equal(existsSync(join(fx.dataDir, 'intents/files.json')), false);
    assert.equal(sectionOf(report, 'files')?.state, SectionState.SECTION_STATE_IN_SYNC);
    assert.equal(readFileSync(join(fx.root, 'etc/app/app.conf'), 'utf8'), 'level=3\n');
  });

  it('plans a proposed desired state (state.plan): diffs per file, changes nothing; the current one is in sync', async () => {
    fx = await agentFixture();
    fx.startAgent();
    await fx.controller.waitForSession();
    fx.controller.send(desired(1, spec));
    await finalReport(1);
    const reportsBefore = fx.controller.stateReports().length;
    const planJob = async (id: string, params: unknown) => {
      fx!.controller.send({ $case: 'assign', value: { jobId: id, attempt: 1, type: 'state.plan', paramsJson: JSON.stringify(params), timeoutMs: 60_000, createdAtMs: 0 } });
      const r = await fx!.controller.waitFor(`the ${id} result`, () => fx!.controller.jobUpdates(id).find((u) => u.update?.$case === 'result'));
      if (r.update?.$case !== 'result') throw new Error('not a result');
      return r.update.value;
    };

    const proposed = {
      files: {
        entries: [
          { path: '/etc/motd', content: 'managed by ibex\nplanned line\n' },
          { path: '/etc/app/app.conf', content: 'level=4\n', mode: '0600' },
          { path: '/etc/new.conf', content: 'x=1\n' },
        ],
      },
    };
    const result = await planJob('plan-proposed', { spec: proposed });
    assert.equal(result.outcome, JobOutcome.JOB_OUTCOME_SUCCEEDED, result.error);
    const output = jobTypes['state.plan'].output.parse(JSON.parse(result.outputJson));
    assert.equal(output.revision, 1);
    assert.equal(output.proposed, true);
    const files = output.sections.find((x) => x.section === 'files');
    assert.equal(files?.state, 'pending');
    assert.deepEqual(
      files?.steps.map((x) => [x.path, x.diff]),
      [
        ['/etc/motd', '--- a/etc/motd\n+++ b/etc/motd\n@@ -1 +1,2 @@\n managed by ibex\n+planned line\n'],
        ['/etc/app/app.conf', undefined], // 0600: its content is not shown
        ['/etc/new.conf', '--- /dev/null\n+++ b/etc/new.conf\n@@ -0,0 +1 @@\n+x=1\n'],
      ],
    );
    // Nothing changed on the device, and a plan sends no state report.
    assert.equal(readFileSync(join(fx.root, 'etc/motd'), 'utf8'), 'managed by ibex\n');
    assert.equal(readFileSync(join(fx.root, 'etc/app/app.conf'), 'utf8'), 'level=3\n');
    assert.equal(existsSync(join(fx.root, 'etc/new.conf')), false);
    assert.equal(fx.controller.stateReports().length, reportsBefore);

    // Without a spec: the current desired revision, which is in sync.
    const current = jobTypes['state.plan'].output.parse(JSON.parse((await planJob('plan-current', {})).outputJson));
    assert.deepEqual(current, { revision: 1, proposed: false, sections: [{ section: 'files', state: 'in_sync', steps: [] }] });

    // A proposed spec that is not valid is refused with the field, before anything runs.
    const bad = await planJob('plan-bad', { spec: { files: { entries: [{ path: 'relative', content: 'x' }] } } });
    assert.equal(bad.outcome, JobOutcome.JOB_OUTCOME_REJECTED);
    assert.match(bad.error, /params\.spec\.files\.entries\[0\]\.path/);
  });
});
