import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Backoff } from './backoff.js';

describe('simulated agents reconnect backoff (as the real agent)', () => {
  it('is exponential up to the cap, uniformly jittered below each ceiling, and resets', () => {
    const top = new Backoff(1000, 60_000, () => 0.999);
    assert.deepEqual(Array.from({ length: 8 }, () => top.next()), [999, 1998, 3996, 7992, 15984, 31968, 59940, 59940]);
    top.reset();
    assert.equal(top.next(), 999);
    const bottom = new Backoff(1000, 60_000, () => 0);
    assert.equal(bottom.next(), 0);
  });

  it('spreads a crowd: 10,000 first delays after a drop cover [0, 1 s) about evenly', () => {
    const delays = Array.from({ length: 10_000 }, () => new Backoff().next());
    const buckets = [0, 0, 0, 0];
    for (const d of delays) buckets[Math.floor(d / 250)]!++;
    assert.ok(Math.max(...delays) < 1000);
    for (const b of buckets) assert.ok(b > 2000 && b < 3000, `buckets ${buckets.join(', ')}`);
  });
});
