import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SectionState, type SectionStatus } from '@ibex/proto';
import { watchConcurrency } from '../../testing/concurrency.js';
import { FakeAgent } from '../../testing/fake-agent.js';
import { startTestController, type TestController } from '../../testing/test-controller.js';
import { createJob, enrollDevice, filesSpec, setDesiredState } from '../testing/fixtures.js';
import { StateReports } from './state-reports.service.js';

function section(state: SectionState, error = ''): SectionStatus {
  return { section: 'files', state, error, detailJson: '{"steps":[]}', observedAtMs: Date.now() };
}

describe('desired state', () => {
  let c: TestController;
  const agents: FakeAgent[] = [];
  const connect = async (credential: string, lastReceivedRevision = 0) => {
    const a = await FakeAgent.connect(c.grpcAddress, credential, { lastReceivedRevision, lastAppliedRevision: lastReceivedRevision });
    agents.push(a);
    return a;
  };

  before(async () => {
    c = await startTestController({ env: { IBEX_OFFLINE_AFTER_MS: '60000' } });
  });
  after(async () => {
    for (const a of agents) a.close();
    await c?.close();
  });

  it('delivers the desired revision on connect only when the agent does not have it', async () => {
    const device = await enrollDevice(c, 'fresh');
    const revision = await setDesiredState(c, device.deviceId, filesSpec('hello\n'));
    const first = await connect(device.credential);
    const desired = await first.next('desired');
    assert.equal(desired.revision, revision);
    assert.deepEqual(JSON.parse(desired.specJson), filesSpec('hello\n'));
    first.close();

    const second = await connect(device.credential, revision);
    // The pass sends the desired state before jobs: once this job arrives, no desired state will.
    const j = await createJob(c, device.deviceId);
    await second.next('assign', (a) => a.jobId === j.id);
    assert.equal(second.all('desired').length, 0);
  });

  it('delivers a new revision to a connected agent when kicked', async () => {
    const device = await enrollDevice(c, 'kicked');
    const agent = await connect(device.credential);
    const r1 = await setDesiredState(c, device.deviceId, filesSpec('one\n'));
    assert.equal((await agent.next('desired')).revision, r1);
    const r2 = await setDesiredState(c, device.deviceId, filesSpec('two\n'));
    const d2 = await agent.next('desired');
    assert.equal(d2.revision, r2);
    assert.deepEqual(JSON.parse(d2.specJson), filesSpec('two\n'));
  });

  it('stores state reports, acks them and tracks received/applied revisions; a report for an older revision changes nothing', async () => {
    const device = await enrollDevice(c, 'reporter');
    const r1 = await setDesiredState(c, device.deviceId, filesSpec('v1\n'));
    const agent = await connect(device.credential);
    await agent.next('desired');
    const row = () => c.prisma.device.findUniqueOrThrow({ where: { id: device.deviceId }, include: { sections: true } });

    agent.send({ $case: 'stateReport', value: { reportId: 'rep-1', revision: r1, sections: [section(SectionState.SECTION_STATE_APPLYING)] } });
    await agent.acked('rep-1');
    let d = await row();
    assert.deepEqual([d.receivedRevision, d.appliedRevision], [r1, 0]);
    assert.deepEqual(
      d.sections.map((s) => [s.section, s.state, s.revision]),
      [['files', 'applying', r1]],
    );

    agent.send({ $case: 'stateReport', value: { reportId: 'rep-2', revision: r1, sections: [section(SectionState.SECTION_STATE_IN_SYNC)] } });
    await agent.acked('rep-2');
    d = await row();
    assert.deepEqual([d.receivedRevision, d.appliedRevision], [r1, r1]);
    assert.equal(d.sections[0]?.state, 'in_sync');
    assert.deepEqual(d.sections[0]?.detail, { steps: [] });

    const r2 = await setDesiredState(c, device.deviceId, filesSpec('v2\n'));
    await agent.next('desired', (x) => x.revision === r2);
    agent.send({ $case: 'stateReport', value: { reportId: 'rep-3', revision: r2, sections: [section(SectionState.SECTION_STATE_FAILED, 'permission denied')] } });
    await agent.acked('rep-3');
    d = await row();
    assert.deepEqual([d.receivedRevision, d.appliedRevision], [r2, r1]);
    assert.deepEqual([d.sections[0]?.state, d.sections[0]?.revision, d.sections[0]?.error], ['failed', r2, 'permission denied']);

    // A late report for revision 1 (sent before, delivered after) is acked and ignored.
    agent.send({ $case: 'stateReport', value: { reportId: 'rep-late', revision: r1, sections: [section(SectionState.SECTION_STATE_IN_SYNC)] } });
    await agent.acked('rep-late');
    d = await row();
    assert.deepEqual([d.sections[0]?.state, d.sections[0]?.revision], ['failed', r2]);
    assert.deepEqual([d.receivedRevision, d.appliedRevision], [r2, r1]);

    // Unsupported counts as applied: the agent cannot do better, and says so.
    agent.send({ $case: 'stateReport', value: { reportId: 'rep-4', revision: r2, sections: [section(SectionState.SECTION_STATE_UNSUPPORTED, 'no capability')] } });
    await agent.acked('rep-4');
    assert.equal((await row()).appliedRevision, r2);
  });
});

describe('state reports in a burst', () => {
  let c: TestController;
  before(async () => {
    c = await startTestController({ env: { IBEX_OFFLINE_AFTER_MS: '60000' } });
  });
  after(async () => {
    await c?.close();
  });
  const ok = (name: string, observedAtMs = Date.now()) => ({ section: name, state: 'in_sync' as const, error: '', detailJson: '', observedAtMs });

  it('stores 60 reports sent at once in a few batch transactions, none given up', async () => {
    const reports = c.app.get(StateReports);
    const devices = await Promise.all(Array.from({ length: 60 }, (_, i) => enrollDevice(c, `burst-${i}`)));
    const revisions = await Promise.all(devices.map((d) => setDesiredState(c, d.deviceId, filesSpec('burst\n'))));
    // Counted from here: only the reports' transactions.
    const txs = watchConcurrency(c.prisma, '$transaction');
    try {
      await Promise.all(devices.map((d, i) => reports.store(d.deviceId, { reportId: `burst-${i}`, revision: revisions[i]!, sections: [ok('files')] })));
    } finally {
      txs.restore();
    }
    assert.ok(txs.calls <= 3 && txs.most <= 3, `${txs.calls} transactions, ${txs.most} at once, for 60 reports`);
    const rows = await c.prisma.device.findMany({ where: { id: { in: devices.map((d) => d.deviceId) } }, select: { appliedRevision: true, desiredRevision: true } });
    assert.equal(rows.filter((r) => r.appliedRevision === r.desiredRevision && r.appliedRevision > 0).length, 60);
  });

  it('stores the others of a batch one by one when one report is refused by the database', async () => {
    const reports = c.app.get(StateReports);
    const [good, bad] = await Promise.all(['b-good', 'b-bad'].map((n) => enrollDevice(c, n)));
    const rGood = await setDesiredState(c, good!.deviceId, filesSpec('good\n'));
    const rBad = await setDesiredState(c, bad!.deviceId, filesSpec('bad\n'));
    // Not JSON: the gateway refuses it at the edge; here it reaches the database, which refuses the cast.
    const [okResult, badResult] = await Promise.allSettled([
      reports.store(good!.deviceId, { reportId: 'g', revision: rGood, sections: [ok('files')] }),
      reports.store(bad!.deviceId, { reportId: 'b', revision: rBad, sections: [{ ...ok('files'), detailJson: '{not json' }] }),
    ]);
    assert.equal(okResult.status, 'fulfilled');
    assert.equal(badResult.status, 'rejected');
    const dev = (id: string) => c.prisma.device.findUniqueOrThrow({ where: { id }, select: { appliedRevision: true } });
    assert.equal((await dev(good!.deviceId)).appliedRevision, rGood);
    assert.equal((await dev(bad!.deviceId)).appliedRevision, 0);
  });

  it('works out applied per device within one batch, keeps a device\'s reports in order, and never goes back', async () => {
    const reports = c.app.get(StateReports);
    const [full, partial, unknown, twice] = await Promise.all(['b-full', 'b-partial', 'b-unknown', 'b-twice'].map((n) => enrollDevice(c, n)));
    const spec = { files: { entries: [{ path: '/etc/a', content: 'a' }] }, network: { interfaces: [] } };
    const rFull = await setDesiredState(c, full!.deviceId, spec);
    const rPartial = await setDesiredState(c, partial!.deviceId, spec);
    const r1 = await setDesiredState(c, twice!.deviceId, filesSpec('one\n'));
    const r2 = await setDesiredState(c, twice!.deviceId, filesSpec('two\n'));
    const t = Date.now();
    await Promise.all([
      reports.store(full!.deviceId, { reportId: 'f', revision: rFull, sections: [ok('files'), ok('network')] }),
      // One of the spec's two sections: received, not applied.
      reports.store(partial!.deviceId, { reportId: 'p', revision: rPartial, sections: [ok('files')] }),
      // A revision the controller has no spec for: the report's own sections decide (a repeated
      // name is stored once, the later observation winning).
      reports.store(unknown!.deviceId, { reportId: 'u', revision: 7, sections: [{ ...ok('files', t), state: 'failed', error: 'old' }, ok('files', t + 1)] }),
      reports.store(twice!.deviceId, { reportId: 't1', revision: r1, sections: [ok('files', t)] }),
      reports.store(twice!.deviceId, { reportId: 't2', revision: r2, sections: [ok('files', t + 1)] }),
    ]);
    const dev = (id: string) => c.prisma.device.findUniqueOrThrow({ where: { id }, select: { receivedRevision: true, appliedRevision: true } });
    assert.deepEqual(await dev(full!.deviceId), { receivedRevision: rFull, appliedRevision: rFull });
    assert.deepEqual(await dev(partial!.deviceId), { receivedRevision: rPartial, appliedRevision: 0 });
    assert.deepEqual(await dev(unknown!.deviceId), { receivedRevision: 7, appliedRevision: 7 });
    const u = await c.prisma.deviceSectionState.findMany({ where: { deviceId: unknown!.deviceId } });
    assert.deepEqual(u.map((s) => [s.section, s.state, s.error]), [['files', 'in_sync', null]]);
    assert.deepEqual(await dev(twice!.deviceId), { receivedRevision: r2, appliedRevision: r2 });
    // A late re-send of the older report changes nothing.
    await reports.store(twice!.deviceId, { reportId: 't1', revision: r1, sections: [ok('files', t)] });
    assert.deepEqual(await dev(twice!.deviceId), { receivedRevision: r2, appliedRevision: r2 });
    const rows = await c.prisma.deviceSectionState.findMany({ where: { deviceId: twice!.deviceId } });
    assert.deepEqual(rows.map((s) => [s.section, s.revision]), [['files', r2]]);
  });
});
