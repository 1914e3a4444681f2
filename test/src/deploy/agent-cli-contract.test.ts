// The service files start the real agent binary the way they are written: the systemd unit's
// ExecStart with agent.env's variables, the OpenRC script's command_args, and the Merlin
// supervisor. Each is aimed at a scratch root through flags the service files leave open, and
// must be accepted (not a usage error), idle against a controller that does not answer, and
// stop cleanly on SIGTERM.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { agentDir, alive, merlinDir, repo, requireTool, run, scratch, show, sleep, waitFor } from './support.js';

const x64 = join(repo, 'dist', 'agent', 'ibex-agent-linux-x64');

/** A made-up enrollment (the shape of apps/agent/src/journal/credential.ts) with nobody listening. */
function enroll(dataDir: string): void {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const credential = { deviceId: 'dev-svc', deviceName: 'svc', credential: 'ibxd_svc', controller: 'grpc://127.0.0.1:9', labels: {}, enrolledAtMs: Date.now() };
  writeFileSync(join(dataDir, 'credential.json'), JSON.stringify(credential), { mode: 0o600 });
}

/** Starts the agent, checks it is still up after 2 s, sends SIGTERM, returns how it ended. */
async function idleThenStop(args: string[], env: Record<string, string | undefined>) {
  const child = spawn(x64, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (output += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (output += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  await sleep(2000);
  const upAfter2s = child.exitCode === null;
  const t0 = Date.now();
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const code = await exited;
  clearTimeout(timer);
  return { upAfter2s, code, stopMs: Date.now() - t0, output };
}

/** KEY=value lines of an env file, commented-out examples included. */
function exampleEnv(path: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const m = /^#?([A-Z][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (m) env[m[1]!] = m[2]!.replace(/^"(.*)"$/, '$1');
  }
  return env;
}

describe('the service files start the real agent', { skip: process.arch !== 'x64' && 'runs the x64 agent natively' }, () => {
  let tmp: { dir: string; cleanup: () => void };
  before(() => {
    assert.ok(existsSync(x64), `${x64} is missing: run \`node scripts/build-agent.mjs --no-xz\` first`);
    tmp = scratch('svc');
  });
  after(() => tmp.cleanup());

  it('systemd: ExecStart with every variable agent.env suggests runs, idles and stops on SIGTERM', async () => {
    const unit = readFileSync(join(agentDir, 'ibex-agent.service'), 'utf8');
    const execStart = /^ExecStart=(.*)$/m.exec(unit)![1]!.split(/\s+/);
    assert.equal(execStart[0], '/usr/local/bin/ibex-agent');
    const env = exampleEnv(join(agentDir, 'agent.env'));
    assert.ok(Object.keys(env).length > 0, 'agent.env suggests no settings');
    const root = join(tmp.dir, 'systemd');
    // Not enrolled: refused with a message, and not as a usage error (exit 2).
    const fresh = await run(x64, [...execStart.slice(1), '--root', root], { env });
    assert.equal(fresh.code, 1, show(fresh));
    assert.match(fresh.stderr, /not enrolled/);
    // Enrolled: it stays up, retrying, and stops well within TimeoutStopSec=30s.
    enroll(join(root, 'var', 'lib', 'ibex-agent'));
    const r = await idleThenStop([...execStart.slice(1), '--root', root], env);
    assert.ok(r.upAfter2s, `the agent exited at once:\n${r.output}`);
    assert.equal(r.code, 0, r.output);
    assert.ok(r.stopMs < 30_000);
  });

  it('OpenRC: command_args from the script and conf.d run, idle and stop on SIGTERM', async () => {
    const dataDir = join(tmp.dir, 'openrc', 'data');
    const root = join(tmp.dir, 'openrc', 'root');
    mkdirSync(root, { recursive: true });
    enroll(dataDir);
    const probe = 'use() { :; }; need() { :; }; after() { :; }; . "$1"; printf "%s\\n" "$command_args"';
    const sourced = await run('sh', ['-c', probe, 'sh', join(agentDir, 'ibex-agent.openrc')], {
      env: { IBEX_DATA_DIR: dataDir, IBEX_OPTS: `--root ${root} --log-level debug` },
    });
    assert.equal(sourced.code, 0, show(sourced));
    const args = sourced.stdout.trim().split(/\s+/);
    const r = await idleThenStop(args, {});
    assert.ok(r.upAfter2s, `the agent exited at once (${args.join(' ')}):\n${r.output}`);
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, /stream to the controller ended/);
  });

  it('Merlin: the hooks run the real agent from the disk and stop it on unmount', async () => {
    const busybox = requireTool('busybox', 'busybox-static');
    const jffs = join(tmp.dir, 'jffs');
    const mount = join(tmp.dir, 'mnt', 'sda1');
    const dataDir = join(mount, 'ibex-agent', 'data');
    const runDir = join(tmp.dir, 'merlin-run');
    mkdirSync(jffs, { recursive: true });
    mkdirSync(join(tmp.dir, 'root'), { recursive: true });
    enroll(dataDir);
    const bbShell = join(tmp.dir, 'sh');
    symlinkSync(busybox, bbShell);
    const install = await run(busybox, [
      'sh', join(merlinDir, 'install-hooks.sh'), '--jffs', jffs, '--mount', mount, '--bin', x64,
      '--run-dir', runDir, '--args', `--root ${join(tmp.dir, 'root')}`,
    ]);
    assert.equal(install.code, 0, show(install));
    const env = { IBEX_MERLIN_SH: bbShell };
    const started = await run(busybox, ['sh', join(jffs, 'scripts', 'post-mount'), mount], { env });
    assert.equal(started.code, 0, show(started));
    const log = join(dataDir, 'agent.log');
    assert.ok(await waitFor(() => existsSync(log) && /stream to the controller ended/.test(readFileSync(log, 'utf8')), 15_000), `the agent is not retrying:\n${existsSync(log) ? readFileSync(log, 'utf8') : '(no log)'}`);
    const agentPid = Number(readFileSync(join(runDir, 'agent.pid'), 'utf8'));
    assert.ok(alive(agentPid));
    const stopped = await run(busybox, ['sh', join(jffs, 'scripts', 'unmount'), mount], { env, timeoutMs: 40_000 });
    assert.equal(stopped.code, 0, show(stopped));
    assert.equal(alive(agentPid), false);
    assert.match(readFileSync(log, 'utf8'), /signal received signal=SIGTERM[\s\S]*stopped/);
  });
});
