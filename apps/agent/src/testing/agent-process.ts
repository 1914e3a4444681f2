import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor } from './wait.js';

/**
 * How tests start the agent: `node apps/agent/dist/main.js`, or the single executable when
 * IBEX_AGENT_BIN names it (so the same tests can run against the shipped binary).
 */
export function agentCommand(): [string, string[]] {
  const bin = process.env.IBEX_AGENT_BIN;
  if (bin) return [bin, []];
  return [process.execPath, [fileURLToPath(new URL('../main.js', import.meta.url))]];
}

/** The environment for a child agent: the test runner's, minus agent settings that would leak in. */
function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('IBEX_AGENT_') && !k.startsWith('NODE_TEST')) env[k] = v;
  return { ...env, ...extra };
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs one agent command to completion. */
export function runAgent(args: string[], env: Record<string, string> = {}, timeoutMs = 20_000, prefix: string[] = [], input?: { text: string; afterStderr: RegExp }): Promise<CliResult> {
  const [cmd, pre] = agentCommand();
  const argv = [...prefix, cmd, ...pre, ...args];
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { env: childEnv(env), stdio: [input ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    // `input` is typed once stderr shows the prompt, as an operator would.
    if (input) {
      child.stdin!.on('error', () => {});
      child.stderr!.on('data', () => {
        if (input.afterStderr.test(stderr) && !child.stdin!.writableEnded) child.stdin!.end(input.text);
      });
    }
    const t = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`ibex-agent ${args.join(' ')} did not finish in ${timeoutMs} ms\n${stderr}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A long-running agent (`run`) whose stderr lines the test can wait for. */
export class AgentProcess {
  readonly lines: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private exitInfo?: { code: number | null; signal: NodeJS.Signals | null };
  private partial = '';

  private constructor(readonly child: ChildProcess) {
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => {
      const parts = (this.partial + chunk).split('\n');
      this.partial = parts.pop()!;
      this.lines.push(...parts);
    });
    child.stdout!.resume();
    this.exited = new Promise((resolve) =>
      child.on('exit', (code, signal) => {
        this.exitInfo = { code, signal };
        resolve(this.exitInfo);
      }),
    );
  }

  /** `prefix` runs the agent through another program, e.g. `ip netns exec NS` (which execs it, keeping the pid). */
  static start(args: string[], env: Record<string, string> = {}, prefix: string[] = []): AgentProcess {
    const [cmd, pre] = agentCommand();
    const argv = [...prefix, cmd, ...pre, ...args];
    return new AgentProcess(spawn(argv[0]!, argv.slice(1), { env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] }));
  }

  get running(): boolean {
    return this.exitInfo === undefined;
  }

  count(re: RegExp): number {
    return this.lines.filter((l) => re.test(l)).length;
  }

  /** `exited`, bounded: a process that should have died (a failpoint's SIGKILL) but did not fails the test, naming its last log lines, instead of hanging it. */
  async exitedWithin(timeoutMs = 60_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    await waitFor('the agent to exit', () => this.exitInfo, timeoutMs).catch((err: Error) => {
      throw new Error(`${err.message}\n--- agent stderr ---\n${this.lines.slice(-30).join('\n')}`);
    });
    return this.exitInfo!;
  }

  waitForLine(re: RegExp, timeoutMs = 10_000): Promise<string> {
    return waitFor(`agent log line ${re}\n--- agent stderr ---\n${this.lines.slice(-30).join('\n')}`, () => this.lines.find((l) => re.test(l)), timeoutMs);
  }

  /** SIGTERM, then SIGKILL if it does not exit in time. Safe to call twice. */
  async stop(timeoutMs = 8000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (!this.running) return this.exitInfo!;
    this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    const r = await this.exited;
    clearTimeout(t);
    return r;
  }

  kill(): Promise<unknown> {
    if (this.running) this.child.kill('SIGKILL');
    return this.exited;
  }
}

/** A scratch device root with the data dir under it; removed by `cleanup`. */
export function scratchRoot(prefix = 'ibex-agent-it-'): { root: string; dataDir: string; cleanup: () => void } {
  const root = mkdtempSync(join(tmpdir(), prefix));
  return { root, dataDir: join(root, 'var/lib/ibex-agent'), cleanup: () => rmSync(root, { recursive: true, force: true }) };
}
