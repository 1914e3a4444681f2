import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { JobOutcome, type JobResult, type JobUpdate } from '@ibex/proto';
import { JOB_SCHEDULER, type JobScheduler } from '../../delivery/agent-delivery.port.js';
import { FakeAgent, sampleFacts } from '../../testing/fake-agent.js';
import { startTestController, type TestController } from '../../testing/test-controller.js';
import { waitFor } from '../../testing/wait-for.js';
import { connectedDevice, createJob, enrollDevice } from '../testing/fixtures.js';
import { JobSweeper } from './job-sweeper.service.js';

// Long enough that the test reads the job while it waits for its retry, even on a busy machine.
const BACKOFF_MS = 1000;

/** Sends a JobUpdate with the agent's deterministic id `<job>:<attempt>:<kind>:<seq>`; returns the id. */
function sendUpdate(agent: FakeAgent, jobId: string, attempt: number, update: NonNullable<JobUpdate['update']>, seq = 0): string {
  const updateId = `${jobId}:${attempt}:${update.$case}:${seq}`;
  agent.send({ $case: 'jobUpdate', value: { updateId, jobId, attempt, update } });
  return updateId;
}

function result(outcome: JobOutcome, fields: Partial<JobResult> = {}): NonNullable<JobUpdate['update']> {
  return { $case: 'result', value: { outcome, outputJson: '', error: '', retryable: false, finishedAtMs: Date.now(), ...fields } };
}

describe('jobs', () => {
  let c: TestController;
  const agents: FakeAgent[] = [];
  const online = async (name: string) => {
    const d = await connectedDevice(c, name);
    agents.push(d.agent);
    return d;
  };
  const job = (id: string) => c.prisma.job.findUniqueOrThrow({ where: { id } });

  before(async () => {
    c = await startTestController({ env: { IBEX_JOB_RETRY_BACKOFF_MS: String(BACKOFF_MS), IBEX_OFFLINE_AFTER_MS: '60000' } });
  });
  after(async () => {
    for (const a of agents) a.close();
    await c?.close();
  });

  it('delivers a job queued while the device was offline as attempt 1 when it connects, and the same attempt again on reconnect', async () => {
    const device = await enrollDevice(c, 'offline-first');
    const j = await createJob(c, device.deviceId, { type: 'state.apply', params: { dryRun: true }, timeoutMs: 30_000 });
    assert.equal((await job(j.id)).status, 'queued');

    const agent = await FakeAgent.connect(c.grpcAddress, device.credential);
    agents.push(agent);
    const a = await agent.next('assign', (x) => x.jobId === j.id);
    assert.deepEqual(a, { jobId: j.id, attempt: 1, type: 'state.apply', paramsJson: '{"dryRun":true}', timeoutMs: 30_000, createdAtMs: j.createdAt.getTime() });
    const row = await job(j.id);
    assert.equal(row.status, 'delivered');
    assert.equal(row.attempt, 1);
    assert.ok(row.deliveredAt);

    agent.close();
    const again = await FakeAgent.connect(c.grpcAddress, device.credential);
    agents.push(again);
    assert.equal((await again.next('assign', (x) => x.jobId === j.id)).attempt, 1, 'a delivered job is re-sent with its current attempt');
    assert.equal((await job(j.id)).attempt, 1);
  });

  it('delivers a job created while the device is online; started, progress and result move it to succeeded', async () => {
    const { device, agent } = await online('collector');
    const j = await createJob(c, device.deviceId, { type: 'facts.collect' });
    assert.equal((await agent.next('assign', (x) => x.jobId === j.id)).attempt, 1);

    await agent.acked(sendUpdate(agent, j.id, 1, { $case: 'started', value: { startedAtMs: Date.now() } }));
    const running = await job(j.id);
    assert.equal(running.status, 'running');
    assert.ok(running.startedAt);
    await agent.acked(sendUpdate(agent, j.id, 1, { $case: 'progress', value: { percent: 40, message: 'reading interfaces' } }));
    assert.equal((await job(j.id)).progressPercent, 40);
    await agent.acked(sendUpdate(agent, j.id, 1, { $case: 'log', value: { lines: [{ tsMs: Date.now(), level: 'info', text: 'hello' }] } }));

    const collected = sampleFacts('collected-host');
    const resultId = sendUpdate(agent, j.id, 1, result(JobOutcome.JOB_OUTCOME_SUCCEEDED, { outputJson: JSON.stringify(collected) }));
    await agent.acked(resultId);
    const done = await job(j.id);
    assert.equal(done.status, 'succeeded');
    assert.ok(done.finishedAt);
    assert.equal((done.result as { hostname: string }).hostname, 'collected-host');
    assert.equal(done.progressPercent, 100, 'a succeeded job shows 100 %, not its last progress report');
    assert.equal(done.progressMessage, 'reading interfaces');
    const facts = (await c.prisma.device.findUniqueOrThrow({ where: { id: device.deviceId } })).facts as { hostname: string };
    assert.equal(facts.hostname, 'collected-host', 'facts.collect updates the device facts');

    // The agent re-sends the result (its Ack was lost): stored once, acknowledged again.
    agent.send({ $case: 'jobUpdate', value: { updateId: resultId, jobId: j.id, attempt: 1, update: result(JobOutcome.JOB_OUTCOME_FAILED, { error: 'ignored' }) } });
    await agent.acked(resultId);
    assert.equal(await c.prisma.jobEvent.count({ where: { updateId: resultId } }), 1);
    assert.deepEqual((await c.prisma.jobEvent.findMany({ where: { jobId: j.id }, orderBy: { id: 'asc' } })).map((e) => e.kind), ['started', 'progress', 'log', 'result']);
    assert.equal((await job(j.id)).status, 'succeeded');
  });

  it('a job that fails, is cancelled or returns an invalid output keeps its last progress', async () => {
    const { device, agent } = await online('half-way');
    const outcomes = [
      result(JobOutcome.JOB_OUTCOME_FAILED, { error: 'broken', retryable: false }),
      result(JobOutcome.JOB_OUTCOME_CANCELLED, { error: 'cancelled: by test' }),
      result(JobOutcome.JOB_OUTCOME_SUCCEEDED, { outputJson: '{"not":"facts"}' }),
    ];
    for (const [i, outcome] of outcomes.entries()) {
      const j = await createJob(c, device.deviceId, { type: 'facts.collect' });
      await agent.next('assign', (x) => x.jobId === j.id);
      await agent.acked(sendUpdate(agent, j.id, 1, { $case: 'progress', value: { percent: 40, message: 'reading interfaces' } }));
      await agent.acked(sendUpdate(agent, j.id, 1, outcome));
      const row = await job(j.id);
      assert.equal(row.status, ['failed', 'cancelled', 'failed'][i]);
      assert.equal(row.progressPercent, 40, `${row.status}: ${row.error}`);
      assert.equal(row.progressMessage, 'reading interfaces');
    }
  });

  it('requeues a retryable failure with backoff and delivers attempt 2; a late update for attempt 1 is stored, acked and not applied', async () => {
    const { device, agent } = await online('flaky');
    const j = await createJob(c, device.deviceId, { type: 'facts.collect', maxAttempts: 3 });
    await agent.next('assign', (x) => x.jobId === j.id && x.attempt === 1);
    const failedAt = Date.now();
    await agent.acked(sendUpdate(agent, j.id, 1, result(JobOutcome.JOB_OUTCOME_FAILED, { error: 'disk busy', retryable: true })));
    const queued = await job(j.id);
    assert.equal(queued.status, 'queued');
    assert.equal(queued.error, 'disk busy');
    assert.ok(queued.notBefore && Math.abs(queued.notBefore.getTime() - (failedAt + BACKOFF_MS)) < 1000, `notBefore ${queued.notBefore?.toISOString()}`);

    const second = await agent.next('assign', (x) => x.jobId === j.id);
    assert.equal(second.attempt, 2);
    assert.ok(Date.now() - failedAt >= BACKOFF_MS - 50, 'not redelivered before the backoff');
    const redelivered = await job(j.id);
    assert.equal(redelivered.status, 'delivered');
    assert.equal(redelivered.attempt, 2);

    const lateId = sendUpdate(agent, j.id, 1, result(JobOutcome.JOB_OUTCOME_SUCCEEDED, { outputJson: JSON.stringify(sampleFacts()) }), 1);
    await agent.acked(lateId);
    assert.equal(await c.prisma.jobEvent.count({ where: { updateId: lateId } }), 1, 'stored');
    const after = await job(j.id);
    assert.equal(after.status, 'delivered', 'not applied to attempt 2');
    assert.equal(after.attempt, 2);
  });

  it('fails a non-retryable failure, and a retryable one of a type that is not retry-safe', async () => {
    const { device, agent } = await online('fails');
    const a = await createJob(c, device.deviceId, { type: 'facts.collect' });
    await agent.next('assign', (x) => x.jobId === a.id);
    await agent.acked(sendUpdate(agent, a.id, 1, result(JobOutcome.JOB_OUTCOME_FAILED, { error: 'no such file', retryable: false })));
    const failed = await job(a.id);
    assert.equal(failed.status, 'failed');
    assert.equal(failed.error, 'no such file');
    assert.ok(failed.finishedAt);

    const b = await createJob(c, device.deviceId, { type: 'vendor.custom', maxAttempts: 5 });
    await agent.next('assign', (x) => x.jobId === b.id);
    await agent.acked(sendUpdate(agent, b.id, 1, result(JobOutcome.JOB_OUTCOME_FAILED, { error: 'transient', retryable: true })));
    assert.equal((await job(b.id)).status, 'failed');
  });

  it('fails a job whose output is not valid JSON or does not match its type, saying why', async () => {
    const { device, agent } = await online('bad-output');
    const a = await createJob(c, device.deviceId, { type: 'facts.collect' });
    await agent.next('assign', (x) => x.jobId === a.id);
    await agent.acked(sendUpdate(agent, a.id, 1, result(JobOutcome.JOB_OUTCOME_SUCCEEDED, { outputJson: JSON.stringify({ ...sampleFacts(), hostname: 5 }) })));
    const wrong = await job(a.id);
    assert.equal(wrong.status, 'failed');
    assert.match(wrong.error ?? '', /^invalid output for facts\.collect: output\.hostname: /);

    const b = await createJob(c, device.deviceId, { type: 'facts.collect' });
    await agent.next('assign', (x) => x.jobId === b.id);
    await agent.acked(sendUpdate(agent, b.id, 1, result(JobOutcome.JOB_OUTCOME_SUCCEEDED, { outputJson: '{"hostname":' })));
    assert.match((await job(b.id)).error ?? '', /output_json is not valid JSON/);
    const facts = (await c.prisma.device.findUniqueOrThrow({ where: { id: device.deviceId } })).facts as { hostname: string };
    assert.equal(facts.hostname, 'edge-1', 'the device facts are untouched');
  });

  it('records a job the agent rejected, without retrying it', async () => {
    const { device, agent } = await online('refuser');
    const a = await createJob(c, device.deviceId, { type: 'vendor.unknown' });
    await agent.next('assign', (x) => x.jobId === a.id);
    await agent.acked(sendUpdate(agent, a.id, 1, result(JobOutcome.JOB_OUTCOME_REJECTED, { error: 'type: unknown job type "vendor.unknown"' })));
    const rejected = await job(a.id);
    assert.equal(rejected.status, 'rejected');
    assert.match(rejected.error ?? '', /unknown job type/);
  });

  it('sends a cancellation an operator asked for, and records the agent confirming it', async () => {
    const { device, agent } = await online('cancellable');
    const j = await createJob(c, device.deviceId, { type: 'state.apply' });
    await agent.next('assign', (x) => x.jobId === j.id);
    await agent.acked(sendUpdate(agent, j.id, 1, { $case: 'started', value: { startedAtMs: Date.now() } }));

    await c.prisma.job.update({ where: { id: j.id }, data: { cancelRequestedAt: new Date() } });
    await c.app.get<JobScheduler>(JOB_SCHEDULER).cancelRequested(j);
    const cancel = await agent.next('cancel', (x) => x.jobId === j.id);
    assert.equal(cancel.reason, 'cancelled by an operator');
    await agent.acked(sendUpdate(agent, j.id, 1, result(JobOutcome.JOB_OUTCOME_CANCELLED)));
    assert.equal((await job(j.id)).status, 'cancelled');
  });

  it('never delivers a queued job whose cancellation was requested', async () => {
    const device = await enrollDevice(c, 'cancel-before');
    const j = await createJob(c, device.deviceId);
    await c.prisma.job.update({ where: { id: j.id }, data: { cancelRequestedAt: new Date() } });
    const later = await createJob(c, device.deviceId);
    const agent = await FakeAgent.connect(c.grpcAddress, device.credential);
    agents.push(agent);
    await agent.next('assign', (x) => x.jobId === later.id);
    assert.equal((await job(j.id)).status, 'cancelled');
    assert.equal(agent.all('assign').filter((x) => x.jobId === j.id).length, 0);
  });

  it('times out an attempt: cancels it on the agent, retries it, and marks it timed_out when attempts run out', async () => {
    const { device, agent } = await online('slowpoke');
    const j = await createJob(c, device.deviceId, { type: 'facts.collect', timeoutMs: 300, maxAttempts: 2 });
    await agent.next('assign', (x) => x.jobId === j.id && x.attempt === 1);
    const first = await agent.next('cancel', (x) => x.jobId === j.id);
    assert.match(first.reason, /timed out after 300 ms \(attempt 1 of 2\)/);
    await agent.next('assign', (x) => x.jobId === j.id && x.attempt === 2);
    const second = await agent.next('cancel', (x) => x.jobId === j.id);
    assert.match(second.reason, /attempt 2 of 2/);
    const row = await waitFor('timed_out', async () => {
      const r = await job(j.id);
      return r.status === 'timed_out' && r;
    });
    assert.equal(row.attempt, 2);
    assert.match(row.error ?? '', /timed out after 300 ms/);
    const events = await c.prisma.jobEvent.findMany({ where: { jobId: j.id, kind: 'controller' }, orderBy: { id: 'asc' } });
    assert.deepEqual(
      events.map((e) => [e.attempt, (e.data as { status: string }).status]),
      [
        [1, 'queued'],
        [2, 'timed_out'],
      ],
    );
  });

  it('expires a job the device was not online to receive before expiresAt', async () => {
    const device = await enrollDevice(c, 'away');
    const j = await createJob(c, device.deviceId, { expiresAt: new Date(Date.now() + 300) });
    const expired = await waitFor('expired', async () => {
      const r = await job(j.id);
      return r.status === 'expired' && r;
    });
    assert.equal(expired.attempt, 0);
    assert.match(expired.error ?? '', /not delivered before it expired/);

    const fresh = await createJob(c, device.deviceId);
    const agent = await FakeAgent.connect(c.grpcAddress, device.credential);
    agents.push(agent);
    await agent.next('assign', (x) => x.jobId === fresh.id);
    assert.equal(agent.all('assign').filter((x) => x.jobId === j.id).length, 0, 'an expired job is never delivered');
  });
});

describe('the job sweeper', () => {
  let c: TestController;
  let agent: FakeAgent | undefined;
  before(async () => {
    c = await startTestController({ env: { IBEX_OFFLINE_AFTER_MS: '60000' } });
  });
  after(async () => {
    agent?.close();
    await c?.close();
  });

  it('fires the timers Redis lost: expiry, timeout, and a retry whose backoff is over', async () => {
    const offline = await enrollDevice(c, 'sweep-offline');
    const online = await connectedDevice(c, 'sweep-online');
    agent = online.agent;
    const long = new Date(Date.now() - 120_000);
    const base = { type: 'facts.collect', timeoutMs: 1000, expiresAt: new Date(Date.now() + 3600_000), maxAttempts: 3 };
    // Rows as if their BullMQ timers were lost: created without JOB_SCHEDULER.
    const unexpired = await c.prisma.job.create({ data: { ...base, deviceId: offline.deviceId, expiresAt: long } });
    const stuck = await c.prisma.job.create({ data: { ...base, deviceId: online.device.deviceId, status: 'running', attempt: 1, deliveredAt: long, maxAttempts: 1 } });
    const retrying = await c.prisma.job.create({ data: { ...base, deviceId: online.device.deviceId, attempt: 1, notBefore: long } });
    const unwanted = await c.prisma.job.create({ data: { ...base, deviceId: offline.deviceId, attempt: 1, notBefore: long, cancelRequestedAt: long } });

    assert.deepEqual(await c.app.get(JobSweeper).sweep(), { expired: 1, timedOut: 1, retried: 2 });
    const status = async (id: string) => (await c.prisma.job.findUniqueOrThrow({ where: { id } })).status;
    assert.equal(await status(unexpired.id), 'expired');
    assert.equal(await status(stuck.id), 'timed_out');
    assert.equal(await status(unwanted.id), 'cancelled', 'a cancelled retry ends even while its device is offline');
    assert.match((await agent.next('cancel', (x) => x.jobId === stuck.id)).reason, /timed out/);
    assert.equal((await agent.next('assign', (x) => x.jobId === retrying.id)).attempt, 2);
    assert.deepEqual(await c.app.get(JobSweeper).sweep(), { expired: 0, timedOut: 0, retried: 0 }, 'nothing left to sweep');
  });
});
