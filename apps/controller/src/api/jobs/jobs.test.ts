import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { JobStatus } from '../../generated/prisma/client.js';
import { auditRows, createDevice, expectError, expectStatus, jobScheduler } from '../../testing/api-fixtures.js';
import { startTestController, type TestController } from '../../testing/test-controller.js';
import { FINISHED, INLINE_LOG_EVENTS } from './jobs.service.js';

describe('jobs', () => {
  let c: TestController;
  let deviceId: string;
  before(async () => {
    c = await startTestController();
    deviceId = (await createDevice(c, 'j1', { online: true })).id;
    await createDevice(c, 'j2');
  });
  after(() => c?.close());

  const create = (device: string, json: unknown) => c.api(`/api/v1/devices/${device}/jobs`, { method: 'POST', json });
  /** A job row in a given status, as the gateway would have left it. */
  const jobIn = async (status: JobStatus) =>
    (
      await c.prisma.job.create({
        data: { deviceId, type: 'facts.collect', status, attempt: status === 'queued' ? 0 : 1, timeoutMs: 60_000, expiresAt: new Date(Date.now() + 3_600_000), ...(FINISHED.includes(status) ? { finishedAt: new Date() } : {}) },
      })
    ).id;

  it('queues a job with the type defaults, audits it, then tells the scheduler', async (t) => {
    const statusAtCall: string[] = [];
    const jobCreated = t.mock.method(jobScheduler(c), 'jobCreated', async (job: { id: string }) => {
      statusAtCall.push((await c.prisma.job.findUniqueOrThrow({ where: { id: job.id } })).status);
    });
    const before = Date.now();
    const job = await expectStatus(await create('j1', { type: 'facts.collect' }), 201);
    assert.equal(job.status, 'queued');
    assert.equal(job.deviceId, deviceId);
    assert.equal(job.attempt, 0);
    assert.equal(job.maxAttempts, 3);
    assert.equal(job.timeoutSeconds, 60);
    assert.deepEqual(job.params, {});
    const expiresIn = Date.parse(job.expiresAt) - before;
    assert.ok(Math.abs(expiresIn - c.config.jobDefaultExpiryMs) < 60_000, `expires in ${expiresIn} ms`);
    const row = await c.prisma.job.findUniqueOrThrow({ where: { id: job.id } });
    assert.equal(row.timeoutMs, 60_000);
    assert.equal(jobCreated.mock.callCount(), 1);
    assert.deepEqual(jobCreated.mock.calls[0]?.arguments[0], { id: job.id, deviceId, expiresAt: row.expiresAt });
    assert.deepEqual(statusAtCall, ['queued'], 'the row was committed before the scheduler heard of it');
    const [audit] = await auditRows(c, 'job.create', job.id);
    assert.equal((audit?.data as { type: string }).type, 'facts.collect');
  });

  it('takes overrides and validated params (with their defaults)', async (t) => {
    t.mock.method(jobScheduler(c), 'jobCreated', async () => {});
    const job = await expectStatus(
      await create(deviceId, { type: 'state.apply', params: { sections: ['files'] }, timeoutSeconds: 30, expiresInSeconds: 120, maxAttempts: 5 }),
      201,
    );
    assert.deepEqual(job.params, { sections: ['files'], dryRun: false });
    assert.deepEqual([job.timeoutSeconds, job.maxAttempts], [30, 5]);
    assert.ok(Math.abs(Date.parse(job.expiresAt) - Date.parse(job.createdAt) - 120_000) < 5_000);
  });

  it('refuses unknown types and bad params naming the field, and revoked or unknown devices', async (t) => {
    const jobCreated = t.mock.method(jobScheduler(c), 'jobCreated', async () => {});
    const count = await c.prisma.job.count();
    const type = await expectError(await create('j1', { type: 'shell.exec' }), 400, 'validation_failed');
    assert.equal(type.error.issues?.[0]?.path, 'type');
    assert.match(type.error.message, /facts\.collect/);
    const params = await expectError(await create('j1', { type: 'state.apply', params: { dryRun: 'yes', extra: 1 } }), 400, 'validation_failed');
    assert.deepEqual(params.error.issues?.map((i) => i.path).sort(), ['params.dryRun', 'params.extra']);
    await expectError(await create('j1', { type: 'facts.collect', timeoutSeconds: 0 }), 400, 'validation_failed');
    await createDevice(c, 'j-revoked', { revoked: true });
    const revoked = await expectError(await create('j-revoked', { type: 'facts.collect' }), 409, 'conflict');
    assert.match(revoked.error.message, /revoked/);
    await expectError(await create('nope', { type: 'facts.collect' }), 404, 'not_found');
    assert.equal(await c.prisma.job.count(), count);
    assert.equal(jobCreated.mock.callCount(), 0);
  });

  it('lists jobs newest first, filtered by device, status and type, paginated', async (t) => {
    t.mock.method(jobScheduler(c), 'jobCreated', async () => {});
    const other = await expectStatus(await create('j2', { type: 'state.apply' }), 201);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.unshift((await expectStatus(await create('j1', { type: 'facts.collect' }), 201)).id);
    const all = await expectStatus(await c.api('/api/v1/jobs?limit=1000'), 200);
    const createdAt = all.items.map((j: { createdAt: string }) => Date.parse(j.createdAt));
    assert.deepEqual(createdAt, [...createdAt].sort((a, b) => b - a), 'newest first');

    const byName = await expectStatus(await c.api('/api/v1/jobs?device=j2'), 200);
    assert.deepEqual(byName.items.map((j: { id: string }) => j.id), [other.id]);
    const byId = await expectStatus(await c.api(`/api/v1/jobs?deviceId=${other.deviceId}`), 200);
    assert.deepEqual(byId.items.map((j: { id: string }) => j.id), [other.id]);
    const byType = await expectStatus(await c.api('/api/v1/jobs?type=state.apply&device=j2'), 200);
    assert.equal(byType.items.length, 1);

    const running = await jobIn('running');
    const byStatus = await expectStatus(await c.api('/api/v1/jobs?status=running,delivered'), 200);
    assert.deepEqual(byStatus.items.map((j: { id: string }) => j.id), [running]);
    const bad = await expectError(await c.api('/api/v1/jobs?status=queued,done'), 400, 'validation_failed');
    assert.match(bad.error.message, /"done"/);
    await expectError(await c.api('/api/v1/jobs?device=ghost'), 404, 'not_found');

    const page1 = await expectStatus(await c.api('/api/v1/jobs?device=j1&type=facts.collect&status=queued&limit=2'), 200);
    const page2 = await expectStatus(await c.api(`/api/v1/jobs?device=j1&type=facts.collect&status=queued&limit=2&cursor=${page1.nextCursor}`), 200);
    const paged = [...page1.items, ...page2.items].map((j: { id: string }) => j.id);
    assert.deepEqual(paged.slice(0, 3), ids, 'the three newest queued facts.collect jobs come first, in order');
    assert.equal(new Set(paged).size, paged.length);
  });

  it('shows a job with progress, result and its log lines', async () => {
    const id = await jobIn('running');
    await c.prisma.job.update({ where: { id }, data: { progressPercent: 40, progressMessage: 'reading interfaces', startedAt: new Date(), deliveredAt: new Date() } });
    await c.prisma.jobEvent.createMany({
      data: [
        { updateId: `${id}:1:log:0`, jobId: id, attempt: 1, kind: 'log', data: { lines: [{ tsMs: 1_700_000_000_000, level: 'info', text: 'start' }] } },
        { updateId: `${id}:1:progress:0`, jobId: id, attempt: 1, kind: 'progress', data: { percent: 40 } },
        { updateId: `${id}:1:log:1`, jobId: id, attempt: 1, kind: 'log', data: { lines: [{ tsMs: 1_700_000_001_000, level: 'warn', text: 'eth1 down' }, { tsMs: 1_700_000_002_000, level: 'info', text: 'done' }] } },
        { updateId: `${id}:1:log:2`, jobId: id, attempt: 1, kind: 'log', data: { garbage: true } },
      ],
    });
    const job = await expectStatus(await c.api(`/api/v1/jobs/${id}`), 200);
    assert.deepEqual(job.progress, { percent: 40, message: 'reading interfaces' });
    assert.equal(job.attempt, 1);
    assert.ok(job.startedAt);
    assert.deepEqual(job.logs, [
      { attempt: 1, at: '2023-11-14T22:13:20.000Z', level: 'info', text: 'start' },
      { attempt: 1, at: '2023-11-14T22:13:21.000Z', level: 'warn', text: 'eth1 down' },
      { attempt: 1, at: '2023-11-14T22:13:22.000Z', level: 'info', text: 'done' },
    ]);
    assert.equal(job.logsTruncated, false);
    await expectError(await c.api('/api/v1/jobs/00000000-0000-4000-8000-000000000000'), 404, 'not_found');
    await expectError(await c.api('/api/v1/jobs/not-an-id'), 404, 'not_found');
  });

  it('pages log lines oldest first and lets a client follow new ones', async () => {
    const id = await jobIn('running');
    const log = (n: number) => ({ updateId: `${id}:1:log:${n}`, jobId: id, attempt: 1, kind: 'log', data: { lines: [{ tsMs: 1_700_000_000_000 + n, level: 'info', text: `line ${n}` }] } });
    await c.prisma.jobEvent.createMany({ data: Array.from({ length: INLINE_LOG_EVENTS + 5 }, (_, n) => log(n)) });
    const detail = await expectStatus(await c.api(`/api/v1/jobs/${id}`), 200);
    assert.equal(detail.logsTruncated, true);
    assert.equal(detail.logs.length, INLINE_LOG_EVENTS);
    assert.equal(detail.logs.at(-1).text, `line ${INLINE_LOG_EVENTS + 4}`, 'the latest lines are shown');

    const texts: string[] = [];
    let cursor: string | null = null;
    let more = true;
    while (more) {
      const page: { lines: Array<{ text: string }>; nextCursor: string | null; more: boolean } = await expectStatus(
        await c.api(`/api/v1/jobs/${id}/logs?limit=100${cursor ? `&cursor=${cursor}` : ''}`),
        200,
      );
      texts.push(...page.lines.map((l) => l.text));
      cursor = page.nextCursor;
      more = page.more;
    }
    assert.deepEqual(texts, Array.from({ length: INLINE_LOG_EVENTS + 5 }, (_, n) => `line ${n}`));
    const idle = await expectStatus(await c.api(`/api/v1/jobs/${id}/logs?cursor=${cursor}`), 200);
    assert.deepEqual(idle.lines, []);
    assert.equal(idle.nextCursor, cursor, 'nothing new: the same cursor to poll with');
    await c.prisma.jobEvent.create({ data: log(9999) });
    const fresh = await expectStatus(await c.api(`/api/v1/jobs/${id}/logs?cursor=${cursor}`), 200);
    assert.deepEqual(fresh.lines.map((l: { text: string }) => l.text), ['line 9999']);
  });

  it('cancels a queued job at once without bothering the agent', async (t) => {
    const cancelRequested = t.mock.method(jobScheduler(c), 'cancelRequested', async () => {});
    const id = await jobIn('queued');
    const job = await expectStatus(await c.api(`/api/v1/jobs/${id}/cancel`, { method: 'POST' }), 200);
    assert.equal(job.status, 'cancelled');
    assert.ok(job.finishedAt);
    assert.equal((await c.prisma.job.findUniqueOrThrow({ where: { id } })).status, 'cancelled');
    assert.equal(cancelRequested.mock.callCount(), 0);
    const [audit] = await auditRows(c, 'job.cancel', id);
    assert.deepEqual(audit?.data, { deviceId, type: 'facts.collect', statusBefore: 'queued', cancelled: true });
  });

  for (const status of ['delivered', 'running'] as const) {
    it(`asks the agent to cancel a ${status} job`, async (t) => {
      const seen: Array<Date | null> = [];
      const cancelRequested = t.mock.method(jobScheduler(c), 'cancelRequested', async (job: { id: string }) => {
        seen.push((await c.prisma.job.findUniqueOrThrow({ where: { id: job.id } })).cancelRequestedAt);
      });
      const id = await jobIn(status);
      const job = await expectStatus(await c.api(`/api/v1/jobs/${id}/cancel`, { method: 'POST' }), 200);
      assert.equal(job.status, status, 'it ends when the agent confirms');
      assert.ok(job.cancelRequestedAt);
      assert.deepEqual(cancelRequested.mock.calls.map((call) => call.arguments[0]), [{ id, deviceId }]);
      assert.ok(seen[0], 'cancelRequestedAt was committed before the scheduler was told');
      // Asking again keeps the first request time and tells the agent again.
      const again = await expectStatus(await c.api(`/api/v1/jobs/${id}/cancel`, { method: 'POST' }), 200);
      assert.equal(again.cancelRequestedAt, job.cancelRequestedAt);
      assert.equal(cancelRequested.mock.callCount(), 2);
    });
  }

  for (const status of FINISHED) {
    it(`refuses to cancel a ${status} job`, async (t) => {
      const cancelRequested = t.mock.method(jobScheduler(c), 'cancelRequested', async () => {});
      const id = await jobIn(status);
      const body = await expectError(await c.api(`/api/v1/jobs/${id}/cancel`, { method: 'POST' }), 409, 'conflict');
      assert.match(body.error.message, new RegExp(`already finished with status ${status}`));
      const row = await c.prisma.job.findUniqueOrThrow({ where: { id } });
      assert.equal(row.status, status);
      assert.equal(row.cancelRequestedAt, null);
      assert.equal(cancelRequested.mock.callCount(), 0);
      assert.equal((await auditRows(c, 'job.cancel', id)).length, 0);
    });
  }

  it('lists the job types with their defaults and parameter schemas', async () => {
    const { items } = await expectStatus(await c.api('/api/v1/job-types'), 200);
    const apply = items.find((t: { type: string }) => t.type === 'state.apply');
    assert.equal(apply.defaultTimeoutSeconds, 600);
    assert.equal(apply.params.type, 'object');
    assert.ok(apply.params.properties.sections);
  });
});
