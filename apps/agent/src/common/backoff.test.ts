import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Backoff } from './backoff.js';

describe('backoff', () => {
  it('grows exponentially up to the cap with full jitter', () => {
    const top = new Backoff({ baseMs: 1000, capMs: 60_000, random: () => 0.999999 });
    const ceilings = Array.from({ length: 10 }, () => top.next());
    assert.deepEqual(ceilings, [999, 1999, 3999, 7999, 15999, 31999, 59999, 59999, 59999, 59999]);
    const bottom = new Backoff({ baseMs: 1000, capMs: 60_000, random: () => 0 });
    assert.ok(Array.from({ length: 10 }, () => bottom.next()).every((d) => d === 0));
  });

  it('stays within [0, cap) for any random value and after many failures', () => {
    const b = new Backoff({ baseMs: 1000, capMs: 60_000 });
    for (let i = 0; i < 200; i++) {
      const d = b.next();
      assert.ok(d >= 0 && d < 60_000, `delay ${d}`);
    }
  });

  it('resets to the base after a success', () => {
    const b = new Backoff({ baseMs: 1000, capMs: 60_000, random: () => 0.999999 });
    b.next();
    b.next();
    b.next();
    b.reset();
    assert.equal(b.next(), 999);
  });

  it('spreads an attempt over a wider window when given one, and counts it as an attempt', () => {
    const b = new Backoff({ baseMs: 1000, capMs: 60_000, random: () => 0.999999 });
    assert.equal(b.next(40_000), 39_999, 'the window, wider than the first ceiling');
    assert.equal(b.next(), 1999, 'then the backoff goes on from its second ceiling');
    assert.equal(b.next(500), 3999, 'a narrower window changes nothing');
    assert.equal(b.next(120_000), 119_999, 'a window may exceed the cap');
  });

  it('longest() waits between half the cap and the cap', () => {
    assert.equal(new Backoff({ baseMs: 1000, capMs: 60_000, random: () => 0 }).longest(), 30_000);
    assert.equal(new Backoff({ baseMs: 1000, capMs: 60_000, random: () => 0.999999 }).longest(), 59_999);
  });
});
