import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decide, type EngineDecision, type EngineInput, type EngineTarget, type EngineWave } from './rollout-engine.js';
import { planWaves, type RolloutStrategy } from './rollout-waves.js';

const ids = (n: number, p = 'd') => Array.from({ length: n }, (_, i) => `${p}${String(i).padStart(3, '0')}`);
const T0 = new Date('2026-12-06T01:00:00Z');
const strategy = (s: Partial<RolloutStrategy> = {}): RolloutStrategy => ({ waves: { kind: 'none' }, maxInProgress: null, successThresholdPercent: 100, approval: 'none', ...s });

/** A small in-memory world: stores what `decide` decided, as the driver does in Postgres. */
class World {
  input: EngineInput;
  constructor(deviceIds: string[], s: RolloutStrategy, over: Partial<EngineInput> = {}) {
    const waves = planWaves(deviceIds, s);
    this.input = {
      now: T0,
      status: 'scheduled',
      reason: null,
      startAt: null,
      window: null,
      deadline: null,
      autoRollback: false,
      approvedThrough: -1,
      strategy: s,
      waves: waves.map((w): EngineWave => ({ index: w.index, name: w.name, requiresApproval: w.requiresApproval, startedAt: null, finishedAt: null })),
      targets: waves.flatMap((w) => w.deviceIds.map((deviceId): EngineTarget => ({ deviceId, wave: w.index, state: 'pending', reason: null, online: true, job: null, rollback: null }))),
      ...over,
    };
  }
  t(id: string): EngineTarget {
    return this.input.targets.find((t) => t.deviceId === id)!;
  }
  tick(): EngineDecision {
    const d = decide(this.input);
    const i = this.input;
    i.status = d.status;
    i.reason = d.reason;
    for (const c of d.changes) Object.assign(this.t(c.deviceId), { state: c.state, reason: c.reason });
    for (const id of d.dispatch) Object.assign(this.t(id), { state: 'in_progress', reason: null, job: { status: 'active' } });
    for (const id of d.rollback) this.t(id).rollback = { status: 'active' };
    for (const w of d.wavesStarted) i.waves[w]!.startedAt = i.now;
    for (const w of d.wavesFinished) i.waves[w]!.finishedAt = i.now;
    return d;
  }
  finishJobs(ok: (id: string) => boolean = () => true) {
    for (const t of this.input.targets) {
      if (t.job?.status === 'active') t.job = ok(t.deviceId) ? { status: 'succeeded' } : { status: 'failed', error: `${t.deviceId} broke` };
      if (t.rollback?.status === 'active') t.rollback = { status: 'succeeded' };
    }
  }
  count(state: string) {
    return this.input.targets.filter((t) => t.state === state).length;
  }
}

describe('planWaves', () => {
  it('canary then fixed sizes, the rest in a last wave', () => {
    const w = planWaves(ids(20), strategy({ canary: { count: 2 }, waves: { kind: 'fixed', sizes: [{ count: 3 }, { percent: 25 }] } }));
    assert.deepEqual(w.map((x) => [x.name, x.deviceIds.length]), [['canary', 2], ['wave-1', 3], ['wave-2', 5], ['wave-3', 10]]);
    assert.deepEqual(w.flatMap((x) => x.deviceIds), ids(20), 'every device once, in order');
  });
  it('equal waves and exponential waves', () => {
    assert.deepEqual(planWaves(ids(10_000), strategy({ waves: { kind: 'equal', count: 5 } })).map((x) => x.deviceIds.length), [2000, 2000, 2000, 2000, 2000]);
    assert.deepEqual(planWaves(ids(11), strategy({ waves: { kind: 'equal', count: 3 } })).map((x) => x.deviceIds.length), [4, 4, 3]);
    assert.deepEqual(planWaves(ids(30), strategy({ canary: { percent: 5 }, waves: { kind: 'exponential', first: 2, factor: 2 } })).map((x) => x.deviceIds.length), [2, 2, 4, 8, 14]);
  });
  it('approval after the canary or before every wave', () => {
    assert.deepEqual(planWaves(ids(10), strategy({ canary: { count: 1 }, waves: { kind: 'equal', count: 3 }, approval: 'after_canary' })).map((x) => x.requiresApproval), [false, true, false, false]);
    assert.deepEqual(planWaves(ids(10), strategy({ waves: { kind: 'equal', count: 3 }, approval: 'every_wave' })).map((x) => x.requiresApproval), [false, true, true]);
  });
  it('no devices: one empty wave', () => {
    assert.deepEqual(planWaves([], strategy({ canary: { count: 1 } })).map((x) => x.deviceIds.length), [0]);
  });
});

describe('rollout engine', () => {
  it('canary first, then each wave only after the one before succeeded', () => {
    const w = new World(ids(10), strategy({ canary: { count: 1 }, waves: { kind: 'fixed', sizes: [{ count: 3 }] } }));
    let d = w.tick();
    assert.equal(d.status, 'running');
    assert.deepEqual(d.dispatch, ['d000']);
    assert.deepEqual(w.tick().dispatch, [], 'nothing more while the canary runs');
    w.finishJobs();
    d = w.tick();
    assert.deepEqual(d.wavesFinished, [0]);
    assert.deepEqual(d.dispatch, ['d001', 'd002', 'd003']);
    w.finishJobs();
    d = w.tick();
    assert.deepEqual(d.dispatch, ids(10).slice(4));
    w.finishJobs();
    d = w.tick();
    assert.equal(d.status, 'succeeded');
    assert.equal(w.count('succeeded'), 10);
  });

  it('maxInProgress limits the jobs under way across waves', () => {
    const w = new World(ids(7), strategy({ maxInProgress: 3 }));
    assert.deepEqual(w.tick().dispatch, ['d000', 'd001', 'd002']);
    w.t('d001').job = { status: 'succeeded' };
    assert.deepEqual(w.tick().dispatch, ['d003']);
  });

  it('waits for the start time, then starts', () => {
    const w = new World(ids(2), strategy(), { startAt: new Date(T0.getTime() + 60_000) });
    const d = w.tick();
    assert.equal(d.status, 'scheduled');
    assert.deepEqual(d.dispatch, []);
    assert.deepEqual(d.wakeAt, w.input.startAt);
    w.input.now = new Date(T0.getTime() + 60_000);
    assert.deepEqual(w.tick().dispatch, ['d000', 'd001']);
  });

  it('the error threshold aborts once enough devices finished, and autoRollback rolls the changed ones back', () => {
    const w = new World(ids(10), strategy({ waves: { kind: 'none' }, maxInProgress: 4, errorThreshold: { percent: 50, minFinished: 4 } }), { autoRollback: true });
    w.tick();
    // 2 of 4 fail: 50 % with 4 finished.
    w.finishJobs((id) => id < 'd002');
    let d = w.tick();
    assert.equal(d.status, 'rolling_back');
    assert.match(d.reason!, /error threshold reached: 2 of 4 finished devices failed \(50%, threshold 50%\)/);
    assert.deepEqual(d.rollback, ['d000', 'd001']);
    assert.deepEqual(d.dispatch, []);
    assert.equal(w.count('skipped'), 6);
    w.finishJobs();
    d = w.tick();
    assert.equal(d.status, 'aborted');
    assert.deepEqual([w.t('d000').state, w.t('d001').state, w.t('d002').state], ['rolled_back', 'rolled_back', 'failed']);
  });

  it('the error threshold waits for minFinished', () => {
    const w = new World(ids(10), strategy({ maxInProgress: 1, successThresholdPercent: 0, errorThreshold: { percent: 10, minFinished: 3 } }));
    w.tick();
    w.finishJobs(() => false);
    assert.equal(w.tick().status, 'running', 'one failure of one finished is below minFinished 3');
    w.finishJobs(() => true);
    w.tick();
    w.finishJobs(() => true);
    assert.equal(w.tick().status, 'aborted', '1 of 3 failed = 33% >= 10%');
  });

  it('a wave below its success threshold fails the rollout and skips the rest', () => {
    const w = new World(ids(6), strategy({ canary: { count: 2 }, successThresholdPercent: 100 }));
    w.tick();
    w.finishJobs((id) => id === 'd000');
    const d = w.tick();
    assert.equal(d.status, 'failed');
    assert.match(d.reason!, /wave canary finished with 1 of 2 devices succeeded \(50%\), below the success threshold of 100%/);
    assert.equal(w.count('skipped'), 4);
    assert.match(w.t('d005').reason!, /missed its success threshold/);
  });

  it('pause stops new jobs but records results; resume goes on', () => {
    const w = new World(ids(4), strategy({ maxInProgress: 2 }));
    w.tick();
    w.input.status = 'paused';
    w.finishJobs();
    const d = w.tick();
    assert.equal(d.status, 'paused');
    assert.deepEqual(d.dispatch, []);
    assert.equal(w.count('succeeded'), 2, 'results that arrive while paused are recorded');
    w.input.status = 'running';
    assert.deepEqual(w.tick().dispatch, ['d002', 'd003']);
  });

  it('a wave that needs approval waits until approvedThrough reaches it', () => {
    const w = new World(ids(5), strategy({ canary: { count: 1 }, approval: 'after_canary' }));
    w.tick();
    w.finishJobs();
    let d = w.tick();
    assert.equal(d.status, 'waiting_approval');
    assert.match(d.reason!, /wave wave-1 waits for approval/);
    assert.deepEqual(d.dispatch, []);
    assert.deepEqual(w.tick().dispatch, []);
    w.input.approvedThrough = 1;
    d = w.tick();
    assert.equal(d.status, 'running');
    assert.deepEqual(d.dispatch, ['d001', 'd002', 'd003', 'd004']);
  });

  it('an offline device gets its job when it returns, also after its wave moved on; the rollout waits for it', () => {
    const w = new World(ids(4), strategy({ canary: { count: 2 }, successThresholdPercent: 50 }));
    w.t('d001').online = false;
    assert.deepEqual(w.tick().dispatch, ['d000']);
    w.finishJobs();
    let d = w.tick();
    assert.deepEqual(d.wavesFinished, [0], '1 of 2 succeeded meets 50 % while the other is offline');
    assert.deepEqual(d.dispatch, ['d002', 'd003']);
    w.finishJobs();
    d = w.tick();
    assert.equal(d.status, 'running');
    w.t('d001').online = true;
    assert.deepEqual(w.tick().dispatch, ['d001']);
    w.finishJobs();
    assert.equal(w.tick().status, 'succeeded');
  });

  it('a wave that cannot pass without its offline devices waits for them', () => {
    const w = new World(ids(3), strategy({ canary: { count: 2 } }));
    w.t('d001').online = false;
    w.tick();
    w.finishJobs();
    const d = w.tick();
    assert.equal(d.status, 'running');
    assert.match(d.reason!, /wave canary waits for 1 offline device/);
    assert.deepEqual(d.dispatch, []);
  });

  it('the deadline skips devices still offline and ends the rollout failed, naming the count', () => {
    const deadline = new Date(T0.getTime() + 3600_000);
    const w = new World(ids(3), strategy(), { deadline });
    w.t('d002').online = false;
    const d0 = w.tick();
    assert.deepEqual(d0.wakeAt, deadline, 'the driver looks again at the deadline');
    w.finishJobs();
    w.tick();
    w.input.now = deadline;
    const d = w.tick();
    assert.equal(d.status, 'failed');
    assert.match(d.reason!, /the deadline passed: 1 device\(s\) skipped, 0 failed/);
    assert.equal(w.t('d002').state, 'skipped');
    assert.equal(w.t('d002').reason, 'offline until the deadline');
  });

  it('a maintenance window: no jobs while closed, jobs while open, stop again when it closes', () => {
    const open = new Date(T0.getTime() + 3600_000);
    const w = new World(ids(4), strategy({ maxInProgress: 2 }), { window: { open: false, nextOpen: open, closesAt: null } });
    let d = w.tick();
    assert.equal(d.status, 'scheduled');
    assert.deepEqual(d.wakeAt, open);
    const closes = new Date(open.getTime() + 600_000);
    w.input.window = { open: true, nextOpen: null, closesAt: closes };
    d = w.tick();
    assert.deepEqual(d.dispatch, ['d000', 'd001']);
    assert.deepEqual(d.wakeAt, closes);
    w.finishJobs();
    const next = new Date(open.getTime() + 7 * 86_400_000);
    w.input.window = { open: false, nextOpen: next, closesAt: null };
    d = w.tick();
    assert.deepEqual(d.dispatch, [], 'no new job after the window closed');
    assert.equal(d.status, 'running');
    assert.match(d.reason!, /outside the maintenance window/);
    assert.deepEqual(d.wakeAt, next);
    w.input.window = { open: true, nextOpen: null, closesAt: new Date(next.getTime() + 600_000) };
    assert.deepEqual(w.tick().dispatch, ['d002', 'd003']);
  });

  it('an operator abort skips the pending devices; without autoRollback nothing is rolled back', () => {
    const w = new World(ids(4), strategy({ maxInProgress: 1 }));
    w.tick();
    w.input.status = 'aborted';
    const d = w.tick();
    assert.deepEqual(d.rollback, []);
    assert.equal(w.count('skipped'), 3);
    w.finishJobs();
    w.tick();
    assert.equal(w.t('d000').state, 'succeeded', 'the job under way still has its result recorded');
  });

  it('rolling back waits for jobs under way and rolls them back once they succeeded; a failed rollback keeps its reason', () => {
    const w = new World(ids(3), strategy(), { autoRollback: true });
    w.tick();
    w.t('d000').job = { status: 'succeeded' };
    w.input.status = 'rolling_back';
    let d = w.tick();
    assert.deepEqual(d.rollback, ['d000']);
    assert.equal(d.status, 'rolling_back');
    w.t('d000').rollback = { status: 'failed', error: 'no such generation' };
    w.t('d001').job = { status: 'succeeded' };
    w.t('d002').job = { status: 'failed', error: 'x' };
    d = w.tick();
    assert.deepEqual(d.rollback, ['d001']);
    assert.equal(w.t('d000').reason, 'rollback failed: no such generation');
    w.finishJobs();
    d = w.tick();
    assert.equal(d.status, 'aborted');
    assert.deepEqual(w.input.targets.map((t) => t.state), ['succeeded', 'rolled_back', 'failed']);
  });

  it('retry of failed devices: set back to pending, they are dispatched again', () => {
    const w = new World(ids(2), strategy());
    w.tick();
    w.finishJobs((id) => id === 'd000');
    assert.equal(w.tick().status, 'failed');
    Object.assign(w.t('d001'), { state: 'pending', reason: null, job: null });
    w.input.status = 'running';
    assert.deepEqual(w.tick().dispatch, ['d001']);
    w.finishJobs();
    assert.equal(w.tick().status, 'succeeded');
  });

  it('devices already skipped at creation (no such generation) do not count against the threshold', () => {
    const w = new World(ids(3), strategy());
    Object.assign(w.t('d001'), { state: 'skipped', reason: 'no generation from before 2026-11-01' });
    assert.deepEqual(w.tick().dispatch, ['d000', 'd002']);
    w.finishJobs();
    assert.equal(w.tick().status, 'succeeded');
  });
});

describe('maintenance windows from cron', () => {
  it('Sunday 02:00 Europe/Berlin for 60 minutes: closed before, open at and inside, closed after', async () => {
    const { windowState, cronProblems } = await import('./rollout-window.js');
    // 2026-12-06 is a Sunday; Berlin is UTC+1 in winter, so 02:00 there is 01:00Z.
    const at = (s: string) => windowState('0 2 * * 0', 'Europe/Berlin', 60, new Date(s));
    const before = at('2026-12-06T00:59:00Z');
    assert.equal(before.open, false);
    assert.equal(before.nextOpen?.toISOString(), '2026-12-06T01:00:00.000Z');
    const opening = at('2026-12-06T01:00:00Z');
    assert.equal(opening.open, true);
    assert.equal(opening.closesAt?.toISOString(), '2026-12-06T02:00:00.000Z');
    assert.equal(at('2026-12-06T01:59:59Z').open, true);
    const after = at('2026-12-06T02:00:00Z');
    assert.equal(after.open, false);
    assert.equal(after.nextOpen?.toISOString(), '2026-12-13T01:00:00.000Z');
    assert.deepEqual(cronProblems('0 2 * * 0', 'Mars/Olympus').map((p) => p.field), ['timeZone']);
    assert.deepEqual(cronProblems('every sunday', 'UTC').map((p) => p.field), ['cron']);
    assert.deepEqual(cronProblems('0 2 * * 0', 'Europe/Berlin'), []);
  });
});
