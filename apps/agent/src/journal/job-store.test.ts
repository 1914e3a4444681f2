import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { JobOutcome } from '@ibex/proto';
import { JOB_RETENTION_MS, JobStore, LOCAL_LOG_CHARS, LOCAL_LOG_LINES, updateId } from './job-store.js';

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

  it('keeps a job run at the console out of what goes to the controller as job updates, and reports it once as a local change', () => {
    let now = 1000;
    const path = join(dir, 'local');
    const a = new JobStore(path, () => now);
    a.load();
    a.accept('loc-1', 1, 'generations.gc', 'boot-a', { params: { keep: 0 }, user: 'alice' });
    a.addUpdate('loc-1', 1, started, 'running');
    const lines = Array.from({ length: LOCAL_LOG_LINES + 20 }, (_, i) => ({ tsMs: i, level: 'info', text: `line ${i}` }));
    a.addUpdate('loc-1', 1, { $case: 'log', value: { lines } });
    assert.deepEqual(a.unfinished(), [], 'not in Hello.unfinished_jobs');
    assert.deepEqual(a.localChanges(), [], 'nothing to report before it finished');
    a.addUpdate('loc-1', 1, result);
    assert.deepEqual(a.unacked(), [], 'never a JobUpdate');
    const b = new JobStore(path, () => now);
    b.load();
    assert.equal(b.ack('loc-1:1:result:1'), false, 'its update ids are not the controller\'s to acknowledge');
    const [c] = b.localChanges();
    assert.deepEqual({ ...c!, log: c!.log.length }, { changeId: 'loc-1', type: 'generations.gc', paramsJson: '{"keep":0}', startedAtMs: 1000, result: result.value, user: 'alice', log: LOCAL_LOG_LINES });
    assert.equal(c!.log.at(-1)!.text, `line ${LOCAL_LOG_LINES + 19}`, 'the newest lines are kept');
    // Long lines: bounded by characters too.
    b.accept('loc-2', 1, 'facts.collect', 'boot-b', { params: {}, user: '' });
    b.addUpdate('loc-2', 1, { $case: 'log', value: { lines: Array.from({ length: 10 }, (_, i) => ({ tsMs: i, level: 'info', text: String(i).repeat(16 * 1024) })) } });
    b.addUpdate('loc-2', 1, result);
    const kept = b.localChanges().find((x) => x.changeId === 'loc-2')!.log;
    assert.ok(kept.reduce((n, l) => n + l.text.length, 0) <= LOCAL_LOG_CHARS);
    assert.equal(kept.at(-1)!.text[0], '9');
    assert.equal(b.ackLocal('loc-1'), true);
    assert.equal(b.ackLocal('loc-1'), false, 'a second Ack changes nothing');
    assert.deepEqual(b.localChanges().map((x) => x.changeId), ['loc-2']);
    assert.equal(b.localJobs().find((j) => j.jobId === 'loc-1')?.reportedAtMs, 1000);
    // Kept until reported, then pruned like any acknowledged job.
    now += JOB_RETENTION_MS + 1;
    assert.deepEqual(b.prune(), ['loc-1']);
    assert.deepEqual(readdirSync(path).sort(), ['loc-2.json']);
  });
});
