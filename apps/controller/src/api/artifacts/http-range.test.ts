import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decideRange } from './http-range.js';

describe('HTTP Range decisions', () => {
  const e = '"abc"';
  it('serves one byte range, open-ended and suffix ranges', () => {
    assert.deepEqual(decideRange('bytes=0-99', 1000, undefined, e), { kind: 'partial', start: 0, end: 99 });
    assert.deepEqual(decideRange('bytes=900-', 1000, undefined, e), { kind: 'partial', start: 900, end: 999 });
    assert.deepEqual(decideRange('bytes=900-5000', 1000, undefined, e), { kind: 'partial', start: 900, end: 999 });
    assert.deepEqual(decideRange('bytes=-100', 1000, undefined, e), { kind: 'partial', start: 900, end: 999 });
    assert.deepEqual(decideRange('bytes=-5000', 1000, undefined, e), { kind: 'partial', start: 0, end: 999 });
  });
  it('refuses a range past the end with 416', () => {
    assert.deepEqual(decideRange('bytes=1000-', 1000, undefined, e), { kind: 'unsatisfiable' });
    assert.deepEqual(decideRange('bytes=-0', 1000, undefined, e), { kind: 'unsatisfiable' });
    assert.deepEqual(decideRange('bytes=0-', 0, undefined, e), { kind: 'unsatisfiable' });
  });
  it('sends everything for no, malformed, multiple or stale ranges', () => {
    assert.deepEqual(decideRange(undefined, 10, undefined, e), { kind: 'full' });
    assert.deepEqual(decideRange('bytes=0-1,5-6', 10, undefined, e), { kind: 'full' });
    assert.deepEqual(decideRange('items=0-1', 10, undefined, e), { kind: 'full' });
    assert.deepEqual(decideRange('bytes=5-2', 10, undefined, e), { kind: 'full' });
    assert.deepEqual(decideRange('bytes=2-5', 10, '"other"', e), { kind: 'full' });
    assert.deepEqual(decideRange('bytes=2-5', 10, e, e), { kind: 'partial', start: 2, end: 5 });
  });
});
