import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { dueCount, FixedRateLoad, scheduledAt } from './rest-load.js';

describe('fixed-rate REST load', () => {
  it('schedules request i at start + i/rate, and counts what is due by a moment', () => {
    assert.equal(dueCount(1000, 999, 200), 0);
    assert.equal(dueCount(1000, 1000, 200), 1); // request 0 is due at the start
    assert.equal(dueCount(1000, 1004.9, 200), 1);
    assert.equal(dueCount(1000, 1005, 200), 2);
    assert.equal(dueCount(1000, 2000, 200), 201);
    assert.equal(scheduledAt(1000, 0, 200), 1000);
    assert.equal(scheduledAt(1000, 200, 200), 2000);
  });

  it('measures latency from the scheduled send time, so a server that falls behind shows its queue (no coordinated omission)', async () => {
    // One connection, 40 ms a request, 50 requests a second asked: the server can do 25/s, so
    // requests queue and the later ones wait ever longer. Measured from when each was actually
    // written, every latency would be about 40 ms.
    const server = createServer((_req, res) => setTimeout(() => res.end('[]'), 40));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const { port } = server.address() as AddressInfo;
      const load = new FixedRateLoad(new URL(`http://127.0.0.1:${port}/x`), {}, 50, 1);
      load.start();
      await new Promise((r) => setTimeout(r, 1000));
      const r = await load.stop();
      assert.ok(r.sent >= 45 && r.sent <= 56, `sent ${r.sent} in ${r.seconds} s at 50/s`);
      assert.equal(r.ok, r.sent);
      assert.equal(r.errors, 0);
      assert.ok(r.latency.p50 >= 35, `p50 ${r.latency.p50}`);
      // About 50 requests at 25/s: the last waits ~1 s behind its schedule.
      assert.ok(r.latency.max > 600, `max ${r.latency.max} ms: the queueing behind the slow server is not counted`);
    } finally {
      server.close();
    }
  });

  it('counts answers other than 200 as errors', async () => {
    const server = createServer((_req, res) => {
      res.statusCode = 503;
      res.end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    const load = new FixedRateLoad(new URL(`http://127.0.0.1:${port}/`), {}, 100);
    load.start();
    await new Promise((r) => setTimeout(r, 200));
    const r = await load.stop();
    server.close();
    assert.ok(r.sent > 0);
    assert.equal(r.ok, 0);
    assert.equal(r.errors, r.sent);
    assert.match(r.firstErrors[0]!, /HTTP 503/);
  });
});
