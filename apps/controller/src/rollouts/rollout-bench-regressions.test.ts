import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { JobOutcome } from '@ibex/proto';
import { enrollDevice, filesSpec } from '../gateway/testing/fixtures.js';
import { FakeAgent, sampleFacts } from '../testing/fake-agent.js';
import { appliedOutput, JobResponder } from '../testing/job-responder.js';
import { startTestController, type TestController } from '../testing/test-controller.js';
import { waitFor } from '../testing/wait-for.js';
import type { RolloutView } from './rollouts.dto.js';

// What the rollout benchmark (bench/src/rollout.bench.ts) found, kept as tests at a size that
// runs in seconds.
describe('rollout benchmark regressions (real Postgres, Redis, gRPC streams)', () => {
  let c: TestController;
  const agents: FakeAgent[] = [];
  const responders: JobResponder[] = [];

  before(async () => {
    c = await startTestController({ env: { IBEX_OFFLINE_AFTER_MS: '600000', IBEX_ROLLOUT_TICK_MS: '100' } });
  });
  after(async () => {
    for (const r of responders) r.stop();
    for (const a of agents) a.close();
    await c?.close();
  });

  const get = async (id: string): Promise<RolloutView> => (await (await c.api(`/api/v1/rollouts/${id}`)).json()) as RolloutView;
  const rollout = async (body: Record<string, unknown>): Promise<string> => {
    const res = await c.api('/api/v1/rollouts', { method: 'POST', json: body });
    assert.equal(res.status, 201, await res.clone().text());
    return ((await res.json()) as RolloutView).id;
  };
  const succeeded = (id: string, timeoutMs: number) =>
    waitFor(`rollout ${id} to succeed`, async () => {
      const r = await get(id);
      assert.ok(!['failed', 'aborted'].includes(r.status), `rollout ${id} ${r.status}: ${r.reason}`);
      return r.status === 'succeeded' ? r : undefined;
    }, { timeoutMs, intervalMs: 100 });

  // The stall: with five waves, right after a rollout without waves to the same 10,000 devices,
  // wave 1's 2,000 devices got their jobs and then none was recorded in 5 minutes. The agents
  // had re-sent their unacknowledged updates of the first rollout while the controller was slow
  // to acknowledge them; every re-send cost a transaction, and a stream's messages are handled
  // in order, so each device's new updates waited behind its backlog of duplicates (the
  // database showed ~440 commits/s, none inserting anything). Now a re-sent update this
  // controller stored is acknowledged from memory, and the rest are stored in batches.
  it('re-sent duplicates of a rollout\u2019s updates cost no transaction each and do not hold up the next rollout on the same devices', async () => {
    const group = `dups-${randomUUID().slice(0, 8)}`;
    const devices: { agent: FakeAgent; responder: JobResponder }[] = [];
    for (let i = 0; i < 20; i++) {
      const name = `${group}-${String(i).padStart(2, '0')}`;
      const d = await enrollDevice(c, name);
      await c.prisma.device.update({ where: { id: d.deviceId }, data: { labels: { group } } });
      const agent = await FakeAgent.connect(c.grpcAddress, d.credential, { facts: sampleFacts(name) });
      agents.push(agent);
      const responder = new JobResponder(agent, () => ({ outcome: 'succeed', output: appliedOutput(1) }));
      responders.push(responder);
      devices.push({ agent, responder });
    }
    const target = { kind: 'selector', selector: `group=${group}` };
    const first = await rollout({ name: `${group} no waves`, target, payload: { kind: 'desired_state', spec: filesSpec('one\n') }, strategy: { waves: { kind: 'none' } } });
    await succeeded(first, 30_000);

    // Each agent re-sends its two updates of the first rollout 50 times (as the bench's agents
    // do every 5 s until acknowledged), queued on its stream ahead of anything new.
    const RESENDS = 50;
    let transactions = 0;
    const prisma = c.prisma as unknown as { $transaction: (...a: unknown[]) => unknown };
    const original = prisma.$transaction;
    prisma.$transaction = function (this: unknown, ...a: unknown[]) {
      transactions++;
      return original.apply(this, a);
    };
    try {
      for (const { agent, responder } of devices) {
        const [job] = responder.jobs;
        assert.ok(job, 'the first rollout\u2019s job');
        for (let k = 0; k < RESENDS; k++) {
          const base = { jobId: job.jobId, attempt: job.attempt };
          agent.send({ $case: 'jobUpdate', value: { ...base, updateId: `${job.jobId}:${job.attempt}:started:0`, update: { $case: 'started', value: { startedAtMs: Date.now() } } } });
          const result = { outcome: JobOutcome.JOB_OUTCOME_SUCCEEDED, outputJson: JSON.stringify(appliedOutput(1)), error: '', retryable: false, finishedAtMs: Date.now() };
          agent.send({ $case: 'jobUpdate', value: { ...base, updateId: `${job.jobId}:${job.attempt}:result:0`, update: { $case: 'result', value: result } } });
        }
      }
      const second = await rollout({ name: `${group} five waves`, target, payload: { kind: 'desired_state', spec: filesSpec('two\n') }, strategy: { waves: { kind: 'equal', count: 5 } } });
      const done = await succeeded(second, 60_000);
      assert.deepEqual(done.waves.map((w) => w.counts.succeeded), [4, 4, 4, 4, 4]);
      const duplicates = devices.length * RESENDS * 2;
      // Before: at least one per duplicate (2,000). Now: the rollout's ticks and a few batches.
      assert.ok(transactions < duplicates / 4, `${transactions} transactions while ${duplicates} duplicates were acknowledged and the second rollout ran`);
      // The dispatch writes the revisions of a wave's devices together (writeRevisions).
      const ids = (await c.prisma.rolloutTarget.findMany({ where: { rolloutId: second } })).map((t) => t.deviceId);
      const rows = await c.prisma.device.findMany({ where: { id: { in: ids } }, include: { sections: true } });
      for (const d of rows) {
        assert.equal(d.desiredRevision, 2, `${d.name}: the rollouts wrote revisions 1 and 2`);
        assert.deepEqual(d.sections.map((x) => [x.section, x.state, x.revision]), [['files', 'pending', 2]]);
        const rev = await c.prisma.desiredRevision.findUniqueOrThrow({ where: { deviceId_revision: { deviceId: d.id, revision: 2 } } });
        assert.equal((rev.spec as { files: { entries: { content: string }[] } }).files.entries[0]!.content, 'two\n');
        assert.equal(rev.message, `rollout ${group} five waves`);
      }
      for (const { agent, responder } of devices) {
        assert.deepEqual([...responder.executed.values()], [1, 1], 'each device executed each rollout\u2019s job once');
        assert.deepEqual(agent.all('desired').map((x) => x.revision), [1, 2], 'each revision sent once');
        const resultId = `${responder.jobs[0]!.jobId}:${responder.jobs[0]!.attempt}:result:0`;
        await waitFor('every re-send acknowledged', () => agent.all('ack').flatMap((a) => a.ids).filter((id) => id === resultId).length === RESENDS + 1);
      }
    } finally {
      prisma.$transaction = original;
    }
  });
});
