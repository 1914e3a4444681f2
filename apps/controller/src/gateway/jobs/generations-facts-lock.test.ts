import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { JobOutcome } from '@ibex/proto';
import type { Facts } from '@ibex/spec';
import { sampleFacts, sampleGenerations } from '../../testing/fake-agent.js';
import { createDevice } from '../../testing/api-fixtures.js';
import { startTestController, type TestController } from '../../testing/test-controller.js';
import { waitFor } from '../../testing/wait-for.js';
import { JobUpdates } from './job-updates.service.js';

// storeGenerations reads the device's facts, decides, and writes them back: without a row lock a
// FactsReport committed in between (a newer inventory) was overwritten by the older rollback output.
describe('a rollback result and a FactsReport writing the facts at the same time', () => {
  let c: TestController;
  before(async () => {
    c = await startTestController();
  });
  after(async () => {
    await c?.close();
  });

  it('keeps the newer inventory: the rollback result waits for the row and then sees it', async () => {
    const older = { ...sampleGenerations(), current: 'g2', collectedAtMs: 1_700_000_100_000 };
    const newer = { ...sampleGenerations(), current: 'g1', collectedAtMs: 1_700_000_200_000 };
    const base = { ...sampleFacts('lock-dev'), generations: sampleGenerations() };
    const d = await createDevice(c, 'lock-dev', { data: { facts: base as object } });
    const job = await c.prisma.job.create({
      data: { deviceId: d.id, type: 'generations.rollback', params: {}, status: 'running', attempt: 1, timeoutMs: 60_000, maxAttempts: 1, expiresAt: new Date(Date.now() + 3600_000) },
    });

    // Writer 1, another session: the FactsReport's update, not committed yet (it holds the row).
    const other = new pg.Client({ connectionString: c.db.url });
    await other.connect();
    try {
      await other.query('BEGIN');
      await other.query('UPDATE device SET facts = $1 WHERE id = $2', [JSON.stringify({ ...base, generations: newer }), d.id]);

      // Writer 2: the rollback's result, carrying the older inventory.
      const applying = c.app.get(JobUpdates).apply(d.id, {
        updateId: `${job.id}:1:result:0`,
        jobId: job.id,
        attempt: 1,
        update: { $case: 'result', value: { outcome: JobOutcome.JOB_OUTCOME_SUCCEEDED, outputJson: JSON.stringify(older), error: '', retryable: false, finishedAtMs: Date.now() } },
      } as Parameters<JobUpdates['apply']>[1]);
      // It gets as far as the device row and waits for writer 1 (before reading, with the lock;
      // at its write, without it).
      await waitFor('the result transaction to wait for the device row', async () => {
        const r = await other.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()`);
        return r.rows[0].n > 0;
      });
      await other.query('COMMIT');
      assert.equal(await applying, 'applied');
    } finally {
      await other.end();
    }

    const facts = (await c.prisma.device.findUniqueOrThrow({ where: { id: d.id } })).facts as Facts & { generations: { current: string; collectedAtMs: number } };
    assert.equal(facts.generations.collectedAtMs, newer.collectedAtMs, 'the newer inventory (the FactsReport) is kept');
    assert.equal(facts.generations.current, 'g1');
    assert.equal((await c.prisma.job.findUniqueOrThrow({ where: { id: job.id } })).status, 'succeeded');
  });
});
