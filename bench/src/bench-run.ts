import { randomBytes } from 'node:crypto';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { BenchOptions } from './bench-flags.js';
import { type BenchResult, judge, tableHeader, tableRow, type WindowRow } from './bench-report.js';
import type { Cleanup } from './cleanup.js';
import { connectAll, createEnrollmentToken, enrollAll, revokeEnrollmentToken } from './fleet.js';
import { LastSeenSampler } from './last-seen-sampler.js';
import { cpuPercent, ProcessMonitor, type ProcessSample } from './process-stats.js';
import type { SimulatedAgent } from './simulated-agent.js';
import { type ControllerTarget, SpawnedController } from './spawned-controller.js';
import { distribution, round } from './stats.js';

/** The run failed for a reason other than the bar (setup, controller died...): exit 3. */
export class RunFailed extends Error {}

/**
 * One run: controller (spawned or given), enrollment token, N enrollments, N streams, the steady
 * phase with its periodic table, a drain for the last heartbeats, and the result. Every wait is
 * bounded; the caller's Cleanup undoes what the run created.
 */
export class BenchRun {
  private controller?: SpawnedController;
  private target?: ControllerTarget;
  private monitor?: ProcessMonitor;
  private sampler?: LastSeenSampler;
  private agents: SimulatedAgent[] = [];
  private connected = 0;
  private sent = 0;
  private disconnects: string[] = [];
  private readonly windows: WindowRow[] = [];

  constructor(
    private readonly opts: BenchOptions,
    private readonly cleanup: Cleanup,
    private readonly print: (line: string) => void,
  ) {}

  /** Closes every agent stream (also used when interrupted). */
  stopAgents(): void {
    for (const a of this.agents) a.stop();
  }

  async run(): Promise<BenchResult> {
    const o = this.opts;
    const runId = randomBytes(3).toString('hex');
    const eld = monitorEventLoopDelay({ resolution: 10 });
    eld.enable();

    // Controller.
    if (o.external) {
      this.target = o.external;
      this.print(`using the controller at ${o.external.grpc} (REST ${o.external.api})${o.external.pid ? `, pid ${o.external.pid}` : ', pid unknown: RSS and CPU not measured'}`);
    } else {
      this.controller = new SpawnedController(
        { databaseServer: o.databaseServer, redisUrl: o.redisUrl, heartbeatMs: o.heartbeatMs, ...(o.controllerNodeArgs ? { nodeArgs: o.controllerNodeArgs } : {}), ...(o.controllerLog ? { logFile: o.controllerLog } : {}) },
        this.cleanup,
      );
      this.target = await this.controller.start().catch((err: Error) => {
        throw new RunFailed(`could not start the controller: ${err.message}`);
      });
      this.print(
        `controller pid ${this.target.pid} on gRPC ${this.target.grpc}, REST ${this.target.api}, database ${this.controller.databaseName}, Redis prefix ${this.controller.redisPrefix}` +
          (o.controllerNodeArgs ? `, node ${o.controllerNodeArgs.join(' ')}` : ''),
      );
    }
    const target = this.target;
    if (target.pid) this.monitor = new ProcessMonitor(target.pid);
    const idle = this.monitor?.sample();
    if (idle) this.print(`controller RSS ${round(idle.rssMb)} MB before any agent`);

    this.sampler = new LastSeenSampler(target.databaseUrl, o.sampleMs);
    await this.sampler.connect().catch((err: Error) => {
      throw new RunFailed(`could not connect to the controller's database to read lastSeenAt: ${err.message}`);
    });
    this.cleanup.add('close the sampler database connection', () => this.sampler!.stop());

    // Enrollment.
    const enrollStarted = Date.now();
    const token = await createEnrollmentToken(target.api, target.token, o.agents, `ibex bench ${runId}`).catch((err: Error) => {
      throw new RunFailed(`could not create an enrollment token: ${err.message}`);
    });
    if (o.external) this.cleanup.add('revoke the bench enrollment token', () => revokeEnrollmentToken(target.api, target.token, token.id));
    let enrolled = 0;
    const enrollTicker = setInterval(() => this.print(`enrolling: ${enrolled}/${o.agents} (${round((Date.now() - enrollStarted) / 1000, 1)} s)`), 2000);
    let identities;
    try {
      identities = await enrollAll({
        target: target.grpc,
        enrollmentToken: token.token,
        count: o.agents,
        namePrefix: `bench-${runId}`,
        concurrency: o.enrollConcurrency,
        deadline: enrollStarted + o.connectTimeoutS * 1000,
        onProgress: (n) => (enrolled = n),
      });
    } catch (err) {
      throw new RunFailed((err as Error).message);
    } finally {
      clearInterval(enrollTicker);
    }
    const enrollMs = Date.now() - enrollStarted;
    const afterEnroll = this.monitor?.sample();
    this.print(
      `enrolled ${o.agents} devices in ${round(enrollMs / 1000, 1)} s (names bench-${runId}-N)` +
        (afterEnroll ? `; controller RSS ${round(afterEnroll.rssMb)} MB, peak ${round(afterEnroll.peakRssMb)} MB` : ''),
    );

    // Connecting: streams open, heartbeats start as each agent is welcomed.
    this.sampler.start();
    const t0 = Date.now();
    let failedAttempts = 0;
    const firstErrors: string[] = [];
    const events = {
      heartbeat: (agent: SimulatedAgent, at: number) => {
        this.sent++;
        this.sampler!.record(agent.deviceId, at);
      },
      ended: (agent: SimulatedAgent, code: number, details: string) => {
        this.connected--;
        this.disconnects.push(`${agent.identity.deviceName}: code ${code} ${details}`);
      },
    };
    const window = new WindowMeter(this.monitor, this.sampler, () => this.sent, o.maxLagMs);
    await window.begin();
    const connectTicker = setInterval(() => {
      const s = this.monitor?.sample();
      this.print(
        `connecting: ${this.connected}/${o.agents} connected, ${failedAttempts} failed attempts, ${round((Date.now() - t0) / 1000, 1)} s` +
          (s ? `, controller RSS ${round(s.rssMb)} MB` : ''),
      );
    }, 1000);
    let connectResult;
    try {
      connectResult = await connectAll({
        identities,
        target: target.grpc,
        events,
        concurrency: o.connectConcurrency,
        deadline: t0 + o.connectTimeoutS * 1000,
        onConnected: (agent) => {
          this.connected++;
          agent.startHeartbeats(o.heartbeatMs, Math.random() * o.heartbeatMs);
        },
        onFailedAttempt: (_agent, err) => {
          failedAttempts++;
          if (firstErrors.length < 5) firstErrors.push(err.message);
        },
      });
    } finally {
      clearInterval(connectTicker);
    }
    this.agents = connectResult.agents;
    const connectMs = Date.now() - t0;
    this.print(`connected ${this.connected}/${o.agents} in ${round(connectMs / 1000, 1)} s (${connectResult.failed.length} never connected, ${failedAttempts} failed attempts)`);
    if (this.controller?.exited) throw new RunFailed(`the controller exited while agents connected:\n${this.controller.logTail()}`);

    // Steady phase; the table's first row covers the whole connect phase.
    this.print(tableHeader());
    await this.report(window, t0, 'connect');
    const steadyStart = this.monitor?.sample();
    const steadyStartedAt = Date.now();
    const sentAtSteady = this.sent;
    const storedAtSteady = this.sampler.confirmations.length;
    const rowsAtSteady = await this.sampler.deviceRowUpdates().catch(() => undefined);
    const harnessCpu = process.cpuUsage();
    const steadyEnd = steadyStartedAt + o.durationS * 1000;
    let cpuMax = 0;
    while (Date.now() < steadyEnd) {
      await sleep(Math.min(o.reportS * 1000, steadyEnd - Date.now()));
      const row = await this.report(window, t0, 'steady');
      if (row.cpuPercent !== undefined) cpuMax = Math.max(cpuMax, row.cpuPercent);
      if (this.controller?.exited) throw new RunFailed(`the controller exited during the run:\n${this.controller.logTail()}`);
    }
    const steadyMs = Date.now() - steadyStartedAt;
    const steadyFinal = this.monitor?.sample();
    const harnessCpuUsed = process.cpuUsage(harnessCpu);
    const sentSteady = this.sent - sentAtSteady;
    const storedSteady = this.sampler.confirmations.length - storedAtSteady;
    const rowsAtEnd = await this.sampler.deviceRowUpdates().catch(() => undefined);
    const connectedEnd = this.connected;

    // Drain: no new heartbeats; wait for the ones in flight to show (or to be late beyond doubt).
    for (const a of this.agents) a.stopHeartbeats();
    const lastSentAt = Date.now();
    const drainUntil = lastSentAt + o.maxLagMs + 2 * o.sampleMs + 1000;
    while (this.sampler.unconfirmed > 0 && Date.now() < drainUntil) await sleep(o.sampleMs);
    await this.sampler.sampleOnce().catch(() => {});
    await this.report(window, t0, 'drain');
    await this.sampler.stop();

    // Stop the agents and the controller before judging: its shutdown time is a figure too.
    this.stopAgents();
    const final = this.monitor?.sample() ?? steadyFinal;
    const stopped = await this.controller?.stop();
    eld.disable();

    const lags = distribution(this.sampler.confirmations.map((c) => c.lagMs));
    const unconfirmed = this.sampler.unconfirmed;
    const late = this.sampler.confirmations.filter((c) => c.lagMs > o.maxLagMs).length;
    const partial: Omit<BenchResult, 'ok' | 'failures' | 'notChecked'> = {
      bar: { agents: o.agents, maxRssMb: o.maxRssMb, maxLagMs: o.maxLagMs },
      config: {
        agents: o.agents,
        heartbeatMs: o.heartbeatMs,
        durationS: o.durationS,
        connectConcurrency: o.connectConcurrency,
        enrollConcurrency: o.enrollConcurrency,
        sampleMs: o.sampleMs,
        ...(o.controllerNodeArgs ? { controllerNodeArgs: o.controllerNodeArgs } : {}),
      },
      controller: {
        mode: o.external ? 'external' : 'spawned',
        ...(target.pid ? { pid: target.pid } : {}),
        ...(this.controller ? { warnings: this.controller.warnings, lastWarnings: [...this.controller.lastWarnings] } : {}),
        ...(stopped ? { shutdownMs: stopped.ms } : {}),
      },
      enroll: { ms: enrollMs },
      connect: { agents: o.agents, connected: o.agents - connectResult.failed.length, failed: connectResult.failed.length, failedAttempts, ms: connectMs, firstErrors },
      steady: {
        seconds: round(steadyMs / 1000, 1),
        connectedEnd,
        disconnects: this.disconnects.length,
        disconnectReasons: this.disconnects.slice(0, 5),
        ...(steadyFinal && final ? { rssMb: { current: round(steadyFinal.rssMb, 1), peak: round(final.peakRssMb, 1) } } : {}),
        ...(steadyStart && steadyFinal ? { cpuPercent: { avg: round(cpuPercent(steadyStart, steadyFinal), 1), max: round(cpuMax, 1) } } : {}),
        heartbeatsSentPerS: round(sentSteady / (steadyMs / 1000), 1),
        heartbeatsStoredPerS: round(storedSteady / (steadyMs / 1000), 1),
        ...(rowsAtSteady !== undefined && rowsAtEnd !== undefined ? { deviceRowUpdatesPerS: round((rowsAtEnd - rowsAtSteady) / (steadyMs / 1000), 1) } : {}),
      },
      lag: {
        ...lags,
        heartbeatsSent: this.sent,
        unconfirmed,
        overLimit: late + unconfirmed,
        limitMs: o.maxLagMs,
        sampleMs: o.sampleMs,
        slowestReadMs: this.sampler.slowestReadMs,
      },
      harness: {
        cpuPercent: round(((harnessCpuUsed.user + harnessCpuUsed.system) / 1000 / steadyMs) * 100, 1),
        eventLoopDelayP99Ms: round(eld.percentile(99) / 1e6, 1),
        eventLoopDelayMaxMs: round(eld.max / 1e6, 1),
      },
      windows: this.windows,
    };
    return { ...judge(partial), ...partial };
  }

  private async report(window: WindowMeter, t0: number, phase: WindowRow['phase']): Promise<WindowRow> {
    const row = await window.next(t0, phase, this.connected);
    this.windows.push(row);
    this.print(tableRow(row));
    return row;
  }
}

/** Turns cumulative counters into the per-interval figures of one table row. */
class WindowMeter {
  private proc?: ProcessSample;
  private sent = 0;
  private confirmed = 0;
  private rows?: number;
  private at = Date.now();

  constructor(
    private readonly monitor: ProcessMonitor | undefined,
    private readonly sampler: LastSeenSampler,
    private readonly sentSoFar: () => number,
    private readonly limitMs: number,
  ) {}

  async begin(): Promise<void> {
    this.proc = this.monitor?.sample();
    this.sent = this.sentSoFar();
    this.confirmed = this.sampler.confirmations.length;
    this.rows = await this.sampler.deviceRowUpdates().catch(() => undefined);
    this.at = Date.now();
  }

  async next(t0: number, phase: WindowRow['phase'], connected: number): Promise<WindowRow> {
    const now = Date.now();
    const secs = Math.max(0.001, (now - this.at) / 1000);
    const proc = this.monitor?.sample();
    const rows = await this.sampler.deviceRowUpdates().catch(() => undefined);
    const confirmations = this.sampler.confirmations;
    const fresh = confirmations.slice(this.confirmed);
    let late = 0;
    for (const c of confirmations) if (c.lagMs > this.limitMs) late++;
    const row: WindowRow = {
      tS: round((now - t0) / 1000),
      phase,
      connected,
      ...(proc ? { rssMb: round(proc.rssMb, 1), peakRssMb: round(proc.peakRssMb, 1) } : {}),
      ...(proc && this.proc ? { cpuPercent: round(cpuPercent(this.proc, proc), 1) } : {}),
      sentPerS: round((this.sentSoFar() - this.sent) / secs, 1),
      storedPerS: round(fresh.length / secs, 1),
      ...(rows !== undefined && this.rows !== undefined ? { rowUpdatesPerS: round((rows - this.rows) / secs, 1) } : {}),
      lag: distribution(fresh.map((c) => c.lagMs)),
      overLimit: late + this.sampler.unconfirmedSentBefore(now - this.limitMs),
      unconfirmed: this.sampler.unconfirmed,
    };
    this.proc = proc;
    this.sent = this.sentSoFar();
    this.confirmed = confirmations.length;
    this.rows = rows;
    this.at = now;
    return row;
  }
}
