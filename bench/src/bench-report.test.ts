import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type BenchResult, judge } from './bench-report.js';
import { distribution } from './stats.js';

type Measured = Omit<BenchResult, 'ok' | 'failures' | 'notChecked'>;

function measured(patch: { connected?: number; peakMb?: number | null; lags?: number[]; unconfirmed?: number; disconnects?: number } = {}): Measured {
  const lags = patch.lags ?? [400, 900, 1000];
  const late = lags.filter((l) => l > 5000).length;
  const unconfirmed = patch.unconfirmed ?? 0;
  return {
    bar: { agents: 10, maxRssMb: 500, maxLagMs: 5000 },
    config: { agents: 10, heartbeatMs: 5000, durationS: 60, connectConcurrency: 100, enrollConcurrency: 16, sampleMs: 200 },
    controller: { mode: 'spawned', pid: 1 },
    enroll: { ms: 1 },
    connect: { agents: 10, connected: patch.connected ?? 10, failed: 10 - (patch.connected ?? 10), failedAttempts: 0, ms: 1, firstErrors: ['UNAVAILABLE: x'] },
    steady: {
      seconds: 60,
      connectedEnd: 10,
      disconnects: patch.disconnects ?? 0,
      disconnectReasons: [],
      ...(patch.peakMb === null ? {} : { rssMb: { current: 100, peak: patch.peakMb ?? 300 } }),
      heartbeatsSentPerS: 2,
      heartbeatsStoredPerS: 2,
    },
    lag: { ...distribution(lags), heartbeatsSent: lags.length + unconfirmed, unconfirmed, overLimit: late + unconfirmed, limitMs: 5000, sampleMs: 200, slowestReadMs: 3 },
    harness: { cpuPercent: 1, eventLoopDelayP99Ms: 1, eventLoopDelayMaxMs: 1 },
    windows: [],
  };
}

describe('the bar', () => {
  it('is met when all connected, RSS under the limit and every heartbeat in time', () => {
    assert.deepEqual(judge(measured()), { ok: true, failures: [], notChecked: [] });
  });

  it('fails on each part, saying which', () => {
    assert.match(judge(measured({ connected: 9 })).failures.join(), /only 9 of 10 agents connected/);
    assert.match(judge(measured({ peakMb: 500 })).failures.join(), /peak RSS 500 MB is not under 500 MB/);
    assert.match(judge(measured({ lags: [100, 5001] })).failures.join(), /1 of 2 heartbeats were not in lastSeenAt within 5000 ms/);
    assert.match(judge(measured({ unconfirmed: 2 })).failures.join(), /2 of 5 heartbeats .* \(2 never/);
    assert.match(judge(measured({ disconnects: 1 })).failures.join(), /1 streams ended/);
    assert.match(judge(measured({ lags: [] })).failures.join(), /no heartbeat was sent/);
  });

  it('says what it could not check instead of passing it silently', () => {
    const v = judge(measured({ peakMb: null }));
    assert.equal(v.ok, true);
    assert.match(v.notChecked.join(), /controller RSS/);
  });
});
