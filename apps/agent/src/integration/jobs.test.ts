import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { JobOutcome, type JobUpdate } from '@ibex/proto';
import { factsSchema } from '@ibex/spec';
import { runAgent } from '../testing/agent-process.js';
import { type AgentFixture, agentFixture } from '../testing/fixtures.js';

const assign = (jobId: string, type: string, params: unknown = {}, attempt = 1) =>
  ({ $case: 'assign', value: { jobId, attempt, type, paramsJson: JSON.stringify(params), timeoutMs: 60_000, createdAtMs: Date.now() } }) as const;

const resultOf = (updates: JobUpdate[]) => updates.find((u) => u.update?.$case === 'result');
const kinds = (updates: JobUpdate[]) => updates.map((u) => u.update?.$case);

describe('jobs', () => {
  let fx: AgentFixture | undefined;
  afterEach(async () => {
    await fx?.cleanup();
    fx = undefined;
  });

  it('runs an assignment: started, progress/log, then a result whose output fits the job type', async () => {
    fx = await agentFixture();
    fx.startAgent();
    await fx.controller.waitForSession();
    fx.controller.send(assign('job-facts', 'facts.collect'));
    const result = await fx.controller.waitFor('the result', () => resultOf(fx!.controller.jobUpdates('job-facts')));
    const updates = fx.controller.jobUpdates('job-facts');
    assert.equal(kinds(updates)[0], 'started');
    assert.ok(kinds(updates).includes('progress') && kinds(updates).includes('log'), kinds(updates).join());
    assert.equal(result.updateId, 'job-facts:1:result:1');
    assert.equal(updates[0]!.updateId, 'job-facts:1:started:1');
    if (result.update?.$case !== 'result') throw new Error('not a result');
    assert.equal(result.update.value.outcome, JobOutcome.JOB_OUTCOME_SUCCEEDED);
    const out = factsSchema.safeParse(JSON.parse(result.update.value.outputJson));
    assert.equal(out.success, true);
  });

  it('rejects an unknown type and bad params, naming the field, without running anything', async () => {
    fx = await agentFixture();
    const agent = fx.startAgent();
    await fx.controller.waitForSession();
    fx.controller.send(assign('job-x', 'reboot.now'));
    fx.controller.send(assign('job-p', 'state.apply', { dryRun: 'yes', extra: 1 }));
    const r1 = await fx.controller.waitFor('rejection 1', () => resultOf(fx!.controller.jobUpdates('job-x')));
    const r2 = await fx.controller.waitFor('rejection 2', () => resultOf(fx!.controller.jobUpdates('job-p')));
    for (const r of [r1, r2]) assert.equal(r.update?.$case === 'result' && r.update.value.outcome, JobOutcome.JOB_OUTCOME_REJECTED);
    assert.match(r1.update?.$case === 'result' ? r1.update.value.error : '', /unknown job type "reboot.now".*facts.collect, state.apply/);
    assert.match(r2.update?.$case === 'result' ? r2.update.value.error : '', /params\.dryRun/);
    assert.equal(kinds(fx.controller.jobUpdates('job-p')).includes('started'), false);
    assert.equal(agent.count(/job running/), 0);
  });

  it('answers a duplicate assignment of a finished job with the stored result, never running it again', async () => {
    fx = await agentFixture();
    const agent = fx.startAgent();
    await fx.controller.waitForSession();
    fx.controller.send(assign('job-dup', 'state.apply', { dryRun: true }));
    const first = await fx.controller.waitFor('the result', () => resultOf(fx!.controller.jobUpdates('job-dup')));
    fx.controller.send(assign('job-dup', 'state.apply', { dryRun: true }));
    await fx.controller.waitFor('the result again', () => fx!.controller.jobUpdates('job-dup').filter((u) => u.update?.$case === 'result').length === 2);
    const results = fx.controller.jobUpdates('job-dup').filter((u) => u.update?.$case === 'result');
    assert.deepEqual(results[1], { ...first, session: results[1]!.session });
    await agent.waitForLine(/job already finished: result re-sent/);
    assert.equal(agent.count(/job running .*jobId=job-dup/), 1);
    assert.equal(fx.controller.jobUpdates('job-dup').filter((u) => u.update?.$case === 'started').length, 1);
  });

  it('re-sends a result journaled before a crash with the same update id, and does not run the job again', async () => {
    fx = await agentFixture();
    const crashing = fx.startAgent([], { IBEX_AGENT_FAILPOINTS: 'job-result-journaled' });
    await fx.controller.waitForSession();
    fx.controller.send(assign('job-crash', 'facts.collect'));
    const exit = await crashing.exitedWithin();
    assert.equal(exit.signal, 'SIGKILL');
    assert.equal(crashing.count(/job running .*jobId=job-crash/), 1);
    assert.equal(resultOf(fx.controller.jobUpdates('job-crash')), undefined, 'the result was not sent before the crash');

    const status = JSON.parse((await runAgent(['status', '--json', '--root', fx.root])).stdout);
    assert.deepEqual(status.unfinishedJobs, [{ jobId: 'job-crash', attempt: 1, phase: 'finished' }]);

    const sessions = fx.controller.sessions.length;
    const restarted = fx.startAgent();
    const s = await fx.controller.waitForSession(sessions);
    assert.deepEqual(s.hello!.unfinishedJobs, [{ jobId: 'job-crash', attempt: 1, phase: 'finished' }]);
    const result = await fx.controller.waitFor('the re-sent result', () => resultOf(fx!.controller.jobUpdates('job-crash')));
    assert.equal(result.updateId, 'job-crash:1:result:1');
    // The controller delivers it again (it never got the result): answered from the journal.
    fx.controller.send(assign('job-crash', 'facts.collect'));
    await restarted.waitForLine(/job already finished: result re-sent.*jobId=job-crash/);
    assert.equal(restarted.count(/job running/), 0);
    const results = fx.controller.jobUpdates('job-crash').filter((u) => u.update?.$case === 'result');
    assert.ok(results.every((r) => r.updateId === 'job-crash:1:result:1'));
    await fx.controller.waitFor('the journal to be empty', async () => JSON.parse((await runAgent(['status', '--json', '--root', fx!.root])).stdout).pendingJobUpdates === 0);
  });

  it('finishes a job interrupted by a crash as FAILED (retryable) without running it again', async () => {
    fx = await agentFixture();
    const crashing = fx.startAgent([], { IBEX_AGENT_FAILPOINTS: 'job-accepted' });
    await fx.controller.waitForSession();
    fx.controller.send(assign('job-int', 'facts.collect'));
    await crashing.exitedWithin();
    const sessions = fx.controller.sessions.length;
    const restarted = fx.startAgent();
    await fx.controller.waitForSession(sessions);
    const r = await fx.controller.waitFor('the interrupted result', () => resultOf(fx!.controller.jobUpdates('job-int')));
    if (r.update?.$case !== 'result') throw new Error('not a result');
    assert.equal(r.update.value.outcome, JobOutcome.JOB_OUTCOME_FAILED);
    assert.equal(r.update.value.retryable, true);
    assert.match(r.update.value.error, /^interrupted: the agent restarted while the job was running/);
    fx.controller.send(assign('job-int', 'facts.collect'));
    await restarted.waitForLine(/job already finished.*jobId=job-int/);
    assert.equal(crashing.count(/job running/) + restarted.count(/job running/), 0);
  });

  it('keeps unacknowledged updates and re-sends them, in order, after reconnecting', async () => {
    fx = await agentFixture();
    fx.controller.autoAck = false;
    fx.startAgent();
    const s1 = await fx.controller.waitForSession();
    fx.controller.send(assign('job-ack', 'facts.collect'));
    await fx.controller.waitFor('the result', () => resultOf(fx!.controller.jobUpdates('job-ack')));
    const sent = fx.controller.jobUpdates('job-ack').map((u) => u.updateId);
    fx.controller.endCurrent();
    const s2 = await fx.controller.waitForSession(s1.index);
    assert.deepEqual(s2.hello!.unfinishedJobs, [{ jobId: 'job-ack', attempt: 1, phase: 'finished' }]);
    await fx.controller.waitFor('every update re-sent', () => fx!.controller.jobUpdates('job-ack').filter((u) => u.session === s2.index).length === sent.length);
    assert.deepEqual(
      fx.controller.jobUpdates('job-ack').filter((u) => u.session === s2.index).map((u) => u.updateId),
      sent,
    );
    // Acknowledged now: nothing comes again on the next connection.
    fx.controller.ack(...sent);
    await fx.controller.waitFor('an empty journal', async () => JSON.parse((await runAgent(['status', '--json', '--root', fx!.root])).stdout).pendingJobUpdates === 0);
    fx.controller.endCurrent();
    const s3 = await fx.controller.waitForSession(s2.index);
    assert.deepEqual(s3.hello!.unfinishedJobs, []);
    // Re-sending happens right at Welcome, before the first heartbeat of the session.
    await fx.controller.waitFor('a heartbeat on the new session', () => fx!.controller.ofKind('heartbeat').some((h) => h.session === s3.index));
    assert.equal(fx.controller.jobUpdates('job-ack').filter((u) => u.session === s3.index).length, 0);
  });
});
