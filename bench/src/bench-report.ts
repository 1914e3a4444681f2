// What a run measured, the bar it is held to, and how both are printed. Pure: no I/O.
import type { FanoutResult } from './fanout.js';
import type { RestLoadResult } from './rest-load.js';
import { type Distribution, round } from './stats.js';

/** The controller's own view of its memory at the end of the steady phase (its /metrics), MB. */
export interface ControllerMemory {
  heapUsedMb: number;
  heapTotalMb: number;
  externalMb: number;
  rssMb: number;
}

/** What --storm measured. */
export interface StormResult {
  agents: number;
  /** From SIGKILL until the new controller answered /readyz. */
  restartS: number;
  /** From SIGKILL until every agent was welcomed again (null: not within 300 s). */
  allBackS: number | null;
  afterReadyS: number | null;
  back: number;
  peakRssMb?: number;
  cpuPercent?: { avg: number; max: number };
}


/** One line of the periodic table: the figures of the last reporting interval. */
export interface WindowRow {
  /** Seconds since the agents started connecting. */
  tS: number;
  phase: 'connect' | 'steady' | 'rest' | 'drain';
  connected: number;
  rssMb?: number;
  peakRssMb?: number;
  cpuPercent?: number;
  sentPerS: number;
  storedPerS: number;
  /** Postgres' own count of device rows updated per second (pg_stat_user_tables). */
  rowUpdatesPerS?: number;
  /** Lags of the heartbeats confirmed in this interval. */
  lag: Distribution;
  /** Heartbeats so far that took longer than the limit (or are still missing past it). */
  overLimit: number;
  unconfirmed: number;
}

export interface BenchResult {
  ok: boolean;
  /** One line per part of the bar that was not met. */
  failures: string[];
  /** Parts of the bar that could not be checked (e.g. RSS without a controller pid). */
  notChecked: string[];
  bar: { agents: number; maxRssMb: number; maxLagMs: number };
  config: {
    agents: number;
    heartbeatMs: number;
    durationS: number;
    connectConcurrency: number;
    enrollConcurrency: number;
    sampleMs: number;
    agentProcs?: number;
    tls?: boolean;
    restRate?: number;
    controllerNodeArgs?: string[];
  };
  controller: { mode: 'spawned' | 'external'; pid?: number; warnings?: number; lastWarnings?: string[]; shutdownMs?: number };
  enroll: { ms: number };
  connect: { agents: number; connected: number; failed: number; failedAttempts: number; ms: number; firstErrors: string[] };
  steady: {
    seconds: number;
    connectedEnd: number;
    disconnects: number;
    disconnectReasons: string[];
    rssMb?: { current: number; peak: number };
    cpuPercent?: { avg: number; max: number };
    /** With --rest-rate: CPU in the first half (heartbeats only) and the second (with the REST load). */
    cpuSplit?: { idle: { avg: number; max: number }; rest: { avg: number; max: number } };
    memory?: ControllerMemory;
    heartbeatsSentPerS: number;
    heartbeatsStoredPerS: number;
    deviceRowUpdatesPerS?: number;
  };
  lag: Distribution & {
    heartbeatsSent: number;
    /** Heartbeats never seen in lastSeenAt by the end of the run. */
    unconfirmed: number;
    /** Confirmed later than the limit, plus unconfirmed. */
    overLimit: number;
    limitMs: number;
    sampleMs: number;
    slowestReadMs: number;
  };
  harness: { cpuPercent: number; eventLoopDelayP99Ms: number; eventLoopDelayMaxMs: number };
  /** The agents' worker processes: RSS summed at the end, CPU % of one core over the run. */
  workers?: { procs: number; rssMb: number; cpuPercentOfRun: number };
  /** GET /api/v1/devices?limit=100 at a fixed rate during the steady phase. */
  rest?: RestLoadResult;
  fanout?: FanoutResult;
  storm?: StormResult;
  windows: WindowRow[];
}

/** The bar (the issue's acceptance criteria): what failed and what could not be checked. */
export function judge(r: Omit<BenchResult, 'ok' | 'failures' | 'notChecked'>): Pick<BenchResult, 'ok' | 'failures' | 'notChecked'> {
  const failures: string[] = [];
  const notChecked: string[] = [];
  const n = r.bar.agents;
  if (r.connect.connected < n) failures.push(`only ${r.connect.connected} of ${n} agents connected (first error: ${r.connect.firstErrors[0] ?? 'none recorded'})`);
  if (r.steady.disconnects) failures.push(`${r.steady.disconnects} streams ended during the run (${r.steady.disconnectReasons[0] ?? ''})`);
  if (!r.steady.rssMb) notChecked.push('controller RSS (no controller pid: pass --controller-pid)');
  else if (r.steady.rssMb.peak >= r.bar.maxRssMb) failures.push(`controller peak RSS ${round(r.steady.rssMb.peak)} MB is not under ${r.bar.maxRssMb} MB`);
  if (r.lag.heartbeatsSent === 0) failures.push('no heartbeat was sent (run longer than one heartbeat interval)');
  else if (r.lag.count === 0) failures.push('no heartbeat ever showed in device.lastSeenAt');
  if (r.lag.overLimit) {
    failures.push(
      `${r.lag.overLimit} of ${r.lag.heartbeatsSent} heartbeats were not in lastSeenAt within ${r.bar.maxLagMs} ms ` +
        `(${r.lag.unconfirmed} never; max lag ${round(r.lag.max)} ms)`,
    );
  }
  return { ok: failures.length === 0, failures, notChecked };
}

const COLUMNS = ['t s', 'phase', 'agents', 'RSS MB', 'peak MB', 'CPU %', 'hb sent/s', 'hb stored/s', 'rows upd/s', 'lag p50', 'lag p99', 'lag max', 'over limit', 'unconfirmed'];
const WIDTHS = COLUMNS.map((c) => Math.max(c.length, 7));

export function tableHeader(): string {
  return COLUMNS.map((c, i) => c.padStart(WIDTHS[i]!)).join(' ');
}

export function tableRow(w: WindowRow): string {
  const f = (v: number | undefined, digits = 0) => (v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(digits));
  const cells = [
    f(w.tS),
    w.phase,
    String(w.connected),
    f(w.rssMb),
    f(w.peakRssMb),
    f(w.cpuPercent),
    f(w.sentPerS),
    f(w.storedPerS),
    f(w.rowUpdatesPerS),
    f(w.lag.p50),
    f(w.lag.p99),
    f(w.lag.max),
    String(w.overLimit),
    String(w.unconfirmed),
  ];
  return cells.map((c, i) => c.padStart(WIDTHS[i]!)).join(' ');
}

export function summary(r: BenchResult): string {
  const s = r.steady;
  const lines = [
    '',
    `summary: ${r.config.agents} agents, heartbeat every ${r.config.heartbeatMs} ms, ${s.seconds} s after all connected` +
      (r.config.controllerNodeArgs ? `, controller node ${r.config.controllerNodeArgs.join(' ')}` : ''),
    `  enrolled             ${r.config.agents} in ${round(r.enroll.ms / 1000, 1)} s`,
    `  connected            ${r.connect.connected}/${r.connect.agents} in ${round(r.connect.ms / 1000, 1)} s` +
      ` (${r.connect.failedAttempts} failed attempts, ${r.connect.failed} never connected); at the end ${s.connectedEnd}, ${s.disconnects} streams ended`,
    `  controller RSS       ${s.rssMb ? `${round(s.rssMb.current)} MB at the end, peak ${round(s.rssMb.peak)} MB (VmHWM)` : 'not measured'}`,
    ...(s.memory ? [`                       JS heap ${s.memory.heapUsedMb} MB used of ${s.memory.heapTotalMb} MB, external ${s.memory.externalMb} MB (its /metrics at the end of the steady phase)`] : []),
    `  controller CPU       ${s.cpuPercent ? `${round(s.cpuPercent.avg)} % of one core on average, ${round(s.cpuPercent.max)} % in the busiest interval` : 'not measured'}`,
    ...(s.cpuSplit ? [`                       heartbeats only: ${s.cpuSplit.idle.avg} % avg, ${s.cpuSplit.idle.max} % busiest; with the REST load: ${s.cpuSplit.rest.avg} % avg, ${s.cpuSplit.rest.max} % busiest`] : []),
    `  heartbeats           ${round(s.heartbeatsSentPerS, 1)}/s sent, ${round(s.heartbeatsStoredPerS, 1)}/s stored` +
      (s.deviceRowUpdatesPerS !== undefined ? ` (Postgres counted ${round(s.deviceRowUpdatesPerS, 1)} device row updates/s)` : ''),
    `  last-seen lag        p50 ${round(r.lag.p50)} ms, p99 ${round(r.lag.p99)} ms, max ${round(r.lag.max)} ms over ${r.lag.count} heartbeats` +
      ` (sampled every ${r.lag.sampleMs} ms, slowest read ${r.lag.slowestReadMs} ms: upper bounds)`,
    `  over ${r.lag.limitMs} ms        ${r.lag.overLimit} (${r.lag.unconfirmed} never shown) of ${r.lag.heartbeatsSent} sent`,
    `  harness              ${round(r.harness.cpuPercent)} % CPU, event loop delay p99 ${round(r.harness.eventLoopDelayP99Ms)} ms, max ${round(r.harness.eventLoopDelayMaxMs)} ms`,
  ];
  if (r.workers) lines.push(`  agent processes      ${r.workers.procs}, ${r.workers.rssMb} MB RSS together at the end, ${r.workers.cpuPercentOfRun} % of one core over the run; gRPC ${r.config.tls ? 'TLS' : 'plaintext'}`);
  if (r.rest) {
    const x = r.rest;
    lines.push(
      `  REST                 GET /api/v1/devices?limit=100 at ${x.rate}/s (sent ${round(x.sentPerS, 1)}/s, ${x.ok} ok, ${x.errors} errors): ` +
        `p50 ${round(x.latency.p50, 1)} ms, p99 ${round(x.latency.p99, 1)} ms, max ${round(x.latency.max)} ms from the scheduled send`,
    );
  }
  if (r.fanout) {
    const f = r.fanout;
    lines.push(
      `  fan-out              POST ${f.postS} s; first received ${f.firstReceivedS ?? '-'} s, all ${f.received}/${f.agents} received ${f.allReceivedS ?? 'never'} s; ` +
        `reports stored ${f.reported} (all ${f.allReportedS ?? 'never'} s), results stored ${f.results} (all ${f.allResultsS ?? 'never'} s); rollout ${f.rolloutStatus} at ${f.rolloutDoneS ?? '-'} s`,
    );
  }
  if (r.storm) {
    const x = r.storm;
    lines.push(
      `  storm                SIGKILL + restart: ready after ${x.restartS} s; ${x.back}/${x.agents} back ${x.allBackS ?? 'never'} s after the kill` +
        (x.peakRssMb !== undefined ? `; new controller peak RSS ${round(x.peakRssMb)} MB` : '') +
        (x.cpuPercent ? `, CPU ${x.cpuPercent.avg} % avg, ${x.cpuPercent.max} % peak` : ''),
    );
  }
  if (r.controller.warnings !== undefined) {
    lines.push(`  controller log       ${r.controller.warnings} WARN/ERROR lines` + (r.controller.shutdownMs !== undefined ? `; stopped ${r.controller.shutdownMs} ms after SIGTERM` : ''));
    for (const w of r.controller.lastWarnings ?? []) lines.push(`                       ${w.slice(0, 200)}`);
  }
  for (const n of r.notChecked) lines.push(`  not checked: ${n}`);
  const bar = `${r.bar.agents} agents, peak RSS < ${r.bar.maxRssMb} MB, every heartbeat in lastSeenAt within ${r.bar.maxLagMs} ms`;
  if (r.ok && r.notChecked.length) lines.push(`BAR MET for what was checked (${r.notChecked.length} part(s) not checked, above): ${bar}`);
  else if (r.ok) lines.push(`BAR MET: ${bar}`);
  else lines.push(`BAR NOT MET (${bar}):`, ...r.failures.map((f) => `  - ${f}`));
  return lines.join('\n');
}
