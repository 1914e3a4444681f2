import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { JobOutcome } from '@ibex/proto';
import { createDevice } from '../../testing/api-fixtures.js';
import { startTestController, type TestController } from '../../testing/test-controller.js';
import type { JobUpdateInput } from '../agent-messages.schema.js';
import { JobUpdates } from './job-updates.service.js';

const started = (jobId: string, attempt = 1): JobUpdateInput => ({ updateId: `${jobId}:${attempt}:started:0`, jobId, attempt, update: { $case: 'started', value: { startedAtMs: Date.now() } } });
const succeeded = (jobId: string, attempt = 1): JobUpdateInput => ({
  updateId: `${jobId}:${attempt}:result:0`,
  jobId,
  attempt,
  update: { $case: 'result', value: { outcome: JobOutcome.JOB_OUTCOME_SUCCEEDED, outputJson: '', error: '', retryable: false, finishedAtMs: Date.now() } },
});

// Job updates of all streams are stored in batches (one transaction per batch): the outcomes
// must be those of storing each update alone, in the order they arrived.
describe('job updates stored in batches', () => {
  let c: TestController;
  let updates: JobUpdates;
  before(async () => {
    c = await startTestController();
    updates = c.app.get(JobUpdates);
  });
  after(async () => {
    await c?.close();
  });

  const delivered = async (deviceId: string, type = 'test.echo') =>
    c.prisma.job.create({ data: { deviceId, type, params: {}, status: 'delivered', attempt: 1, deliveredAt: new Date(), timeoutMs: 60_000, maxAttempts: 1, expiresAt: new Date(Date.now() + 3600_000) } });

  it('many devices\u2019 updates at once: a few transactions, each update with the outcome it has alone', async () => {
    const run = randomUUID().slice(0, 8);
    const devices = await Promise.all(Array.from({ length: 40 }, (_, i) => createDevice(c, `batch-${run}-${i}`)));
    const jobs = await Promise.all(devices.map((d) => delivered(d.id)));
    const other = await createDevice(c, `batch-${run}-other`);
    const before = { ...updates.stats };

    // Sent together, as 40 agents answering a rollout at the same moment would.
    const calls: Array<[string, Promise<string>]> = [];
    for (const [i, j] of jobs.entries()) {
      calls.push([`started ${i}`, updates.apply(j.deviceId, started(j.id))]);
      calls.push([`result ${i}`, updates.apply(j.deviceId, succeeded(j.id))]);
    }
    calls.push(['the same result again', updates.apply(jobs[0]!.deviceId, succeeded(jobs[0]!.id))]);
    calls.push(['another device\u2019s job', updates.apply(other.id, succeeded(jobs[1]!.id, 1))]);
    calls.push(['an old attempt', updates.apply(jobs[2]!.deviceId, { ...succeeded(jobs[2]!.id, 7), updateId: `${jobs[2]!.id}:7:result:0` })]);
    const outcomes = Object.fromEntries(await Promise.all(calls.map(async ([name, p]) => [name, await p] as const)));

    for (let i = 0; i < jobs.length; i++) {
      assert.equal(outcomes[`started ${i}`], 'applied');
      assert.equal(outcomes[`result ${i}`], 'applied');
    }
    assert.equal(outcomes['the same result again'], 'duplicate');
    assert.equal(outcomes['another device\u2019s job'], 'unknown_job');
    assert.equal(outcomes['an old attempt'], 'stale');
    const batches = updates.stats.batches - before.batches;
    assert.ok(batches <= 3, `${calls.length} updates sent together were stored in ${batches} transactions`);

    const rows = await c.prisma.job.findMany({ where: { id: { in: jobs.map((j) => j.id) } } });
    for (const j of rows) {
      assert.equal(j.status, 'succeeded');
      assert.ok(j.startedAt && j.finishedAt, 'started, then finished, in one batch');
      assert.equal(j.progressPercent, 100);
    }
    const events = await c.prisma.jobEvent.findMany({ where: { jobId: jobs[0]!.id }, orderBy: { id: 'asc' } });
    assert.deepEqual(events.map((e) => e.kind), ['started', 'result'], 'one event per update id, in the order sent');
    assert.equal(await c.prisma.jobEvent.count({ where: { jobId: jobs[2]!.id } }), 3, 'the old attempt\u2019s update is stored (and not applied)');
  });

  it('re-sent updates the controller stored are acknowledged without a transaction', async () => {
    const d = await createDevice(c, `resend-${randomUUID().slice(0, 8)}`);
    const j = await delivered(d.id);
    assert.equal(await updates.apply(d.id, started(j.id)), 'applied');
    assert.equal(await updates.apply(d.id, succeeded(j.id)), 'applied');
    const before = updates.stats.batches;
    const again = await Promise.all(Array.from({ length: 200 }, (_, i) => updates.apply(d.id, i % 2 ? succeeded(j.id) : started(j.id))));
    assert.deepEqual(new Set(again), new Set(['duplicate']));
    assert.equal(updates.stats.batches - before, 0);
  });

  it('an update Postgres refuses fails alone; the others of its batch are stored', async () => {
    const run = randomUUID().slice(0, 8);
    const devices = await Promise.all(Array.from({ length: 5 }, (_, i) => createDevice(c, `refused-${run}-${i}`)));
    const jobs = await Promise.all(devices.map((d) => delivered(d.id)));
    // jsonb refuses the escaped NUL (the gateway's schema refuses it first; here it stands for
    // any update the database does not take).
    const bad: JobUpdateInput = { updateId: `${jobs[0]!.id}:1:log:0`, jobId: jobs[0]!.id, attempt: 1, update: { $case: 'log', value: { lines: [{ tsMs: 1, level: 'info', text: 'a\u0000b' }] } } };
    const results = await Promise.allSettled([updates.apply(jobs[0]!.deviceId, bad), ...jobs.map((j) => updates.apply(j.deviceId, succeeded(j.id)))]);
    assert.equal(results[0]!.status, 'rejected');
    assert.deepEqual(results.slice(1).map((r) => (r.status === 'fulfilled' ? r.value : String(r.reason))), ['applied', 'applied', 'applied', 'applied', 'applied']);
    assert.equal(await c.prisma.job.count({ where: { id: { in: jobs.map((j) => j.id) }, status: 'succeeded' } }), 5);
  });
});
