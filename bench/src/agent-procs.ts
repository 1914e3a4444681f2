import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { RestLoadResult } from './rest-load.js';
import type { AgentIdentity } from './simulated-agent.js';
import type { FromWorker, ToWorker } from './worker-protocol.js';

const workerModule = fileURLToPath(new URL('./agent-worker.js', import.meta.url));

/** What the harness hears from its agent processes, as they report it. */
export interface AgentProcsEvents {
  heartbeat(deviceId: string, sentAtMs: number): void;
  ended(reason: string): void;
  failedAttempt(message: string): void;
  desired?(deviceId: string, atMs: number): void;
  reportAcked?(deviceId: string, atMs: number): void;
  resultAcked?(deviceId: string, atMs: number): void;
}

interface Worker {
  child: ChildProcess;
  last?: Extract<FromWorker, { t: 'tick' }>;
  connectDone?: Promise<{ index: number; error: string }[]>;
  exited: boolean;
}

/**
 * N worker processes (bench/dist/agent-worker.js), each running a share of the simulated agents,
 * so the agents do not share a process (or an event loop) with the harness that measures.
 */
export class AgentProcs {
  private readonly workers: Worker[] = [];
  private byIndex: AgentIdentity[] = [];
  private restWorker?: Worker;
  private restDone?: (r: RestLoadResult) => void;

  constructor(
    private readonly procs: number,
    private readonly events: AgentProcsEvents,
  ) {}

  /** Connected streams right now, over every worker (as of their last report, <= 200 ms old). */
  get connected(): number {
    return this.workers.reduce((n, w) => n + (w.last?.connected ?? 0), 0);
  }

  get welcomes(): number {
    return this.workers.reduce((n, w) => n + (w.last?.welcomes ?? 0), 0);
  }

  get failedAttempts(): number {
    return this.workers.reduce((n, w) => n + (w.last?.failedAttempts ?? 0), 0);
  }

  /** Sum of the workers' RSS, MB, and CPU seconds so far. */
  get usage(): { rssMb: number; cpuS: number } {
    return this.workers.reduce((u, w) => ({ rssMb: u.rssMb + (w.last?.rssMb ?? 0), cpuS: u.cpuS + (w.last?.cpuS ?? 0) }), { rssMb: 0, cpuS: 0 });
  }

  get anyExited(): boolean {
    return this.workers.some((w) => w.exited);
  }

  /** Forks the workers and has each connect its share (`identities` split round-robin). */
  async connect(o: { identities: AgentIdentity[]; target: string; caPem?: string; heartbeatMs: number; concurrency: number; deadlineMs: number }): Promise<{ index: number; error: string }[]> {
    this.byIndex = [];
    for (const id of o.identities) this.byIndex[id.index] = id;
    const shares: AgentIdentity[][] = Array.from({ length: this.procs }, () => []);
    o.identities.forEach((id, i) => shares[i % this.procs]!.push(id));
    const perWorker = Math.max(1, Math.ceil(o.concurrency / this.procs));
    for (const share of shares) {
      const w = this.spawn();
      this.workers.push(w);
      w.connectDone = new Promise((resolve, reject) => {
        w.child.on('message', (m: FromWorker) => {
          if (m.t === 'connected') resolve(m.failed);
          if (m.t === 'fatal') reject(new Error(`agent worker ${w.child.pid}: ${m.message}`));
        });
        w.child.once('exit', (code, sig) => reject(new Error(`agent worker ${w.child.pid} exited (${code ?? sig}) while connecting`)));
      });
      this.post(w, { t: 'agents', identities: share, target: o.target, ...(o.caPem ? { caPem: o.caPem } : {}), heartbeatMs: o.heartbeatMs, concurrency: perWorker, deadlineMs: o.deadlineMs });
    }
    const failed = await Promise.all(this.workers.map((w) => w.connectDone!));
    return failed.flat();
  }

  record(on: boolean): void {
    for (const w of this.workers) this.post(w, { t: 'record', on });
  }

  /** Starts the fixed-rate REST load in a process of its own. */
  startRest(url: string, token: string, rate: number): void {
    const w = this.spawn();
    this.restWorker = w;
    this.post(w, { t: 'rest', url, token, rate });
  }

  stopRest(): Promise<RestLoadResult | undefined> {
    const w = this.restWorker;
    if (!w || w.exited) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(undefined), 20_000);
      this.restDone = (r) => {
        clearTimeout(timer);
        resolve(r);
        this.post(w, { t: 'stop' });
      };
      this.post(w, { t: 'rest-stop' });
    });
  }

  /** Closes every stream and ends the workers (SIGKILL after 5 s). */
  async stop(): Promise<void> {
    const all = [...this.workers, ...(this.restWorker ? [this.restWorker] : [])].filter((w) => !w.exited);
    await Promise.all(
      all.map(
        (w) =>
          new Promise<void>((resolve) => {
            const killer = setTimeout(() => w.child.kill('SIGKILL'), 5000);
            w.child.once('exit', () => {
              clearTimeout(killer);
              resolve();
            });
            this.post(w, { t: 'stop' });
            if (w.exited) resolve();
          }),
      ),
    );
  }

  private spawn(): Worker {
    const child = fork(workerModule, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const w: Worker = { child, exited: false };
    child.on('exit', () => (w.exited = true));
    child.on('message', (m: FromWorker) => this.onMessage(w, m));
    return w;
  }

  private post(w: Worker, m: ToWorker): void {
    if (w.exited || !w.child.connected) return;
    w.child.send(m);
  }

  private onMessage(w: Worker, m: FromWorker): void {
    if (m.t === 'rest-done') return this.restDone?.(m.result);
    if (m.t !== 'tick') return;
    w.last = m;
    const e = this.events;
    const id = (i: number) => this.byIndex[i]!.deviceId;
    for (let i = 0; i < m.heartbeats.length; i += 2) e.heartbeat(id(m.heartbeats[i]!), m.heartbeats[i + 1]!);
    for (const r of m.ended) e.ended(r);
    for (const x of m.newErrors) e.failedAttempt(x);
    for (let i = 0; i < m.desired.length; i += 2) e.desired?.(id(m.desired[i]!), m.desired[i + 1]!);
    for (let i = 0; i < m.reportAcked.length; i += 2) e.reportAcked?.(id(m.reportAcked[i]!), m.reportAcked[i + 1]!);
    for (let i = 0; i < m.resultAcked.length; i += 2) e.resultAcked?.(id(m.resultAcked[i]!), m.resultAcked[i + 1]!);
  }
}
