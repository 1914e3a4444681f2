import { randomBytes } from 'node:crypto';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { BenchOptions } from './bench-flags.js';
import { type BenchResult, type ControllerMemory, judge, type StormResult, tableHeader, tableRow, type WindowRow } from './bench-report.js';
import type { Cleanup } from './cleanup.js';
import { readFileSync } from 'node:fs';
import { credentials } from '@grpc/grpc-js';
import { AgentProcs } from './agent-procs.js';
import { createEnrollmentToken, enrollAll, revokeEnrollmentToken } from './fleet.js';
import { type FanoutResult, runFanout } from './fanout.js';
import type { RestLoadResult } from './rest-load.js';
import { makeServerCertificate } from './tls.js';
import { LastSeenSampler } from './last-seen-sampler.js';
import { cpuPercent, ProcessMonitor, type ProcessSample } from './process-stats.js';
import { type ControllerTarget, SpawnedController } from './spawned-controller.js';
import { distribution, round } from './stats.js';

/** Where the controller's memory is, from the Node gauges of its /metrics (prom-client defaults); undefined when not served. */
async function controllerMemory(api: string): Promise<ControllerMemory | undefined> {
  const text = await fetch(`${api}/metrics`, { signal: AbortSignal.timeout(10_000) })
    .then((r) => (r.ok ? r.text() : undefined))
    .catch(() => undefined);
  if (!text) return undefined;
  const gauge = (name: string) => {
    const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+]+)`, 'm').exec(text);
    return m ? round(Number(m[1]) / 2 ** 20, 1) : NaN;
  };
  return { heapUsedMb: gauge('nodejs_heap_size_used_bytes'), heapTotalMb: gauge('nodejs_heap_size_total_bytes'), externalMb: gauge('nodejs_external_memory_bytes'), rssMb: gauge('process_resident_memory_bytes') };
}

/** The soft limit of open files of this process (inherited by the controller and the workers). */
function checkOpenFiles(agents: number): void {
  let soft: number | undefined;
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    soft = m && m[1] !== 'unlimited' ? Number(m[1]) : undefined;
  } catch {
    return;
  }
  // The controller holds one socket per agent, plus its database pools, Redis, listeners and
  // files (about 60 when idle).
  if (soft !== undefined && soft < agents + 150) {
    throw new RunFailed(`${agents} agents need more open files than this shell allows (${soft}): the controller holds a socket per agent; raise it first, e.g. ulimit -n ${Math.max(65536, agents * 2)} (as root, ulimit -Hn too)`);
  }
}

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
  rest?: RestLoadResult;
  memory?: ControllerMemory;
  /** Controller CPU with heartbeats only (first half) and with the REST load (second half). */
  cpuSplit?: { idle: { avg: number; max: number }; rest: { avg: number; max: number } };
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
  private procs?: AgentProcs;
  private sent = 0;
  private caPem?: string;
  private labels: Record<string, string> = {};
  /** Heartbeats are measured (sampler) only while this is on: not during fan-out and storm. */
  private recording = true;
  private sampler?: LastSeenSampler;
  private fanoutHooks: { desired?: (id: string, at: number) => void; reportAcked?: (id: string, at: number) => void; resultAcked?: (id: string, at: number) => void } = {};
  private disconnects: string[] = [];
  /** Streams ended in any phase, and the latest reason (the fan-out's progress lines show them). */
  private endedTotal = 0;
  private lastEnded = '';
  private readonly windows: WindowRow[] = [];

  constructor(
    private readonly opts: BenchOptions,
    private readonly cleanup: Cleanup,
    private readonly print: (line: string) => void,
  ) {}

  /** Closes every agent stream (also used when interrupted). */
  stopAgents(): Promise<void> {
    return this.procs?.stop() ?? Promise.resolve();
  }

  private get connected(): number {
    return this.procs?.connected ?? 0;
  }

  async run(): Promise<BenchResult> {
    const runId = randomBytes(3).toString('hex');
    const eld = monitorEventLoopDelay({ resolution: 10 });
    eld.enable();
    const target = await this.startController();
    const sampler = await this.startSampler(target);
    const enrolled = await this.enroll(target, runId);
    const connected = await this.connect(target, enrolled.identities, sampler);
    const steady = await this.steady(connected, sampler, target);
    await this.drain(connected, sampler);
    const peakBeforeExtras = this.monitor?.sample() ?? steady.final;
    // The storm first, on a quiet fleet: after a fan-out, agents still re-sending unacknowledged
    // reports and results would be part of the storm.
    const storm = this.opts.storm ? await this.storm() : undefined;
    const fanout = this.opts.fanout ? await this.fanout(target, runId) : undefined;
    // Stop the agents and the controller before judging: its shutdown time is a figure too.
    const workers = this.procs?.usage;
    await this.stopAgents();
    const final = this.monitor?.sample() ?? steady.final;
    const stopped = await this.controller?.stop();
    eld.disable();
    const partial = this.measured(target, sampler, { enrollMs: enrolled.ms, connected, steady, final: storm || fanout ? peakBeforeExtras : final, stopped, eld, fanout, storm, workers });
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
      const cert = o.tls ? await makeServerCertificate(this.cleanup).catch((err: Error) => { throw new RunFailed(err.message); }) : undefined;
      if (cert) this.caPem = cert.certPem;
      this.controller = new SpawnedController(
        {
          databaseServer: o.databaseServer,
          redisUrl: o.redisUrl,
          heartbeatMs: o.heartbeatMs,
          ...(o.controllerNodeArgs ? { nodeArgs: o.controllerNodeArgs } : {}),
          ...(o.controllerLog ? { logFile: o.controllerLog } : {}),
          // Devices stay online through the storm's restart; the rollout sweep ticks briskly.
          env: { ...(cert ? { IBEX_GRPC_TLS_CERT: cert.certFile, IBEX_GRPC_TLS_KEY: cert.keyFile } : {}), IBEX_ROLLOUT_TICK_MS: '200' },
        },
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
    if (o.caFile) {
      try {
        this.caPem = readFileSync(o.caFile, 'utf8');
      } catch (err) {
        throw new RunFailed(`--ca ${o.caFile}: ${(err as Error).message}`);
      }
    }
    this.print(`agents: ${o.agents} in ${o.agentProcs} worker process(es), gRPC ${this.caPem ? 'over TLS (server certificate, bearer credential)' : 'plaintext'}`);
    checkOpenFiles(o.agents);
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
    this.labels = { 'ibex-bench': runId };
    const token = await createEnrollmentToken(target.api, target.token, o.agents, `ibex bench ${runId}`, this.labels).catch((err: Error) => {
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
        ...(this.caPem ? { credentials: credentials.createSsl(Buffer.from(this.caPem)) } : {}),
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

  /** Streams open (in the worker processes); heartbeats start as each agent is welcomed. Ends with the table's first row. */
  private async connect(target: ControllerTarget, identities: Identities, sampler: LastSeenSampler): Promise<Connected> {
    const o = this.opts;
    this.sampler = sampler;
    sampler.start();
    const t0 = Date.now();
    const firstErrors: string[] = [];
    this.procs = new AgentProcs(o.agentProcs, {
      heartbeat: (deviceId, at) => {
        if (!this.recording) return;
        this.sent++;
        sampler.record(deviceId, at);
      },
      ended: (reason) => {
        if (this.recording) this.disconnects.push(reason);
        this.endedTotal++;
        this.lastEnded = reason;
      },
      failedAttempt: (message) => {
        if (firstErrors.length < 5) firstErrors.push(message);
      },
      desired: (id, at) => this.fanoutHooks.desired?.(id, at),
      reportAcked: (id, at) => this.fanoutHooks.reportAcked?.(id, at),
      resultAcked: (id, at) => this.fanoutHooks.resultAcked?.(id, at),
    });
    const window = new WindowMeter(this.monitor, sampler, () => this.sent, o.maxLagMs);
    await window.begin();
    let allAt: number | undefined;
    const ticker = setInterval(() => {
      const s = this.monitor?.sample();
      if (allAt === undefined && this.connected >= o.agents) allAt = Date.now();
      this.print(`connecting: ${this.connected}/${o.agents} connected, ${this.procs!.failedAttempts} failed attempts, ${round((Date.now() - t0) / 1000, 1)} s` + (s ? `, controller RSS ${round(s.rssMb)} MB` : ''));
    }, 1000);
    let failed;
    try {
      failed = await this.procs.connect({ identities, target: target.grpc, ...(this.caPem ? { caPem: this.caPem } : {}), heartbeatMs: o.heartbeatMs, concurrency: o.connectConcurrency, deadlineMs: t0 + o.connectTimeoutS * 1000 });
    } catch (err) {
      throw new RunFailed((err as Error).message);
    } finally {
      clearInterval(ticker);
    }
    const ms = Date.now() - t0;
    await sleep(300); // the workers' last counters
    const failedAttempts = this.procs.failedAttempts;
    this.print(`connected ${this.connected}/${o.agents} in ${round(ms / 1000, 1)} s (${failed.length} never connected, ${failedAttempts} failed attempts)`);
    if (this.controller?.exited) throw new RunFailed(`the controller exited while agents connected:\n${this.controller.logTail()}`);
    // The table's first row covers the whole connect phase.
    this.print(tableHeader());
    await this.report(window, t0, 'connect');
    return { t0, ms, failed: failed.length, failedAttempts, firstErrors, window };
  }

  /** --duration-s of heartbeats, a table row every --report-s. */
  private async steady(c: Connected, sampler: LastSeenSampler, target: ControllerTarget): Promise<Steady> {
    const o = this.opts;
    const start = this.monitor?.sample();
    const startedAt = Date.now();
    const sentAtStart = this.sent;
    const storedAtStart = sampler.confirmations.length;
    const rowsAtStart = await sampler.deviceRowUpdates().catch(() => undefined);
    const harnessAtStart = process.cpuUsage();
    const end = startedAt + o.durationS * 1000;
    let cpuMax = 0;
    // The first half with heartbeats only (the controller "idle"), the second with the REST load too.
    const restAt = o.restRate > 0 ? startedAt + Math.floor(o.durationS / 2) * 1000 : Infinity;
    let restStart: ProcessSample | undefined;
    let idleCpuMax = 0;
    let restCpuMax = 0;
    while (Date.now() < end) {
      if (restAt !== Infinity && !restStart && Date.now() >= restAt - 50) {
        restStart = this.monitor?.sample() ?? { atMs: Date.now(), rssMb: 0, peakRssMb: 0, cpuS: 0 };
        this.procs!.startRest(`${target.api}/api/v1/devices?limit=100`, target.token, o.restRate);
        this.print(`REST load from here: GET /api/v1/devices?limit=100 at ${o.restRate}/s (fixed rate, latency from each request's scheduled time)`);
      }
      const next = restStart ? end : Math.min(end, restAt);
      await sleep(Math.max(0, Math.min(o.reportS * 1000, next - Date.now())));
      const row = await this.report(c.window, c.t0, restStart ? 'rest' : 'steady');
      if (row.cpuPercent !== undefined) {
        cpuMax = Math.max(cpuMax, row.cpuPercent);
        if (restStart) restCpuMax = Math.max(restCpuMax, row.cpuPercent);
        else idleCpuMax = Math.max(idleCpuMax, row.cpuPercent);
      }
      if (this.controller?.exited) throw new RunFailed(`the controller exited during the run:\n${this.controller.logTail()}`);
    }
    const split = restStart && restStart.cpuS > 0 && start ? { idle: { avg: round(cpuPercent(start, restStart), 1), max: round(idleCpuMax, 1) } } : undefined;
    const ms = Date.now() - startedAt;
    const sent = this.sent - sentAtStart;
    const stored = sampler.confirmations.length - storedAtStart;
    const final = this.monitor?.sample();
    const harnessCpu = process.cpuUsage(harnessAtStart);
    const rowsAtEnd = await sampler.deviceRowUpdates().catch(() => undefined);
    const memory = await controllerMemory(target.api);
    if (memory) this.print(`controller memory (its /metrics): JS heap ${memory.heapUsedMb} MB used of ${memory.heapTotalMb} MB, external ${memory.externalMb} MB, RSS ${memory.rssMb} MB`);
    const rest = o.restRate > 0 ? await this.procs!.stopRest() : undefined;
    if (rest) this.print(`REST: ${rest.ok}/${rest.sent} answered 200 at ${round(rest.sentPerS, 1)}/s; latency p50 ${round(rest.latency.p50, 1)} ms, p99 ${round(rest.latency.p99, 1)} ms, max ${round(rest.latency.max)} ms` + (rest.errors ? `; ${rest.errors} errors (${rest.firstErrors[0]})` : ''));
    return {
      ms,
      start,
      final,
      cpuMax,
      harnessCpu,
      sent,
      stored,
      ...(rowsAtStart !== undefined && rowsAtEnd !== undefined ? { rowUpdates: rowsAtEnd - rowsAtStart } : {}),
      connectedEnd: this.connected,
      ...(rest ? { rest } : {}),
      ...(memory ? { memory } : {}),
      ...(split && restStart && final ? { cpuSplit: { idle: split.idle, rest: { avg: round(cpuPercent(restStart, final), 1), max: round(restCpuMax, 1) } } } : {}),
    };
  }

  /** No new heartbeats; waits for the ones in flight to show (or to be late beyond doubt). */
  private async drain(c: Connected, sampler: LastSeenSampler): Promise<void> {
    const o = this.opts;
    this.recording = false;
    this.procs!.record(false);
    const until = Date.now() + o.maxLagMs + 2 * o.sampleMs + 1000;
    while (sampler.unconfirmed > 0 && Date.now() < until) await sleep(o.sampleMs);
    await sampler.sampleOnce().catch(() => {});
    await this.report(c.window, c.t0, 'drain');
    await sampler.stop();
  }

  /** --fanout: one desired-state change to every agent through a label-selector rollout. */
  private async fanout(target: ControllerTarget, runId: string): Promise<FanoutResult> {
    const selector = Object.entries(this.labels).map(([k, v]) => `${k}=${v}`).join(',');
    try {
      return await runFanout({ api: target.api, token: target.token, selector, agents: this.opts.agents, timeoutS: 300, hooks: (t) => (this.fanoutHooks = t), print: this.print, streams: () => `${this.connected} connected, ${this.endedTotal} streams ended so far${this.lastEnded ? ` (latest: ${this.lastEnded})` : ''}` });
    } catch (err) {
      throw new RunFailed(`fan-out (${runId}): ${(err as Error).message}`);
    } finally {
      this.fanoutHooks = {};
    }
  }

  /** --storm: SIGKILL the controller with every agent connected, start it again, wait until all are back. */
  private async storm(): Promise<StormResult> {
    const n = this.opts.agents;
    const procs = this.procs!;
    const welcomesBefore = procs.welcomes;
    this.print(`storm: ${procs.connected}/${n} connected; SIGKILL to the controller`);
    const r = await this.controller!.killAndRestart().catch((err: Error) => {
      throw new RunFailed(`storm: the controller did not come back: ${err.message}`);
    });
    const monitor = new ProcessMonitor(r.pid);
    this.monitor = monitor;
    const atReady = monitor.sample();
    this.print(`storm: controller pid ${r.pid} ready ${round((r.readyAt - r.killedAt) / 1000, 1)} s after the kill`);
    const deadline = Date.now() + 300_000;
    let lastPrint = 0;
    let backAt: number | undefined;
    let cpuMax = 0;
    let prev = atReady;
    while (Date.now() < deadline) {
      await sleep(200);
      if (procs.connected >= n && procs.welcomes - welcomesBefore >= n) {
        backAt = Date.now();
        break;
      }
      if (Date.now() - lastPrint >= 2000) {
        lastPrint = Date.now();
        const s = monitor.sample();
        if (s && prev) cpuMax = Math.max(cpuMax, cpuPercent(prev, s));
        prev = s;
        this.print(`storm: ${round((Date.now() - r.killedAt) / 1000, 1)} s after the kill: ${procs.connected}/${n} connected, ${procs.welcomes - welcomesBefore} welcomed again` + (s ? `, controller RSS ${round(s.rssMb)} MB` : ''));
      }
      if (this.controller!.exited) throw new RunFailed(`storm: the restarted controller exited:\n${this.controller!.logTail()}`);
    }
    await sleep(300);
    const end = monitor.sample();
    const result: StormResult = {
      agents: n,
      restartS: round((r.readyAt - r.killedAt) / 1000, 2),
      allBackS: backAt === undefined ? null : round((backAt - r.killedAt) / 1000, 2),
      afterReadyS: backAt === undefined ? null : round((backAt - r.readyAt) / 1000, 2),
      back: procs.connected,
      ...(end ? { peakRssMb: round(end.peakRssMb, 1) } : {}),
      ...(end && atReady ? { cpuPercent: { avg: round(cpuPercent(atReady, end), 1), max: round(cpuMax, 1) } } : {}),
    };
    this.print(`storm: ${result.back}/${n} back ${result.allBackS ?? 'never (300 s)'} s after the kill (${result.afterReadyS ?? '-'} s after the new controller was ready)`);
    return result;
  }

  /** The figures of the whole run (judge() holds them to the bar). */
  private measured(
    target: ControllerTarget,
    sampler: LastSeenSampler,
    m: {
      enrollMs: number;
      connected: Connected;
      steady: Steady;
      final?: ProcessSample;
      stopped?: { ms: number };
      eld: ReturnType<typeof monitorEventLoopDelay>;
      fanout?: FanoutResult;
      storm?: StormResult;
      workers?: { rssMb: number; cpuS: number };
    },
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
        agentProcs: o.agentProcs,
        tls: !!this.caPem,
        restRate: o.restRate,
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
        ...(s.cpuSplit ? { cpuSplit: s.cpuSplit } : {}),
        ...(s.memory ? { memory: s.memory } : {}),
        heartbeatsSentPerS: round(s.sent / secs, 1),
        heartbeatsStoredPerS: round(s.stored / secs, 1),
        ...(s.rowUpdates !== undefined ? { deviceRowUpdatesPerS: round(s.rowUpdates / secs, 1) } : {}),
      },
      ...(s.rest ? { rest: s.rest } : {}),
      ...(m.fanout ? { fanout: m.fanout } : {}),
      ...(m.storm ? { storm: m.storm } : {}),
      ...(m.workers ? { workers: { procs: o.agentProcs, rssMb: round(m.workers.rssMb), cpuPercentOfRun: round((m.workers.cpuS * 100000) / Math.max(1, Date.now() - c.t0), 1) } } : {}),
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
