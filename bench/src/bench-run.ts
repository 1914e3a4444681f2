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

type Identities = Awaited<ReturnType<typeof enrollAll>>;

/** What the connect phase measured. */
interface Connected {
  t0: number;
  ms: number;
  failed: number;
  failedAttempts: number;
  firstErrors: string[];
  window: WindowMeter;
}

/** What the steady phase measured. */
interface Steady {
  ms: number;
  start?: ProcessSample;
  final?: ProcessSample;
  cpuMax: number;
  /** CPU the harness itself used during the phase. */
  harnessCpu: NodeJS.CpuUsage;
  sent: number;
  stored: number;
  rowUpdates?: number;
  connectedEnd: number;
}

/**
 * One run, in phases: controller (spawned or given), enrollment token and N enrollments, N
 * streams, the steady phase with its periodic table, a drain for the last heartbeats, then the
 * result. Every wait is bounded; the caller's Cleanup undoes what the run created.
 */
export class BenchRun {
  private controller?: SpawnedController;
  private monitor?: ProcessMonitor;
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
    const runId = randomBytes(3).toString('hex');
    const eld = monitorEventLoopDelay({ resolution: 10 });
    eld.enable();
    const target = await this.startController();
    const sampler = await this.startSampler(target);
    const enrolled = await this.enroll(target, runId);
    const connected = await this.connect(target, enrolled.identities, sampler);
    const steady = await this.steady(connected, sampler);
    await this.drain(connected, sampler);
    // Stop the agents and the controller before judging: its shutdown time is a figure too.
    this.stopAgents();
    const final = this.monitor?.sample() ?? steady.final;
    const stopped = await this.controller?.stop();
    eld.disable();
    const partial = this.measured(target, sampler, { enrollMs: enrolled.ms, connected, steady, final, stopped, eld });
    return { ...judge(partial), ...partial };
  }

  /** The controller under test: the one given (--grpc ...) or a spawned one. */
  private async startController(): Promise<ControllerTarget> {
    const o = this.opts;
    let target: ControllerTarget;
    if (o.external) {
      target = o.external;
      this.print(`using the controller at ${o.external.grpc} (REST ${o.external.api})${o.external.pid ? `, pid ${o.external.pid}` : ', pid unknown: RSS and CPU not measured'}`);
    } else {
      this.controller = new SpawnedController(
        { databaseServer: o.databaseServer, redisUrl: o.redisUrl, heartbeatMs: o.heartbeatMs, ...(o.controllerNodeArgs ? { nodeArgs: o.controllerNodeArgs } : {}), ...(o.controllerLog ? { logFile: o.controllerLog } : {}) },
        this.cleanup,
      );
      target = await this.controller.start().catch((err: Error) => {
        throw new RunFailed(`could not start the controller: ${err.message}`);
      });
      this.print(
        `controller pid ${target.pid} on gRPC ${target.grpc}, REST ${target.api}, database ${this.controller.databaseName}, Redis prefix ${this.controller.redisPrefix}` +
          (o.controllerNodeArgs ? `, node ${o.controllerNodeArgs.join(' ')}` : ''),
      );
    }
    if (target.pid) this.monitor = new ProcessMonitor(target.pid);
    const idle = this.monitor?.sample();
    if (idle) this.print(`controller RSS ${round(idle.rssMb)} MB before any agent`);
    return target;
  }

  private async startSampler(target: ControllerTarget): Promise<LastSeenSampler> {
    const sampler = new LastSeenSampler(target.databaseUrl, this.opts.sampleMs);
    await sampler.connect().catch((err: Error) => {
      throw new RunFailed(`could not connect to the controller's database to read lastSeenAt: ${err.message}`);
    });
    this.cleanup.add('close the sampler database connection', () => sampler.stop());
    return sampler;
  }

  /** An enrollment token for N devices, then N enrollments. */
  private async enroll(target: ControllerTarget, runId: string): Promise<{ identities: Identities; ms: number }> {
    const o = this.opts;
    const started = Date.now();
    const token = await createEnrollmentToken(target.api, target.token, o.agents, `ibex bench ${runId}`).catch((err: Error) => {
      throw new RunFailed(`could not create an enrollment token: ${err.message}`);
    });
    if (o.external) this.cleanup.add('revoke the bench enrollment token', () => revokeEnrollmentToken(target.api, target.token, token.id));
    let enrolled = 0;
    const ticker = setInterval(() => this.print(`enrolling: ${enrolled}/${o.agents} (${round((Date.now() - started) / 1000, 1)} s)`), 2000);
    let identities: Identities;
    try {
      identities = await enrollAll({
        target: target.grpc,
        enrollmentToken: token.token,
        count: o.agents,
        namePrefix: `bench-${runId}`,
        concurrency: o.enrollConcurrency,
        deadline: started + o.connectTimeoutS * 1000,
        onProgress: (n) => (enrolled = n),
      });
    } catch (err) {
      throw new RunFailed((err as Error).message);
    } finally {
      clearInterval(ticker);
    }
    const ms = Date.now() - started;
    const after = this.monitor?.sample();
    this.print(`enrolled ${o.agents} devices in ${round(ms / 1000, 1)} s (names bench-${runId}-N)` + (after ? `; controller RSS ${round(after.rssMb)} MB, peak ${round(after.peakRssMb)} MB` : ''));
    return { identities, ms };
  }

  /** Streams open; heartbeats start as each agent is welcomed. Ends with the table's first row. */
  private async connect(target: ControllerTarget, identities: Identities, sampler: LastSeenSampler): Promise<Connected> {
    const o = this.opts;
    sampler.start();
    const t0 = Date.now();
    let failedAttempts = 0;
    const firstErrors: string[] = [];
    const events = {
      heartbeat: (agent: SimulatedAgent, at: number) => {
        this.sent++;
        sampler.record(agent.deviceId, at);
      },
      ended: (agent: SimulatedAgent, code: number, details: string) => {
        this.connected--;
        this.disconnects.push(`${agent.identity.deviceName}: code ${code} ${details}`);
      },
    };
    const window = new WindowMeter(this.monitor, sampler, () => this.sent, o.maxLagMs);
    await window.begin();
    const ticker = setInterval(() => {
      const s = this.monitor?.sample();
      this.print(`connecting: ${this.connected}/${o.agents} connected, ${failedAttempts} failed attempts, ${round((Date.now() - t0) / 1000, 1)} s` + (s ? `, controller RSS ${round(s.rssMb)} MB` : ''));
    }, 1000);
    let result;
    try {
      result = await connectAll({
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
      clearInterval(ticker);
    }
    this.agents = result.agents;
    const ms = Date.now() - t0;
    this.print(`connected ${this.connected}/${o.agents} in ${round(ms / 1000, 1)} s (${result.failed.length} never connected, ${failedAttempts} failed attempts)`);
    if (this.controller?.exited) throw new RunFailed(`the controller exited while agents connected:\n${this.controller.logTail()}`);
    // The table's first row covers the whole connect phase.
    this.print(tableHeader());
    await this.report(window, t0, 'connect');
    return { t0, ms, failed: result.failed.length, failedAttempts, firstErrors, window };
  }

  /** --duration-s of heartbeats, a table row every --report-s. */
  private async steady(c: Connected, sampler: LastSeenSampler): Promise<Steady> {
    const o = this.opts;
    const start = this.monitor?.sample();
    const startedAt = Date.now();
    const sentAtStart = this.sent;
    const storedAtStart = sampler.confirmations.length;
    const rowsAtStart = await sampler.deviceRowUpdates().catch(() => undefined);
    const harnessAtStart = process.cpuUsage();
    const end = startedAt + o.durationS * 1000;
    let cpuMax = 0;
    while (Date.now() < end) {
      await sleep(Math.min(o.reportS * 1000, end - Date.now()));
      const row = await this.report(c.window, c.t0, 'steady');
      if (row.cpuPercent !== undefined) cpuMax = Math.max(cpuMax, row.cpuPercent);
      if (this.controller?.exited) throw new RunFailed(`the controller exited during the run:\n${this.controller.logTail()}`);
    }
    const ms = Date.now() - startedAt;
    const final = this.monitor?.sample();
    const harnessCpu = process.cpuUsage(harnessAtStart);
    const rowsAtEnd = await sampler.deviceRowUpdates().catch(() => undefined);
    return {
      ms,
      start,
      final,
      cpuMax,
      harnessCpu,
      sent: this.sent - sentAtStart,
      stored: sampler.confirmations.length - storedAtStart,
      ...(rowsAtStart !== undefined && rowsAtEnd !== undefined ? { rowUpdates: rowsAtEnd - rowsAtStart } : {}),
      connectedEnd: this.connected,
    };
  }

  /** No new heartbeats; waits for the ones in flight to show (or to be late beyond doubt). */
  private async drain(c: Connected, sampler: LastSeenSampler): Promise<void> {
    const o = this.opts;
    for (const a of this.agents) a.stopHeartbeats();
    const until = Date.now() + o.maxLagMs + 2 * o.sampleMs + 1000;
    while (sampler.unconfirmed > 0 && Date.now() < until) await sleep(o.sampleMs);
    await sampler.sampleOnce().catch(() => {});
    await this.report(c.window, c.t0, 'drain');
    await sampler.stop();
  }

  /** The figures of the whole run (judge() holds them to the bar). */
  private measured(
    target: ControllerTarget,
    sampler: LastSeenSampler,
    m: { enrollMs: number; connected: Connected; steady: Steady; final?: ProcessSample; stopped?: { ms: number }; eld: ReturnType<typeof monitorEventLoopDelay> },
  ): Omit<BenchResult, 'ok' | 'failures' | 'notChecked'> {
    const o = this.opts;
    const { connected: c, steady: s, final } = m;
    const secs = s.ms / 1000;
    const unconfirmed = sampler.unconfirmed;
    const late = sampler.confirmations.filter((x) => x.lagMs > o.maxLagMs).length;
    return {
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
        ...(m.stopped ? { shutdownMs: m.stopped.ms } : {}),
      },
      enroll: { ms: m.enrollMs },
      connect: { agents: o.agents, connected: o.agents - c.failed, failed: c.failed, failedAttempts: c.failedAttempts, ms: c.ms, firstErrors: c.firstErrors },
      steady: {
        seconds: round(secs, 1),
        connectedEnd: s.connectedEnd,
        disconnects: this.disconnects.length,
        disconnectReasons: this.disconnects.slice(0, 5),
        ...(s.final && final ? { rssMb: { current: round(s.final.rssMb, 1), peak: round(final.peakRssMb, 1) } } : {}),
        ...(s.start && s.final ? { cpuPercent: { avg: round(cpuPercent(s.start, s.final), 1), max: round(s.cpuMax, 1) } } : {}),
        heartbeatsSentPerS: round(s.sent / secs, 1),
        heartbeatsStoredPerS: round(s.stored / secs, 1),
        ...(s.rowUpdates !== undefined ? { deviceRowUpdatesPerS: round(s.rowUpdates / secs, 1) } : {}),
      },
      lag: {
        ...distribution(sampler.confirmations.map((x) => x.lagMs)),
        heartbeatsSent: this.sent,
        unconfirmed,
        overLimit: late + unconfirmed,
        limitMs: o.maxLagMs,
        sampleMs: o.sampleMs,
        slowestReadMs: sampler.slowestReadMs,
      },
      harness: {
        cpuPercent: round(((s.harnessCpu.user + s.harnessCpu.system) / 1000 / s.ms) * 100, 1),
        eventLoopDelayP99Ms: round(m.eld.percentile(99) / 1e6, 1),
        eventLoopDelayMaxMs: round(m.eld.max / 1e6, 1),
      },
      windows: this.windows,
    };
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
