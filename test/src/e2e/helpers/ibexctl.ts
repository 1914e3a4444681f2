import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exec, type ExecResult } from './exec.js';
import { cliMain } from './repo.js';

/**
 * ibexctl as a user runs it: the built command, in a fresh HOME and XDG_CONFIG_HOME (never the
 * real one, whose contexts must not be read or written by a test), with a `bin/ibexctl` on
 * PATH for the completion script, which calls `ibexctl` by name.
 */
export class IbexctlHome {
  private constructor(readonly dir: string) {}

  static async create(): Promise<IbexctlHome> {
    const dir = await mkdtemp(join(tmpdir(), 'ibexctl-home-'));
    await mkdir(join(dir, 'bin'));
    const wrapper = join(dir, 'bin', 'ibexctl');
    await writeFile(wrapper, `#!/bin/sh\nexec "${process.execPath}" "${cliMain}" "$@"\n`);
    await chmod(wrapper, 0o755);
    return new IbexctlHome(dir);
  }

  get home(): string {
    return join(this.dir, 'home');
  }

  get configHome(): string {
    return join(this.dir, 'config');
  }

  /** The context file ibexctl writes. */
  get configFile(): string {
    return join(this.configHome, 'ibex', 'config.json');
  }

  env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = { PATH: `${join(this.dir, 'bin')}:${process.env['PATH'] ?? ''}`, HOME: this.home, XDG_CONFIG_HOME: this.configHome, LANG: 'C.UTF-8' };
    return { ...env, ...extra };
  }

  /** `ibexctl ARGS` to completion. */
  run(args: string[], opts: { env?: Record<string, string>; input?: string } = {}): Promise<ExecResult> {
    return exec(process.execPath, [cliMain, ...args], { env: this.env(opts.env), ...(opts.input !== undefined ? { input: opts.input } : {}), timeoutMs: 120_000 });
  }

  async remove(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}
