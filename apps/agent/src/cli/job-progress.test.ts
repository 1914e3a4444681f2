import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { JobUpdate } from '@ibex/proto';
import { JobProgress } from './job-progress.js';

const progress = (percent: number, message: string): JobUpdate => ({ updateId: 'x', jobId: 'j', attempt: 1, update: { $case: 'progress', value: { percent, message } } });
const log = (text: string, level = 'info'): JobUpdate => ({ updateId: 'x', jobId: 'j', attempt: 1, update: { $case: 'log', value: { lines: [{ tsMs: 5, level, text }] } } });

function capture(opts: { json?: boolean; columns?: number }) {
  const out: string[] = [];
  const err: string[] = [];
  const p = new JobProgress({ json: !!opts.json, out: (t) => out.push(t), err: (t) => err.push(t), ...(opts.columns ? { terminal: { columns: opts.columns } } : {}) });
  return { p, out, err };
}

describe('job progress at the console', () => {
  it('draws a bar in place on a terminal, prints log lines above it, and clears it at the end', () => {
    const { p, out, err } = capture({ columns: 60 });
    p.update(progress(50, 'snapshotting 20261203080207gdoemBeF and a message far too long for the line'));
    p.update(log('a warning', 'warn'));
    p.update(progress(100, 'switched'));
    p.done();
    assert.deepEqual(out, []);
    const bar1 = '[############............]  50% snapshotting 20261203080...';
    assert.equal(bar1.length, 59, 'fits the terminal');
    assert.deepEqual(err, [`\r\x1b[2K${bar1}`, `\r\x1b[2Kwarn: a warning\n${bar1}`, '\r\x1b[2K[########################] 100% switched', '\r\x1b[2K']);
  });

  it('prints one line per message elsewhere, a log line repeating the progress message once', () => {
    const { p, err } = capture({});
    p.update(progress(10, 'fetching'));
    p.update(progress(10, 'fetching'));
    p.update(log('fetching'));
    p.update(log('checksum ok'));
    p.done();
    assert.deepEqual(err, ['[ 10%] fetching\n', 'info: checksum ok\n']);
  });

  it('writes one JSON object per line on stdout with --json', () => {
    const { p, out, err } = capture({ json: true, columns: 80 });
    p.update({ updateId: 'x', jobId: 'j', attempt: 1, update: { $case: 'started', value: { startedAtMs: 7 } } });
    p.update(progress(10, 'fetching'));
    p.update(log('checksum ok'));
    p.done();
    assert.deepEqual(
      out.map((l) => JSON.parse(l)),
      [
        { event: 'started', jobId: 'j', atMs: 7 },
        { event: 'progress', percent: 10, message: 'fetching' },
        { event: 'log', level: 'info', text: 'checksum ok', atMs: 5 },
      ],
    );
    assert.ok(out.every((l) => l.endsWith('\n') && !l.slice(0, -1).includes('\n')));
    assert.deepEqual(err, []);
  });
});
