#!/usr/bin/env node
// Rollout benchmark: `npm run bench:rollout -- --agents 10000` (bench/README.md "Rollouts").
// One controller process, N connected simulated agents (real gRPC streams, heartbeats) that
// succeed every job at once; a generation-upgrade rollout to all of them, with waves disabled
// and with five equal waves. Reports, per mode, the time from the rollout's start until every
// device received its job and until the rollout succeeded, from the POST and from the first
// wave's start. Target (issue 9): all delivered within 15 s of the first wave's start.
// Exit status: 0 target met, 1 not met, 2 bad flags, 3 the run failed.
import { setTimeout as sleep } from 'node:timers/promises';
import { Cleanup } from './cleanup.js';
import { connectAll, createEnrollmentToken, enrollAll } from './fleet.js';
import { type SimulatedAgent, simulatedOutput } from './simulated-agent.js';
import { SpawnedController } from './spawned-controller.js';

const TARGET_DELIVERED_S = 15;
const usage = `usage: npm run bench:rollout -- [--agents N] [--json] [--controller-log FILE]
  --agents N           simulated agents (default 10000)
  --json               print the result as JSON on stdout
  --controller-log F   write the controller's output to F`;

interface ModeResult {
  mode: string;
  waves: number;
  devices: number;
  /** Seconds from POST /api/v1/rollouts. */
  deliveredS: number | null;
  doneS: number | null;
  firstJobS: number | null;
  postS: number;
  /** Seconds from the first wave's start (its startedAt, the tick that dispatched it): what the target is about. */
  fromWaveStart: { firstJobS: number | null; deliveredS: number | null; doneS: number | null } | null;
  status: string;
}

function flags(argv: string[]): { agents: number; json: boolean; log?: string } {
  const out: { agents: number; json: boolean; log?: string } = { agents: 10_000, json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--agents') {
      const n = Number(argv[++i]);
      if (!Number.isInteger(n) || n < 1 || n > 50_000) throw new Error('--agents must be a whole number 1-50000');
      out.agents = n;
    } else if (a === '--json') out.json = true;
    else if (a === '--controller-log') out.log = argv[++i];
    else if (a === '--help' || a === '-h') {
      process.stdout.write(`${usage}\n`);
      process.exit(0);
    } else throw new Error(`unknown flag ${a}\n${usage}`);
  }
  return out;
}

async function main(): Promise<number> {
  let opts;
  try {
    opts = flags(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`bench:rollout: ${(err as Error).message}\n`);
    return 2;
  }
  const say = (line: string) => (opts.json ? process.stderr : process.stdout).write(`${line}\n`);
  const cleanup = new Cleanup((l) => process.stderr.write(`${l}\n`));
  let agents: SimulatedAgent[] = [];
  process.on('SIGINT', () => {
    for (const a of agents) a.stop();
    void cleanup.run().finally(() => process.exit(130));
  });
  try {
    const ctl = new SpawnedController(
      {
        databaseServer: process.env['IBEX_BENCH_DATABASE_SERVER'] ?? 'postgresql://postgres@127.0.0.1:5432/postgres',
        redisUrl: process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379',
        heartbeatMs: 30_000,
        env: { IBEX_LOG_LEVEL: 'warn', IBEX_ROLLOUT_TICK_MS: '200', IBEX_OFFLINE_AFTER_MS: '600000' },
        ...(opts.log ? { logFile: opts.log } : {}),
      },
      cleanup,
    );
    const t = await ctl.start();
    say(`controller pid ${t.pid} on ${t.api}; enrolling ${opts.agents} devices`);
    const token = await createEnrollmentToken(t.api, t.token, opts.agents, 'rollout bench');
    let last = Date.now();
    const ids = await enrollAll({
      target: t.grpc,
      enrollmentToken: token.token,
      count: opts.agents,
      namePrefix: 'rb',
      concurrency: 32,
      deadline: Date.now() + 15 * 60_000,
      onProgress: (n) => {
        if (Date.now() - last > 5000) {
          last = Date.now();
          say(`  enrolled ${n}/${opts.agents}`);
        }
      },
    });
    // Each mode counts the devices that received their job for the current rollout.
    let current: { prefix: string; received: Set<string>; firstAt?: number; allAt?: number } | undefined;
    // Like real agents, a device whose stream the controller closed (it failed to store one of
    // its messages) connects again and re-sends what was not acknowledged.
    const reconnect = async (a: SimulatedAgent) => {
      for (let i = 0; i < 30 && a.state !== 'connected'; i++) {
        await sleep(500 + Math.random() * 1000);
        await a.connect(10_000).catch(() => undefined);
      }
    };
    const events = {
      heartbeat: () => {},
      ended: (a: SimulatedAgent) => void reconnect(a),
      assigned: (a: SimulatedAgent, job: { jobId: string; type: string }, first: boolean) => {
        if (!current || !first || job.type !== 'generations.upgrade') return;
        current.received.add(a.deviceId);
        current.firstAt ??= Date.now();
        if (current.received.size === opts.agents) current.allAt = Date.now();
      },
    };
    say(`connecting ${opts.agents} agents`);
    const connected = await connectAll({ identities: ids, target: t.grpc, events, concurrency: 64, deadline: Date.now() + 10 * 60_000, onConnected: () => {}, onFailedAttempt: () => {} });
    agents = connected.agents;
    if (connected.failed.length) throw new Error(`${connected.failed.length} agents did not connect: ${connected.failed[0]!.error}`);
    for (const a of agents) {
      a.behaviour = (job) => ({ outcome: 'succeed', output: simulatedOutput(job) });
      a.startHeartbeats(30_000, Math.random() * 30_000);
    }
    // Presence: the controller marks devices online as they connect.
    await sleep(2000);

    const results: ModeResult[] = [];
    for (const mode of [
      { mode: 'waves disabled', strategy: { waves: { kind: 'none' } }, waves: 1 },
      { mode: 'five waves', strategy: { waves: { kind: 'equal', count: 5 } }, waves: 5 },
    ]) {
      current = { prefix: mode.mode, received: new Set() };
      const started = Date.now();
      const res = await fetch(`${t.api}/api/v1/rollouts`, {
        method: 'POST',
        headers: { authorization: `Bearer ${t.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          name: `bench ${mode.mode}`,
          target: { kind: 'all' },
          payload: { kind: 'generation_upgrade', upgrade: { from: { kind: 'tarball', url: 'http://artifacts.invalid/root.tar', sha256: 'b'.repeat(64) } } },
          strategy: mode.strategy,
        }),
      });
      if (res.status !== 201) throw new Error(`POST /api/v1/rollouts: ${res.status} ${await res.text()}`);
      const r = (await res.json()) as { id: string };
      const postS = Math.round((Date.now() - started) / 100) / 10;
      say(`  ${mode.mode}: POST /api/v1/rollouts answered after ${postS.toFixed(1)} s`);
      let waveStart: number | undefined;
      let status = 'running';
      let doneAt: number | undefined;
      const deadline = Date.now() + 5 * 60_000;
      while (Date.now() < deadline) {
        // A loaded controller may drop a poll: try again rather than end the run.
        const x = (await fetch(`${t.api}/api/v1/rollouts/${r.id}`, { headers: { authorization: `Bearer ${t.token}` }, signal: AbortSignal.timeout(30_000) })
          .then((res) => res.json())
          .catch(() => undefined)) as { status: string; counts: Record<string, number>; waves: { startedAt: string | null }[] } | undefined;
        if (!x) {
          await sleep(1000);
          continue;
        }
        status = x.status;
        if (x.waves[0]?.startedAt) waveStart ??= Date.parse(x.waves[0].startedAt);
        if (['succeeded', 'failed', 'aborted'].includes(status)) {
          doneAt = Date.now();
          break;
        }
        say(`  ${mode.mode}: ${current.received.size}/${opts.agents} received, ${x.counts['succeeded']} succeeded`);
        await sleep(1000);
      }
      const s = (at: number | undefined, from = started) => (at === undefined ? null : Math.round((at - from) / 100) / 10);
      const w = waveStart === undefined ? null : { firstJobS: s(current.firstAt, waveStart), deliveredS: s(current.allAt, waveStart), doneS: s(doneAt, waveStart) };
      results.push({ mode: mode.mode, waves: mode.waves, devices: opts.agents, deliveredS: s(current.allAt), doneS: s(doneAt), firstJobS: s(current.firstAt), postS, fromWaveStart: w, status });
      say(`${mode.mode}: first job ${s(current.firstAt)} s, all ${opts.agents} delivered ${s(current.allAt)} s, rollout ${status} at ${s(doneAt)} s (from POST /rollouts)`);
      if (w) say(`${mode.mode}: from the first wave's start (${s(waveStart)} s after the POST): first job ${w.firstJobS} s, all delivered ${w.deliveredS} s, rollout ${status} at ${w.doneS} s`);
    }
    const ok = results.every((r) => r.fromWaveStart?.deliveredS != null && r.fromWaveStart.deliveredS <= TARGET_DELIVERED_S && r.status === 'succeeded');
    say(`target: every device has its job within ${TARGET_DELIVERED_S} s of the first wave's start, and the rollout succeeds: ${ok ? 'met' : 'NOT met'}; controller warnings: ${ctl.warnings}`);
    if (opts.json) process.stdout.write(`${JSON.stringify({ agents: opts.agents, results, ok })}\n`);
    return ok ? 0 : 1;
  } catch (err) {
    process.stderr.write(`bench:rollout: the run failed: ${(err as Error).stack ?? err}\n`);
    return 3;
  } finally {
    for (const a of agents) a.stop();
    await cleanup.run();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench:rollout: ${String(err)}\n`);
    process.exit(3);
  },
);
