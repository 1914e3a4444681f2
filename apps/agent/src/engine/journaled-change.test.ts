import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { silentLogger } from '../common/log.js';
import { JsonChangeJournal } from '../journal/journal-record.js';
import { ChangeFailed, type ChangeStep, type JournaledChange, recoverAll, runJournaled } from './journaled-change.js';

describe('journaled change', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ibex-change-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  let n = 0;

  /** A change whose steps and undo record what ran, and see whether the record was on disk then. */
  function change(opts: { failAt?: number; undoFails?: boolean; verify?: string; commitFails?: boolean } = {}) {
    const journal = new JsonChangeJournal<{ id: number }>(join(dir, `change-${++n}.json`));
    const seen: string[] = [];
    const step = (i: number): ChangeStep => ({
      text: `step ${i}`,
      run: async () => {
        seen.push(`${i}:${existsSync(journal.path) ? 'journaled' : 'not journaled'}`);
        if (opts.failAt === i) throw new Error(`step ${i} broke`);
      },
    });
    const c: JournaledChange<{ id: number }> = {
      what: 'test change',
      journal,
      record: { id: n },
      steps: [step(1), step(2), step(3)],
      verify: async () => opts.verify,
      undo: async () => {
        seen.push('undo');
        if (opts.undoFails) throw new Error('undo broke');
      },
      commit: {
        text: 'commit',
        run: async () => {
          seen.push('commit');
          if (opts.commitFails) throw new Error('commit broke');
        },
      },
    };
    return { c, journal, seen };
  }

  it('journals the record before the first step, runs the steps, verify and commit in order, and leaves the record to the caller', async () => {
    const { c, journal, seen } = change();
    await runJournaled(c, { log: silentLogger });
    assert.deepEqual(seen, ['1:journaled', '2:journaled', '3:journaled', 'commit']);
    assert.deepEqual(journal.read(), c.record);
  });

  it('a failing step stops the change, undoes it and clears the record; the error names the step', async () => {
    const { c, journal, seen } = change({ failAt: 2 });
    const err = await runJournaled(c, { log: silentLogger }).catch((e: unknown) => e);
    assert.ok(err instanceof ChangeFailed);
    assert.equal(err.message, 'step 2 of 3 (step 2) failed: step 2 broke');
    assert.equal((err.cause as Error).message, 'step 2 broke');
    assert.equal(err.undoError, undefined);
    assert.deepEqual(seen, ['1:journaled', '2:journaled', 'undo']);
    assert.equal(journal.read(), undefined);
  });

  it('a failed verify is undone like a failed step; the commit never runs', async () => {
    const { c, journal, seen } = change({ verify: '1 step(s) would still run' });
    await assert.rejects(runJournaled(c, { log: silentLogger }), (e: Error) => e instanceof ChangeFailed && e.message === 'verify failed: 1 step(s) would still run');
    assert.deepEqual(seen.slice(-1), ['undo']);
    assert.equal(journal.read(), undefined);
  });

  it('an undo that fails keeps the record for recovery at the next start', async () => {
    const { c, journal } = change({ failAt: 1, undoFails: true });
    const err = await runJournaled(c, { log: silentLogger }).catch((e: unknown) => e);
    assert.ok(err instanceof ChangeFailed);
    assert.equal((err.undoError as Error).message, 'undo broke');
    assert.deepEqual(journal.read(), c.record);
  });

  it('a failing commit is not undone: its own error, the record stays and recovery decides', async () => {
    const { c, journal, seen } = change({ commitFails: true });
    await assert.rejects(runJournaled(c, { log: silentLogger }), /^Error: commit broke$/);
    assert.equal(seen.includes('undo'), false);
    assert.deepEqual(journal.read(), c.record);
  });

  it('a cancelled change stops before its next step and is undone', async () => {
    const { c, journal, seen } = change();
    const ctl = new AbortController();
    ctl.abort();
    await assert.rejects(runJournaled(c, { log: silentLogger, signal: ctl.signal }), (e: Error) => e.message === 'step 1 of 3 (step 1) failed: cancelled');
    assert.deepEqual(seen, ['undo']);
    assert.equal(journal.read(), undefined);
  });

  it('recovers every kind in order at start, and a kind that throws stops the start', async () => {
    const order: string[] = [];
    const kind = (name: string, fail = false) => ({
      name,
      recover: async () => {
        order.push(name);
        if (fail) throw new Error(`${name} cannot recover`);
        return [{ what: name, outcome: 'undone' as const, reason: `${name} undone` }];
      },
    });
    assert.deepEqual((await recoverAll([kind('a'), kind('b')])).map((r) => r.reason), ['a undone', 'b undone']);
    await assert.rejects(recoverAll([kind('c', true), kind('d')]), /c cannot recover/);
    assert.deepEqual(order, ['a', 'b', 'c']);
  });
});
