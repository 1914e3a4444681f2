import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Limiter } from './limiter.js';

describe('Limiter', () => {
  it('never runs more than max at once, runs the waiters in order, and a new caller queues behind them', async () => {
    const limiter = new Limiter(2);
    let running = 0;
    let peak = 0;
    const order: number[] = [];
    const releases: Array<() => void> = [];
    const task = (n: number) => () =>
      new Promise<number>((resolve) => {
        running++;
        peak = Math.max(peak, running);
        order.push(n);
        releases.push(() => {
          running--;
          resolve(n);
        });
      });
    const done = [0, 1, 2, 3].map((n) => limiter.run(task(n)));
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(order, [0, 1]);
    assert.equal(limiter.queued, 2);
    // Finish one while a new caller arrives: the first waiter (2) gets the slot, the new one queues behind 3.
    releases.shift()!();
    done.push(limiter.run(task(4)));
    await new Promise((r) => setImmediate(r));
    assert.equal(peak, 2, 'at most 2 at once');
    assert.deepEqual(order, [0, 1, 2]);
    while (releases.length) {
      releases.shift()!();
      await new Promise((r) => setImmediate(r));
    }
    assert.deepEqual(await Promise.all(done), [0, 1, 2, 3, 4]);
    assert.deepEqual(order, [0, 1, 2, 3, 4]);
    assert.equal(peak, 2);
    // Every slot is given back: a later task starts at once.
    assert.equal(await limiter.run(async () => 'free'), 'free');
    assert.equal(limiter.queued, 0);
  });

  it('gives the slot back when a task throws', async () => {
    const limiter = new Limiter(1);
    await assert.rejects(limiter.run(async () => Promise.reject(new Error('boom'))), /boom/);
    assert.equal(await limiter.run(async () => 7), 7);
  });
});
