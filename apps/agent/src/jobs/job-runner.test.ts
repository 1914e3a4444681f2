import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { type JobAssignment, JobOutcome, type JobUpdate } from '@ibex/proto';
import { silentLogger } from '../common/log.js';
import { JobStore } from '../journal/job-store.js';
import type { JobHandlers } from './job-handlers.js';
import { INTERRUPTED_ERROR, JobRunner, MAX_OUTPUT_JSON_CHARS, MAX_PROGRESS_MESSAGE_CHARS, MAX_TEXT_CHARS } from './job-runner.js';
import { waitFor } from '../testing/wait.js';

const assignment = (jobId: string, type = 'facts.collect', timeoutMs = 0, attempt = 1): JobAssignment => ({ jobId, attempt, type, paramsJson: '{}', timeoutMs, createdAtMs: 0 });

describe('job runner', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ibex-runner-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  let n = 0;

  /** facts.collect blocks until released or aborted; state.apply fails transiently. */
  let planTextChars = 0;
  const setup = (bootId = 'boot-1', path = join(dir, `j${++n}`)) => {
    const sent: JobUpdate[] = [];
    let runs = 0;
    let release: () => void = () => {};
    const handlers: JobHandlers = {
      'facts.collect': (_p, ctx) =>
        new Promise((resolve, reject) => {
          runs++;
          ctx.progress(50, 'half way');
          release = () => resolve({} as never);
          ctx.signal.addEventListener('abort', () => reject(new Error('aborted')));
        }),
      'state.apply': async () => {
        runs++;
        throw Object.assign(new Error('EBUSY: try later'), { code: 'EBUSY' });
      },
      'generations.rollback': async () => {
        throw new Error('not used here');
      },
      'image.build': async () => {
        throw new Error('not used here');
      },
      'generations.init': async () => {
        throw new Error('not used here');
      },
      'generations.adopt': async () => {
        throw new Error('not used here');
      },
      'generations.upgrade': async () => {
        throw new Error('not used here');
      },
      'generations.gc': async () => {
        throw new Error('not used here');
      },
      'generations.bootEntries': async () => {
        throw new Error('not used here');
      },
      // Output as big as `planTextChars` asks for (the controller's bound on output and texts).
      'state.plan': async (_p, ctx) => {
        ctx.log('info', 'x'.repeat(planTextChars));
        ctx.progress(10, 'y'.repeat(planTextChars));
        return { revision: 0, proposed: false, sections: [{ section: 'files', state: 'pending', steps: [{ action: 'write', text: 'z'.repeat(planTextChars) }] }] };
      },
    };
    const store = new JobStore(path);
    store.load();
    const runner = new JobRunner({ store, handlers, bootId, agentVersion: 't', send: (u) => sent.push(u), log: silentLogger });
    const results = () => sent.filter((u) => u.update?.$case === 'result').map((u) => (u.update?.$case === 'result' ? u.update.value : undefined)!);
    return { runner, store, sent, results, runs: () => runs, release: () => release(), path };
  };

  it('ignores a duplicate assignment while the job runs, then finishes once', async () => {
    const t = setup();
    t.runner.assign(assignment('a'));
    t.runner.assign(assignment('a'));
    assert.equal(t.runs(), 1);
    t.release();
    await waitFor('the result', () => t.results().length === 1);
    assert.equal(t.results()[0]!.outcome, JobOutcome.JOB_OUTCOME_SUCCEEDED);
    assert.deepEqual(t.sent.map((u) => u.updateId), ['a:1:started:1', 'a:1:progress:1', 'a:1:result:1']);
  });

  it('cancels a running job (CANCELLED) and a job cancelled before its assignment arrives', async () => {
    const t = setup();
    t.runner.assign(assignment('c'));
    t.runner.cancel({ jobId: 'c', reason: 'operator' });
    await waitFor('the cancelled result', () => t.results().length === 1);
    assert.equal(t.results()[0]!.outcome, JobOutcome.JOB_OUTCOME_CANCELLED);
    assert.equal(t.results()[0]!.error, 'cancelled: operator');
    t.runner.cancel({ jobId: 'early', reason: 'changed my mind' });
    t.runner.assign(assignment('early'));
    assert.equal(t.runs(), 1, 'the early-cancelled job never ran');
    assert.equal(t.results()[1]!.outcome, JobOutcome.JOB_OUTCOME_CANCELLED);
    // A cancellation after the result changes nothing.
    t.runner.cancel({ jobId: 'c', reason: 'late' });
    assert.equal(t.results().length, 2);
  });

  it('keeps every update within what the controller accepts: an oversized output fails the job, long texts are cut', async () => {
    const t = setup();
    planTextChars = 2 * MAX_OUTPUT_JSON_CHARS;
    t.runner.assign(assignment('big', 'state.plan'));
    await waitFor('the result', () => t.results().length === 1);
    const r = t.results()[0]!;
    assert.equal(r.outcome, JobOutcome.JOB_OUTCOME_FAILED);
    assert.equal(r.outputJson, '');
    assert.equal(r.retryable, false);
    assert.match(r.error, /output is \d+ characters of JSON, over the 1048576 the controller accepts; it was dropped/);
    const log = t.sent.find((u) => u.update?.$case === 'log');
    const progress = t.sent.find((u) => u.update?.$case === 'progress');
    assert.ok(log?.update?.$case === 'log' && log.update.value.lines[0]!.text.length <= MAX_TEXT_CHARS);
    assert.ok(progress?.update?.$case === 'progress' && progress.update.value.message.length <= MAX_PROGRESS_MESSAGE_CHARS);
    planTextChars = 0;
  });

  it('fails a job that runs past its timeout as retryable', async () => {
    const t = setup();
    t.runner.assign(assignment('slow', 'facts.collect', 50));
    await waitFor('the timeout', () => t.results().length === 1);
    assert.equal(t.results()[0]!.outcome, JobOutcome.JOB_OUTCOME_FAILED);
    assert.equal(t.results()[0]!.error, 'timed out after 50 ms');
    assert.equal(t.results()[0]!.retryable, true);
  });

  it('marks transient failures retryable', async () => {
    const t = setup();
    t.runner.assign(assignment('busy', 'state.apply'));
    await waitFor('the result', () => t.results().length === 1);
    assert.deepEqual([t.results()[0]!.outcome, t.results()[0]!.retryable], [JobOutcome.JOB_OUTCOME_FAILED, true]);
  });

  it('refuses an attempt older than one it already has', () => {
    const t = setup();
    t.runner.assign(assignment('old', 'state.apply', 0, 3));
    t.runner.assign(assignment('old', 'state.apply', 0, 2));
    const last = t.results().at(-1)!;
    assert.equal(last.outcome, JobOutcome.JOB_OUTCOME_REJECTED);
    assert.match(last.error, /attempt 2 is older than attempt 3/);
  });

  it('finishes jobs a previous process left running as interrupted, and on stop aborts what still runs', async () => {
    const first = setup('boot-A');
    first.runner.assign(assignment('left'));
    // The process "dies" here: a new runner with another boot id reads the same journal.
    const second = setup('boot-B', first.path);
    assert.equal(second.runner.finishInterrupted(), 1);
    const r = second.store.get('left', 1)!.result!.update;
    assert.ok(r.$case === 'result' && r.value.error === INTERRUPTED_ERROR && r.value.retryable);
    second.runner.assign(assignment('left'));
    assert.equal(second.runs(), 0);

    const t = setup();
    t.runner.assign(assignment('running-at-stop'));
    await t.runner.stop(20);
    assert.match(t.results()[0]!.error, /^interrupted: the agent was stopped/);
    assert.equal(t.runner.runningCount, 0);
  });
});
