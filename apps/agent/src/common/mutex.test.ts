import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Mutex } from './mutex.js';

const tick = () => new Promise((r) => setImmediate(r));

describe('mutex', () => {
  it('runs functions one at a time, in call order', async () => {
    const m = new Mutex();
    const order: string[] = [];
    let release!: () => void;
    const first = m.run(() => new Promise<void>((r) => (release = () => (order.push('first'), r()))));
    const second = m.run(async () => void order.push('second'));
    await tick();
    assert.deepEqual(order, []);
    release();
    await Promise.all([first, second]);
    assert.deepEqual(order, ['first', 'second']);
  });

  it('a waiter whose signal aborts rejects at once with the reason and never runs; the queue goes on', { timeout: 5000 }, async () => {
    const m = new Mutex();
    let release!: () => void;
    const holder = m.run(() => new Promise<void>((r) => (release = r)));
    const ctl = new AbortController();
    let ran = false;
    const waiter = m.run(async () => void (ran = true), ctl.signal);
    const after = m.run(async () => 'after');
    await tick();
    ctl.abort({ kind: 'cancel', reason: 'test' });
    // Settles while the holder still runs.
    await assert.rejects(waiter, (e) => (e as { kind: string }).kind === 'cancel');
    release();
    await holder;
    assert.equal(await after, 'after');
    assert.equal(ran, false);
  });

  it('an already aborted signal never runs the function', async () => {
    const m = new Mutex();
    let ran = false;
    await assert.rejects(m.run(async () => void (ran = true), AbortSignal.abort(new Error('gone'))), /gone/);
    await m.idle();
    assert.equal(ran, false);
  });

  it('once the function started, the promise settles with it, not with the abort', async () => {
    const m = new Mutex();
    const ctl = new AbortController();
    let release!: () => void;
    const p = m.run(() => new Promise<string>((r) => (release = () => r('finished'))), ctl.signal);
    await tick();
    ctl.abort(new Error('late'));
    release();
    assert.equal(await p, 'finished');
  });
});
