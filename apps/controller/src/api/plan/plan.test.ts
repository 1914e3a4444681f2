import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { auditRows, createDevice, expectError, expectStatus, jobScheduler } from '../../testing/api-fixtures.js';
import { startTestController, type TestController } from '../../testing/test-controller.js';

const proposed = { files: { entries: [{ path: '/etc/motd', content: 'planned\n' }] } };

describe('plan (dry run) endpoint', () => {
  let c: TestController;
  let deviceId: string;
  before(async () => {
    c = await startTestController();
    deviceId = (await createDevice(c, 'p1', { online: true })).id;
    await createDevice(c, 'p-empty');
    await createDevice(c, 'p-revoked', { revoked: true });
  });
  after(() => c?.close());

  const plan = (device: string, json: unknown, query = '') => c.api(`/api/v1/devices/${device}/plan${query}`, { method: 'POST', json });
  const jobCount = () => c.prisma.job.count();

  it('queues a state.plan job with the proposed spec (defaults filled in), audits it and tells the scheduler', async (t) => {
    const jobCreated = t.mock.method(jobScheduler(c), 'jobCreated', async () => {});
    const job = await expectStatus(await plan('p1', { spec: proposed, sections: ['files'], timeoutSeconds: 30 }), 201);
    assert.equal(job.type, 'state.plan');
    assert.equal(job.status, 'queued');
    assert.equal(job.deviceId, deviceId);
    assert.equal(job.timeoutSeconds, 30);
    assert.deepEqual(job.params, { spec: { files: { entries: [{ path: '/etc/motd', content: 'planned\n', ensure: 'present', encoding: 'utf8', mode: '0644' }] } }, sections: ['files'] });
    assert.equal(job.result, null);
    assert.deepEqual(job.logs, []);
    assert.equal(jobCreated.mock.callCount(), 1);
    const [audit] = await auditRows(c, 'job.create', job.id);
    assert.deepEqual(audit?.data, { deviceId, deviceName: 'p1', type: 'state.plan' });
    // The operator follows it like any job.
    assert.equal((await expectStatus(await c.api(`/api/v1/jobs/${job.id}`), 200)).id, job.id);
  });

  it('refuses a bad proposed spec with the field path, creating nothing', async () => {
    const count = await jobCount();
    const bad = await expectError(await plan('p1', { spec: { files: { entries: [{ path: 'etc/motd', content: 'x' }] }, nosuch: {} }, sections: [''] }), 400, 'validation_failed');
    assert.deepEqual(bad.error.issues?.map((i) => i.path).sort(), ['sections[0]', 'spec.files.entries[0].path', 'spec.nosuch']);
    for (const [query, message] of [
      ['?wait=9999', 'must be 0-120'],
      ['?wait=-1', 'must be 0-120'],
      ['?wait=1.5', 'must be a whole number'],
      ['?wait=soon', 'must be a number of seconds'],
    ]) {
      const e = await expectError(await plan('p1', {}, query), 400, 'validation_failed');
      assert.deepEqual(e.error.issues?.map((i) => [i.path, i.message]), [['wait', message]], query);
    }
    const unknown = await expectError(await plan('p1', {}, '?wiat=5'), 400, 'validation_failed');
    assert.match(JSON.stringify(unknown.error.issues), /wiat/);
    await expectError(await plan('p1', { timeoutSeconds: 0 }), 400, 'validation_failed');
    assert.equal(await jobCount(), count);
  });

  it('404 for an unknown device; 409 without a spec when there is no desired state, or for a revoked device', async () => {
    const count = await jobCount();
    await expectError(await plan('nope', { spec: proposed }), 404, 'not_found');
    const none = await expectError(await plan('p-empty', {}), 409, 'conflict');
    assert.match(none.error.message, /has no desired state to plan; send a proposed one as "spec"/);
    await expectError(await plan('p-revoked', { spec: proposed }), 409, 'conflict');
    assert.equal(await jobCount(), count);
  });

  it('plans the current desired revision when no spec is given', async (t) => {
    t.mock.method(jobScheduler(c), 'jobCreated', async () => {});
    await expectStatus(await c.api('/api/v1/devices/p1/desired-state', { method: 'PUT', json: { spec: proposed } }), 200);
    const job = await expectStatus(await plan('p1', {}), 201);
    assert.deepEqual(job.params, {});
  });

  it('with ?wait returns the finished job when the result arrives in time, the queued one when not', async (t) => {
    t.mock.method(jobScheduler(c), 'jobCreated', async () => {});
    const output = { revision: 1, proposed: true, sections: [{ section: 'files', state: 'pending', steps: [{ action: 'write', text: 'write /etc/motd', diff: '--- a/etc/motd\n' }] }] };
    // What the gateway does when the agent's result comes: the row is the truth.
    const finishSoon = async () => {
      for (let i = 0; i < 100; i++) {
        const j = await c.prisma.job.findFirst({ where: { deviceId, type: 'state.plan', status: 'queued', params: { path: ['sections'], equals: ['files', 'waited'] } } });
        if (j) {
          await new Promise((r) => setTimeout(r, 300));
          await c.prisma.job.update({ where: { id: j.id }, data: { status: 'succeeded', result: output, finishedAt: new Date(), attempt: 1 } });
          return;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    const started = Date.now();
    const [res] = await Promise.all([plan('p1', { spec: proposed, sections: ['files', 'waited'] }, '?wait=20'), finishSoon()]);
    const job = await expectStatus(res, 201);
    assert.equal(job.status, 'succeeded');
    assert.deepEqual(job.result, output);
    assert.ok(Date.now() - started < 10_000, 'answered as soon as the job finished');

    const t0 = Date.now();
    const waited = await expectStatus(await plan('p1', { spec: proposed }, '?wait=1'), 201);
    assert.equal(waited.status, 'queued');
    assert.ok(Date.now() - t0 >= 900, 'waited about a second');
  });

  it('stops waiting when the client hangs up (the job stays queued)', async (t) => {
    t.mock.method(jobScheduler(c), 'jobCreated', async () => {});
    // Count the service's reads of the job row (Prisma delegates are proxies: t.mock.method cannot wrap them).
    const delegate = c.prisma.job as unknown as { findUnique: (...args: unknown[]) => unknown };
    const original = delegate.findUnique.bind(c.prisma.job);
    let reads = 0;
    delegate.findUnique = (...args) => (reads++, original(...args));
    t.after(() => void (delegate.findUnique = original));
    const hangUp = new AbortController();
    const res = c.api('/api/v1/devices/p1/plan?wait=20', { method: 'POST', json: { spec: proposed, sections: ['hang-up'] }, signal: hangUp.signal });
    await new Promise((r) => setTimeout(r, 600));
    hangUp.abort();
    await assert.rejects(res, { name: 'AbortError' });
    await new Promise((r) => setTimeout(r, 300));
    const atHangUp = reads;
    await new Promise((r) => setTimeout(r, 1000));
    assert.ok(atHangUp >= 2, `polled ${atHangUp} times while waiting`);
    assert.equal(reads, atHangUp, 'no more polling after the client left');
    const job = await c.prisma.job.findFirstOrThrow({ where: { deviceId, params: { path: ['sections'], equals: ['hang-up'] } } });
    assert.equal(job.status, 'queued');
  });

  it('is documented with its body, the PlanResult schema and examples', async () => {
    const doc = await expectStatus(await c.api('/api/docs-json', { token: null }), 200);
    const op = doc.paths['/api/v1/devices/{device}/plan'].post;
    assert.equal(op.requestBody.content['application/json'].schema.$ref, '#/components/schemas/PlanDevice');
    assert.deepEqual(Object.keys(op.responses).sort(), ['201', '400', '401', '403', '404', '409', '413']);
    assert.ok(op.parameters.some((p: { name: string; in: string }) => p.name === 'wait' && p.in === 'query'));
    assert.ok(doc.components.schemas.PlanDevice.example.spec.files, 'a body example with a proposed spec');
    assert.equal(doc.components.schemas.PlanResult.example.sections[0].steps[0].action, 'write');
  });
});
