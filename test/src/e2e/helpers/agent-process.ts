import { type ChildProcess, spawn } from 'node:child_process';
import { agentBinary } from './repo.js';
import { exec, type ExecResult } from './exec.js';

/** The built agent binary, run inside a test network namespace (argv prefix from TestNetns). */
export class AgentProcess {
  private child?: ChildProcess;
  logs = '';
  /** How the last run ended: exit code or signal name. */
  ended?: { code: number | null; signal: NodeJS.Signals | null };

  constructor(
    private readonly prefix: string[],
    private readonly root: string,
  ) {}

  /** `ibex-agent <args> --root ROOT` inside the namespace, to completion. */
  cli(args: string[], env: Record<string, string> = {}): Promise<ExecResult> {
    const [cmd, ...rest] = [...this.prefix, agentBinary, ...args, '--root', this.root];
    return exec(cmd!, rest, { env: { ...process.env, ...env }, timeoutMs: 60_000 });
  }

  /** Starts `ibex-agent run` in the background. */
  start(env: Record<string, string> = {}): void {
    if (this.running) throw new Error('agent already running');
    const [cmd, ...rest] = [...this.prefix, agentBinary, 'run', '--root', this.root, '--log-format', 'json', '--log-level', 'debug'];
    this.ended = undefined;
    const child = spawn(cmd!, rest, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.on('data', (d) => (this.logs += d));
    child.stderr?.on('data', (d) => (this.logs += d));
    child.once('exit', (code, signal) => (this.ended = { code, signal }));
    this.child = child;
  }

  get running(): boolean {
    return !!this.child && this.ended === undefined;
  }

  /** Resolves when the process has ended (for whatever reason). */
  async exited(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const child = this.child;
    if (!child) throw new Error('agent was never started');
    if (this.ended) return this.ended;
    return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (!this.running) return;
    const gone = this.exited();
    // `ip netns exec` execs the agent, so the pid is the agent's own.
    this.child!.kill(signal);
    await gone;
  }

  /** Log events (json lines) whose message matches. */
  events(match: RegExp): Array<Record<string, unknown>> {
    const out: Array<Record<string, unknown>> = [];
    for (const line of this.logs.split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        const e = JSON.parse(line) as Record<string, unknown>;
        if (match.test(String(e['msg'] ?? e['message'] ?? ''))) out.push(e);
      } catch {}
    }
    return out;
  }
}
