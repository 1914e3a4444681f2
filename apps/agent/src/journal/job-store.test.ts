import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { JobOutcome } from '@ibex/proto';
import { JOB_RETENTION_MS, JobStore, updateId } from './job-store.js';

const result = { $case: 'result' as const, value: { outcome: JobOutcome.JOB_OUTCOME_SUCCEEDED, outputJson: '{}', error: '', retryable: false, finishedAtMs: 1 } };
const started = { $case: 'started' as const, value: { startedAtMs: 1 } };

describe('job journal', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ibex-jobs-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('makes deterministic update ids from job, attempt, kind and sequence', () => {
    assert.equal(updateId('j1', 2, 'result', 1), 'j1:2:result:1');
    const store = new JobStore(join(dir, 'ids'));
    store.load();
    store.accept('j1', 1, 'facts.collect', 'boot');
    const ids = [store.addUpdate('j1', 1, started, 'running'), store.addUpdate('j1', 1, { $case: 'log', value: { lines: [] } }), store.addUpdate('j1', 1, { $case: 'log', value: { lines: [] } }), store.addUpdate('j1', 1, result)].map((u) => u.updateId);
    assert.deepEqual(ids, ['j1:1:started:1', 'j1:1:log:1', 'j1:1:log:2', 'j1:1:result:1']);
    // The same sequence in a new store after reload continues, never repeats.
    const reloaded = new JobStore(join(dir, 'ids'));
    reloaded.load();
    assert.equal(reloaded.get('j1', 1)?.phase, 'finished');
    assert.equal(reloaded.addUpdate('j1', 1, { $case: 'log', value: { lines: [] } }).updateId, 'j1:1:log:3');
  });

  it('survives a reload with unacknowledged updates in order, and forgets acknowledged ones', () => {
    const path = join(dir, 'acks');
    const a = new JobStore(path);
    a.load();
    a.accept('j2', 1, 'facts.collect', 'boot-a');
    a.addUpdate('j2', 1, started, 'running');
    a.addUpdate('j2', 1, result);
    assert.deepEqual(a.unfinished(), [{ jobId: 'j2', attempt: 1, phase: 'finished' }]);
    const b = new JobStore(path);
    b.load();
    assert.deepEqual(b.unacked().map((u) => u.updateId), ['j2:1:started:1', 'j2:1:result:1']);
    assert.equal(b.ack('j2:1:started:1'), true);
    assert.equal(b.ack('j2:1:started:1'), false, 'a second ack is a no-op');
    assert.equal(b.ack('someone-else'), false);
    b.ack('j2:1:result:1');
    const c = new JobStore(path);
    c.load();
    assert.deepEqual(c.unacked(), []);
    assert.deepEqual(c.unfinished(), []);
    // A re-delivered finished job puts its result back until acknowledged again.
    assert.equal(c.requeueResult('j2', 1)?.updateId, 'j2:1:result:1');
    assert.deepEqual(c.unacked().map((u) => u.updateId), ['j2:1:result:1']);
  });

  it('finds attempts a previous process left unfinished', () => {
    const s = new JobStore(join(dir, 'int'));
    s.load();
    s.accept('old', 1, 'facts.collect', 'boot-old');
    s.accept('mine', 1, 'facts.collect', 'boot-now');
    assert.deepEqual(s.interrupted('boot-now').map((x) => x.jobId), ['old']);
  });

  it('prunes finished, acknowledged jobs after 7 days only', () => {
    let now = 1_000_000;
    const path = join(dir, 'prune');
    const s = new JobStore(path, () => now);
    s.load();
    s.accept('done', 1, 'facts.collect', 'b');
    s.addUpdate('done', 1, result);
    s.accept('unacked', 1, 'facts.collect', 'b');
    s.addUpdate('unacked', 1, result);
    s.ack('done:1:result:1');
    now += JOB_RETENTION_MS - 1;
    assert.deepEqual(s.prune(), []);
    now += 2;
    assert.deepEqual(s.prune(), ['done']);
    assert.deepEqual(readdirSync(path), ['unacked.json']);
  });

  it('stores odd job ids as safe file names', () => {
    const path = join(dir, 'names');
    const s = new JobStore(path);
    s.load();
    s.accept('../x/y', 1, 't', 'b');
    s.accept('.hidden', 1, 't', 'b');
    assert.deepEqual(readdirSync(path).sort(), ['%2E.%2Fx%2Fy.json', '%2Ehidden.json']);
    const again = new JobStore(path);
    again.load();
    assert.ok(again.get('../x/y', 1) && again.get('.hidden', 1));
  });
});
