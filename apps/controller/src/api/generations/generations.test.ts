import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { JobOutcome } from '@ibex/proto';
import type { GenerationsInventory } from '@ibex/spec';
import type { Prisma } from '../../generated/prisma/client.js';
import { auditRows, createDevice, expectError, expectStatus, jobScheduler } from '../../testing/api-fixtures.js';
import { FakeAgent, sampleFacts, sampleGenerations } from '../../testing/fake-agent.js';
import { startTestController, type TestController } from '../../testing/test-controller.js';
import { enrollDevice } from '../../gateway/testing/fixtures.js';

/** Facts as the gateway stores them, with an inventory. */
function factsWith(generations?: GenerationsInventory): Prisma.InputJsonValue {
  const { generationsJson: _, ...facts } = sampleFacts('edge');
  return JSON.parse(JSON.stringify({ ...facts, ...(generations ? { generations } : {}) })) as Prisma.InputJsonValue;
}

describe('generations API', () => {
  let c: TestController;
  const agents: FakeAgent[] = [];
  before(async () => {
    c = await startTestController({ env: { IBEX_HEARTBEAT_INTERVAL_MS: '200', IBEX_OFFLINE_AFTER_MS: '60000' } });
  });
  after(async () => {
    for (const a of agents) a.close();
    await c?.close();
  });

  const get = (device: string) => c.api(`/api/v1/devices/${device}/generations`);
  const rollback = (device: string, json: unknown) => c.api(`/api/v1/devices/${device}/generations/rollback`, { method: 'POST', json });
  const jobsOf = (deviceId: string) => c.prisma.job.findMany({ where: { deviceId } });

  it('answers 404 for an unknown device and supported: false for a device that reports no generations', async () => {
    await expectError(await get('nope'), 404, 'not_found');
    await createDevice(c, 'g-none');
    await createDevice(c, 'g-plain', { data: { facts: factsWith() } });
    for (const name of ['g-none', 'g-plain']) {
      const body = await expectStatus(await get(name), 200);
      assert.deepEqual({ ...body, deviceId: undefined }, {
        deviceId: undefined,
        deviceName: name,
        supported: false,
        volume: null,
        current: null,
        booted: null,
        lastGood: null,
        trial: null,
        generations: [],
        collectedAt: null,
      });
    }
    const view = await expectStatus(await c.api('/api/v1/devices/g-plain'), 200);
    assert.equal(view.generations, null);
  });

  it('shows the inventory the agent reported (through the gateway), and a summary on the device view only', async () => {
    const d = await enrollDevice(c, 'g-agent');
    const inv = sampleGenerations();
    const agent = await FakeAgent.connect(c.grpcAddress, d.credential, { facts: { ...sampleFacts('g-agent'), generationsJson: JSON.stringify(inv) } });
    agents.push(agent);
    const body = await expectStatus(await get('g-agent'), 200);
    assert.equal(body.deviceId, d.deviceId);
    assert.equal(body.supported, true);
    assert.equal(body.volume, '/mnt/ibex-root');
    assert.deepEqual([body.current, body.booted, body.lastGood], ['g3', 'g2', 'g2']);
    assert.deepEqual(body.trial, { id: 'g3', deadlineAt: new Date(inv.trial!.deadlineAtMs).toISOString(), bootsLeft: 2 });
    assert.equal(body.collectedAt, new Date(inv.collectedAtMs).toISOString());
    assert.deepEqual(
      body.generations.map((g: { id: string; status: string; booted: boolean; current: boolean; slot: number | null; complete: boolean }) => [g.id, g.status, g.booted, g.current, g.slot, g.complete]),
      [
        ['g3', 'trial', false, true, 0, true],
        ['g2', 'good', true, false, 1, true],
        ['g1', 'good', false, false, 2, true],
        ['g0', 'bad', false, false, 3, true],
        ['g4', 'trial', false, false, null, false],
      ],
    );
    assert.equal(body.generations[1].createdAt, new Date(inv.generations[1]!.createdAtMs!).toISOString());
    assert.equal(body.generations[4].createdAt, null);

    const view = await expectStatus(await c.api(`/api/v1/devices/${d.deviceId}`), 200);
    assert.deepEqual(view.generations, { current: 'g3', booted: 'g2', lastGood: 'g2', trial: 'g3', count: 5 });
    assert.equal('generations' in view.facts, false, 'the full inventory is not in the device view');
    const list = await expectStatus(await c.api('/api/v1/devices?limit=200'), 200);
    const item = list.items.find((x: { id: string }) => x.id === d.deviceId);
    assert.deepEqual(item.generations, view.generations);
    assert.equal('generations' in item.facts, false);
  });

  it('refuses a rollback the inventory does not allow, naming the field, and creates nothing', async () => {
    const none = await createDevice(c, 'g-rb-none', { data: { facts: factsWith() } });
    const e409 = await expectError(await rollback('g-rb-none', {}), 409, 'conflict');
    assert.match(e409.error.message, /reports no generations/);

    const d = await createDevice(c, 'g-rb-bad', { data: { facts: factsWith(sampleGenerations()) } });
    for (const [to, why] of [
      ['g9', /generation "g9" does not exist on the device \(it has: g3, g2, g1, g0, g4\)/],
      ['g4', /generation "g4" is incomplete/],
      ['g0', /generation "g0" is marked bad/],
      ['g3', /generation "g3" is already current/],
    ] as const) {
      const e = await expectError(await rollback('g-rb-bad', { to }), 400, 'validation_failed');
      assert.equal(e.error.issues?.[0]?.path, 'to');
      assert.match(e.error.issues![0]!.message, why);
      assert.match(e.error.message, /GET \/api\/v1\/devices\/g-rb-bad\/generations/);
    }
    for (const [json, path] of [
      [{ to: '' }, 'to'],
      [{ to: 'x'.repeat(129) }, 'to'],
      [{ reason: 'r'.repeat(1001) }, 'reason'],
      [{ to: 'g2', force: true }, ''],
    ] as const) {
      const e = await expectError(await rollback('g-rb-bad', json), 400, 'validation_failed');
      assert.ok(e.error.issues?.some((i) => i.path === path || (path === '' && /force/.test(i.message + i.path))), JSON.stringify(e.error));
    }
    await expectError(await rollback('nope', { to: 'g2' }), 404, 'not_found');

    // Only the current generation, a bad one and an unlinked one: no default target.
    const inv = sampleGenerations();
    // (g1 is complete and good but not linked: not a fallback the agent would pick.)
    const lonely = { ...inv, generations: inv.generations.filter((g) => g.id !== 'g2').map((g) => (g.id === 'g1' ? { ...g, slot: null } : g)) };
    const l = await createDevice(c, 'g-rb-lonely', { data: { facts: factsWith(lonely) } });
    assert.match((await expectError(await rollback('g-rb-lonely', {}), 409, 'conflict')).error.message, /no complete, not-bad fallback generation/);

    const r = await createDevice(c, 'g-rb-revoked', { revoked: true, data: { facts: factsWith(sampleGenerations()) } });
    assert.match((await expectError(await rollback('g-rb-revoked', { to: 'g2' }), 409, 'conflict')).error.message, /revoked/);

    for (const id of [none.id, d.id, l.id, r.id]) {
      assert.equal((await jobsOf(id)).length, 0, 'no job');
      assert.equal((await auditRows(c, 'device.generations.rollback', id)).length, 0, 'no audit row');
    }
  });

  it('queues a generations.rollback job, audits it, tells the scheduler, and refuses a second one while it is unfinished', async (t) => {
    const jobCreated = t.mock.method(jobScheduler(c), 'jobCreated', async () => {});
    const d = await createDevice(c, 'g-rb-ok', { data: { facts: factsWith(sampleGenerations()) } });
    const job = await expectStatus(await rollback('g-rb-ok', { to: 'g1', reason: 'kernel panics on boot' }), 201);
    assert.equal(job.type, 'generations.rollback');
    assert.equal(job.deviceId, d.id);
    assert.equal(job.status, 'queued');
    assert.deepEqual(job.params, { to: 'g1', reason: 'kernel panics on boot' });
    assert.equal(job.maxAttempts, 1);
    assert.equal(job.timeoutSeconds, 300);
    assert.equal(jobCreated.mock.callCount(), 1);
    const [audit] = await auditRows(c, 'device.generations.rollback', d.id);
    assert.deepEqual(audit?.data, { name: 'g-rb-ok', jobId: job.id, to: 'g1', reason: 'kernel panics on boot', current: 'g3', booted: 'g2' });
    assert.equal((await auditRows(c, 'job.create', job.id)).length, 1);

    const again = await expectError(await rollback('g-rb-ok', {}), 409, 'conflict');
    assert.match(again.error.message, new RegExp(`already has a rollback job \\(${job.id}, queued\\)`));
    await c.prisma.job.update({ where: { id: job.id }, data: { status: 'failed', finishedAt: new Date() } });
    const second = await expectStatus(await rollback('g-rb-ok', {}), 201);
    assert.deepEqual(second.params, {}, 'no `to`: the agent picks the previous generation');
  });

  it('delivers the job to the agent; its result (the new inventory) becomes the inventory shown', async () => {
    const d = await enrollDevice(c, 'g-loop');
    const inv = sampleGenerations();
    const agent = await FakeAgent.connect(c.grpcAddress, d.credential, { facts: { ...sampleFacts('g-loop'), generationsJson: JSON.stringify(inv) } });
    agents.push(agent);
    const job = await expectStatus(await rollback('g-loop', { to: 'g2' }), 201);
    const assign = await agent.next('assign');
    assert.equal(assign.jobId, job.id);
    assert.equal(assign.type, 'generations.rollback');
    assert.deepEqual(JSON.parse(assign.paramsJson), { to: 'g2' });

    const after: GenerationsInventory = {
      ...inv,
      current: 'g2',
      trial: null,
      generations: inv.generations.map((g) => ({ ...g, current: g.id === 'g2', status: g.id === 'g3' ? 'bad' : g.status })),
      collectedAtMs: inv.collectedAtMs + 1000,
    };
    agent.send({
      $case: 'jobUpdate',
      value: { updateId: `${job.id}:1:result:1`, jobId: job.id, attempt: assign.attempt, update: { $case: 'result', value: { outcome: JobOutcome.JOB_OUTCOME_SUCCEEDED, outputJson: JSON.stringify(after), error: '', retryable: false, finishedAtMs: Date.now() } } },
    });
    await agent.acked(`${job.id}:1:result:1`);
    const done = await expectStatus(await c.api(`/api/v1/jobs/${job.id}`), 200);
    assert.equal(done.status, 'succeeded');
    assert.deepEqual(done.result, after);
    const body = await expectStatus(await get('g-loop'), 200);
    assert.equal(body.current, 'g2');
    assert.equal(body.trial, null);
    assert.equal(body.generations.find((g: { id: string }) => g.id === 'g3').status, 'bad');

    // The agent reports facts after the switch too: a result carrying an older inventory than
    // the stored one (collected later) does not bring the old state back.
    const job2 = await expectStatus(await rollback('g-loop', { to: 'g1' }), 201);
    const assign2 = await agent.next('assign', (a) => a.jobId === job2.id);
    const newer = { ...after, current: 'g1', generations: after.generations.map((g) => ({ ...g, current: g.id === 'g1' })), collectedAtMs: after.collectedAtMs + 5000 };
    agent.send({ $case: 'facts', value: { facts: { ...sampleFacts('g-loop'), generationsJson: JSON.stringify(newer) } } });
    const older = { ...after, collectedAtMs: after.collectedAtMs + 2000 };
    agent.send({
      $case: 'jobUpdate',
      value: { updateId: `${job2.id}:1:result:1`, jobId: job2.id, attempt: assign2.attempt, update: { $case: 'result', value: { outcome: JobOutcome.JOB_OUTCOME_SUCCEEDED, outputJson: JSON.stringify(older), error: '', retryable: false, finishedAtMs: Date.now() } } },
    });
    await agent.acked(`${job2.id}:1:result:1`);
    assert.equal((await expectStatus(await c.api(`/api/v1/jobs/${job2.id}`), 200)).status, 'succeeded');
    const shown = await expectStatus(await get('g-loop'), 200);
    assert.equal(shown.current, 'g1');
    assert.equal(shown.collectedAt, new Date(newer.collectedAtMs).toISOString());
  });
});
