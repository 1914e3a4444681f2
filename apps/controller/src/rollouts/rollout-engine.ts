import type { RolloutStrategy } from './rollout-waves.js';

/**
 * The rollout engine: given what is stored about a rollout and the time, what happens next.
 * Pure (no clock, no database, no queue): the driver (rollout-driver.service.ts) reads the rows
 * under a lock, calls `decide`, writes the decision in the same transaction and only then
 * creates jobs, so every decision is replayable from Postgres after a crash.
 */

export type RolloutStatus = 'scheduled' | 'running' | 'paused' | 'waiting_approval' | 'rolling_back' | 'succeeded' | 'failed' | 'aborted';
export type TargetState = 'pending' | 'in_progress' | 'succeeded' | 'failed' | 'rolled_back' | 'skipped';

/** A job as the engine needs it: still under way, or how it ended. */
export type JobOutcome = { status: 'active' } | { status: 'succeeded' } | { status: 'failed'; error: string };

export interface EngineTarget {
  deviceId: string;
  wave: number;
  state: TargetState;
  reason: string | null;
  /** Connected now (a pending device is only sent its job while online). */
  online: boolean;
  /** The job of the current attempt, when one was dispatched. */
  job: JobOutcome | null;
  /** The rollback job, when one was dispatched. */
  rollback: JobOutcome | null;
}

export interface EngineWave {
  index: number;
  name: string;
  requiresApproval: boolean;
  startedAt: Date | null;
  finishedAt: Date | null;
}

/** Whether a maintenance window is open now, and when it next opens / closes (from cron, by the driver). */
export interface WindowState {
  open: boolean;
  /** When it next opens (null: never again). */
  nextOpen: Date | null;
  /** When the open window closes (only when open). */
  closesAt: Date | null;
}

export interface EngineInput {
  now: Date;
  status: RolloutStatus;
  reason: string | null;
  /** Start no earlier than this (start `at`), null: now. */
  startAt: Date | null;
  /** Null: no maintenance window, devices may get their job at any time. */
  window: WindowState | null;
  deadline: Date | null;
  autoRollback: boolean;
  /** Waves up to this index were approved by hand. */
  approvedThrough: number;
  strategy: Pick<RolloutStrategy, 'maxInProgress' | 'successThresholdPercent' | 'errorThreshold'>;
  waves: EngineWave[];
  targets: EngineTarget[];
}

export interface TargetChange {
  deviceId: string;
  state: TargetState;
  reason: string | null;
}

export interface EngineDecision {
  status: RolloutStatus;
  reason: string | null;
  /** Targets whose outcome changed (dispatched ones are in `dispatch`, already in_progress). */
  changes: TargetChange[];
  /** Send these devices their job now (in this order). */
  dispatch: string[];
  /** Send these devices their rollback job now. */
  rollback: string[];
  wavesStarted: number[];
  wavesFinished: number[];
  /** Look again then even if nothing else happens (start time, window, deadline); null: only on events. */
  wakeAt: Date | null;
}

const TERMINAL: readonly RolloutStatus[] = ['succeeded', 'failed', 'aborted'];
const DONE: readonly TargetState[] = ['succeeded', 'failed', 'rolled_back', 'skipped'];

export const isTerminalStatus = (s: RolloutStatus) => TERMINAL.includes(s);

const pct = (n: number) => `${Math.round(n * 10) / 10}%`;
const earliest = (...ds: (Date | null | undefined)[]): Date | null =>
  ds.reduce<Date | null>((min, d) => (d && (!min || d < min) ? d : min), null);

/** Changed and not rolled back yet (a rollback the driver could not even start says so in its reason). */
const needsRollback = (t: EngineTarget) => t.state === 'succeeded' && !t.rollback && !t.reason?.startsWith('rollback failed');

export function decide(input: EngineInput): EngineDecision {
  const { now } = input;
  const targets = new Map(input.targets.map((t) => [t.deviceId, { ...t }]));
  const changed = new Map<string, TargetChange>();
  const set = (deviceId: string, state: TargetState, reason: string | null) => {
    const t = targets.get(deviceId)!;
    t.state = state;
    t.reason = reason;
    changed.set(deviceId, { deviceId, state, reason });
  };
  const out: EngineDecision = { status: input.status, reason: input.reason, changes: [], dispatch: [], rollback: [], wavesStarted: [], wavesFinished: [], wakeAt: null };
  const finish = (): EngineDecision => {
    const dispatched = new Set(out.dispatch);
    out.changes = [...changed.values()].filter((c) => !dispatched.has(c.deviceId));
    return out;
  };
  const all = () => [...targets.values()];

  // 1. Record what the jobs did, in every status: a result that arrives after an abort still counts.
  for (const t of all()) {
    if (t.state === 'in_progress' && t.job && t.job.status !== 'active') {
      if (t.job.status === 'succeeded') set(t.deviceId, 'succeeded', null);
      else set(t.deviceId, 'failed', t.job.error);
    }
    if (t.rollback && t.rollback.status !== 'active' && t.state !== 'rolled_back' && !t.reason?.startsWith('rollback failed')) {
      if (t.rollback.status === 'succeeded') set(t.deviceId, 'rolled_back', 'rolled back after the rollout was aborted');
      else set(t.deviceId, t.state, `rollback failed: ${t.rollback.error}`);
    }
  }

  if (TERMINAL.includes(out.status) && out.status !== 'aborted') return finish();

  // 2. Aborted (by an operator, a threshold or a failed wave): nothing new starts.
  const abort = (reason: string) => {
    out.status = input.autoRollback ? 'rolling_back' : 'aborted';
    out.reason = reason;
  };
  if (out.status === 'running' || out.status === 'waiting_approval' || out.status === 'paused') {
    const e = input.strategy.errorThreshold;
    const finished = all().filter((t) => t.state === 'succeeded' || t.state === 'failed');
    const failed = finished.filter((t) => t.state === 'failed').length;
    if (e && finished.length >= e.minFinished && finished.length > 0 && (failed * 100) / finished.length >= e.percent) {
      abort(`error threshold reached: ${failed} of ${finished.length} finished devices failed (${pct((failed * 100) / finished.length)}, threshold ${e.percent}%)`);
    }
  }
  if (out.status === 'aborted' || out.status === 'rolling_back') {
    for (const t of all()) if (t.state === 'pending') set(t.deviceId, 'skipped', 'the rollout was aborted before this device got its job');
    if (out.status === 'rolling_back') {
      for (const t of all()) if (needsRollback(t)) out.rollback.push(t.deviceId);
      const busy = out.rollback.length > 0 || all().some((t) => t.state === 'in_progress' || t.rollback?.status === 'active');
      if (!busy) out.status = 'aborted';
    }
    return finish();
  }

  // 3. Not started yet: a start time, a maintenance window.
  if (out.status === 'scheduled') {
    if (input.deadline && now >= input.deadline) {
      for (const t of all()) if (t.state === 'pending') set(t.deviceId, 'skipped', 'the deadline passed before the rollout started');
      out.status = 'failed';
      out.reason = 'the deadline passed before the rollout could start';
      return finish();
    }
    if (input.startAt && now < input.startAt) {
      out.wakeAt = earliest(input.startAt, input.deadline);
      return finish();
    }
    if (input.window && !input.window.open) {
      out.reason = input.window.nextOpen ? `waiting for the maintenance window (opens ${input.window.nextOpen.toISOString()})` : 'the maintenance window never opens again';
      out.wakeAt = earliest(input.window.nextOpen, input.deadline);
      return finish();
    }
    out.status = 'running';
    out.reason = null;
  }

  // 4. The deadline: devices that did not get their job by then are skipped.
  const pastDeadline = input.deadline !== null && now >= input.deadline;
  if (pastDeadline) {
    for (const t of all()) {
      if (t.state === 'pending') set(t.deviceId, 'skipped', input.waves[t.wave]?.startedAt ? 'offline until the deadline' : 'its wave had not started by the deadline');
    }
  }

  if (out.status === 'paused') {
    out.wakeAt = input.deadline && !pastDeadline ? input.deadline : null;
    if (!pastDeadline) return finish();
  }

  // 5. Waves in order: a wave starts once the one before it passed (and, if asked, was approved).
  const byWave = (i: number) => all().filter((t) => t.wave === i);
  let gate: string | null = null;
  let waitingApproval = false;
  for (const w of input.waves) {
    if (pastDeadline) break;
    if (!w.startedAt) {
      if (w.requiresApproval && input.approvedThrough < w.index) {
        waitingApproval = true;
        gate = `wave ${w.name} waits for approval (ibexctl rollouts approve, or Approve in the dashboard)`;
        break;
      }
      out.wavesStarted.push(w.index);
    }
    if (w.finishedAt) continue;
    const ts = byWave(w.index);
    const counted = ts.filter((t) => t.state !== 'skipped');
    const succeeded = counted.filter((t) => t.state === 'succeeded').length;
    const ratio = counted.length ? (succeeded * 100) / counted.length : 100;
    const underWay = ts.some((t) => t.state === 'in_progress' || (t.state === 'pending' && t.online));
    const waitingOffline = ts.filter((t) => t.state === 'pending' && !t.online).length;
    if (ratio >= input.strategy.successThresholdPercent && !underWay) {
      out.wavesFinished.push(w.index);
      continue;
    }
    if (!underWay && waitingOffline === 0) {
      // Settled below the threshold: nothing left in the wave can raise it.
      abort(`wave ${w.name} finished with ${succeeded} of ${counted.length} devices succeeded (${pct(ratio)}), below the success threshold of ${input.strategy.successThresholdPercent}%`);
      out.status = input.autoRollback ? 'rolling_back' : 'failed';
      for (const t of all()) if (t.state === 'pending') set(t.deviceId, 'skipped', `not started: wave ${w.name} missed its success threshold`);
      if (out.status === 'rolling_back') for (const t of all()) if (needsRollback(t)) out.rollback.push(t.deviceId);
      return finish();
    }
    if (!underWay) gate = `wave ${w.name} waits for ${waitingOffline} offline device(s)`;
    break;
  }
  const started = new Set([...input.waves.filter((w) => w.startedAt).map((w) => w.index), ...out.wavesStarted]);

  // 6. Dispatch: pending online devices of started waves, up to maxInProgress under way.
  const inWindow = !input.window || input.window.open;
  if (out.status !== 'paused' && !pastDeadline && inWindow) {
    let slots = input.strategy.maxInProgress === null ? Infinity : input.strategy.maxInProgress - all().filter((t) => t.state === 'in_progress').length;
    const ready = all()
      .filter((t) => t.state === 'pending' && t.online && started.has(t.wave))
      .sort((a, b) => a.wave - b.wave);
    for (const t of ready) {
      if (slots <= 0) break;
      set(t.deviceId, 'in_progress', null);
      out.dispatch.push(t.deviceId);
      slots--;
    }
  }

  // 7. The status that follows.
  const remaining = all().filter((t) => !DONE.includes(t.state));
  const allWavesPassed = input.waves.every((w) => w.finishedAt || out.wavesFinished.includes(w.index));
  if (pastDeadline && !remaining.some((t) => t.state === 'in_progress')) {
    const skipped = all().filter((t) => t.state === 'skipped' && changed.has(t.deviceId)).length;
    const failed = all().filter((t) => t.state === 'failed').length;
    out.status = skipped || failed || !allWavesPassed ? 'failed' : 'succeeded';
    out.reason = out.status === 'failed' ? `the deadline passed: ${skipped} device(s) skipped, ${failed} failed` : null;
    return finish();
  }
  if (out.status === 'paused') return finish();
  if (allWavesPassed && remaining.length === 0) {
    out.status = 'succeeded';
    out.reason = null;
    return finish();
  }
  out.status = waitingApproval ? 'waiting_approval' : 'running';
  out.reason = !inWindow
    ? input.window?.nextOpen
      ? `outside the maintenance window (opens again ${input.window.nextOpen.toISOString()})`
      : 'outside the maintenance window, which never opens again'
    : gate;
  out.wakeAt = earliest(input.deadline && !pastDeadline ? input.deadline : null, input.window?.open ? input.window.closesAt : input.window?.nextOpen);
  return finish();
}
