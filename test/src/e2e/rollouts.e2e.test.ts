// Rollouts across controller processes: a controller SIGKILLed at the dangerous moments of a
// dispatch and restarted finishes the rollout with every device's job executed exactly once;
// two replicas driving at once never double a job. Simulated agents (bench/src/simulated-agent.ts,
// real gRPC streams with programmable job outcomes), real Postgres and Redis, real controller processes.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { createTestDatabase, type TestDatabase } from '@ibex/migrate';
import { deleteRedisPrefix, testRedisUrl } from '@ibex/test-support';
import { enrollAll } from '@ibex/bench/dist/fleet.js';
import { type AgentIdentity, SimulatedAgent, simulatedOutput } from '@ibex/bench/dist/simulated-agent.js';
import pg from 'pg';
import { ControllerProcess } from './helpers/controller-process.js';
import { waitFor } from './helpers/exec.js';

const ENV = { IBEX_ROLLOUT_TICK_MS: '100', IBEX_HEARTBEAT_INTERVAL_MS: '1000', IBEX_PRESENCE_FLUSH_MS: '200', IBEX_OFFLINE_AFTER_MS: '60000', IBEX_LOG_LEVEL: 'error' };
const UPGRADE = { kind: 'generation_upgrade', upgrade: { from: { kind: 'tarball', url: 'http://artifacts.invalid/root.tar', sha256: 'a'.repeat(64) } } };

/** Agents that reconnect to `target()` whenever their stream ends, as real agents do. */
class Fleet {
  readonly agents: SimulatedAgent[];
  private stopped = false;
  constructor(ids: AgentIdentity[], target: (i: number) => string) {
    const events = {
      heartbeat: () => {},
      ended: (a: SimulatedAgent) => void this.reconnect(a),
    };
    this.agents = ids.map((id) => new SimulatedAgent(id, target(id.index), events));
    for (const a of this.agents) a.behaviour = (job) => ({ outcome: 'succeed', output: simulatedOutput(job), delayMs: 30 });
  }
  async connectAll(): Promise<void> {
    await Promise.all(this.agents.map((a) => this.reconnect(a)));
  }
  private async reconnect(a: SimulatedAgent): Promise<void> {
    while (!this.stopped && a.state !== 'connected') {
      try {
        await a.connect(5000);
        a.startHeartbeats(1000, Math.random() * 1000);
        return;
      } catch {
        await sleep(200);
      }
    }
  }
  stop(): void {
    this.stopped = true;
    for (const a of this.agents) a.stop();
  }
}

describe('rollouts across controller processes', () => {
  let db: TestDatabase;
  let sql: pg.Client;
  const ctls: ControllerProcess[] = [];
  const fleets: Fleet[] = [];

  before(async () => {
    db = await createTestDatabase();
    sql = new pg.Client({ connectionString: db.url });
    await sql.connect();
  });
  after(async () => {
    for (const f of fleets) f.stop();
    for (const c of ctls) await c.stop('SIGKILL').catch(() => {});
    await sql?.end().catch(() => {});
    for (const c of ctls) await deleteRedisPrefix(testRedisUrl, c.redisPrefix);
    await db?.drop();
  });

  async function enroll(ctl: ControllerProcess, prefix: string, count: number): Promise<AgentIdentity[]> {
    const token = await ctl.json<{ token: string }>('/api/v1/enrollment-tokens', { method: 'POST', json: { description: prefix, maxUses: count, labels: { group: prefix } } });
    return enrollAll({ target: `127.0.0.1:${ctl.grpcPort}`, enrollmentToken: token.token, count, namePrefix: prefix, concurrency: 8, deadline: Date.now() + 60_000, onProgress: () => {} });
  }

  /** Each device: exactly one job row for the rollout, executed exactly once by the device. */
  async function assertExactlyOnce(rolloutId: string, fleet: Fleet) {
    const rows = await sql.query<{ deviceId: string; jobs: number; state: string }>(
      `SELECT t."deviceId", t.state::text AS state, (SELECT count(*)::int FROM job j WHERE j."deviceId" = t."deviceId" AND j."createdBy" = $2) AS jobs
         FROM rollout_target t WHERE t."rolloutId" = $1`,
      [rolloutId, `rollout:${rolloutId}`],
    );
    assert.equal(rows.rows.length, fleet.agents.length);
    for (const r of rows.rows) {
      assert.equal(r.state, 'succeeded');
      assert.equal(r.jobs, 1, `device ${r.deviceId}: one job`);
    }
    for (const a of fleet.agents) assert.deepEqual([...a.executed.values()], [1], `${a.identity.deviceName} executed its one job once`);
  }

  it('a controller SIGKILLed before and after committing a dispatch resumes the rollout; every job runs exactly once', async () => {
    const ctl = new ControllerProcess({ databaseUrl: db.url, env: ENV });
    ctls.push(ctl);
    await ctl.start();
    const fleet = new Fleet(await enroll(ctl, 'crash', 24), () => `127.0.0.1:${ctl.grpcPort}`);
    fleets.push(fleet);
    await fleet.connectAll();

    // Dies right after the first wave's jobs committed, before any device was told.
    await ctl.stop();
    await ctl.start({ IBEX_CONTROLLER_FAILPOINTS: 'rollout-dispatch-after-commit' });
    await waitFor('every agent back', async () => fleet.agents.every((a) => a.state === 'connected') || undefined, 30_000);
    const r = await ctl.json<{ id: string }>('/api/v1/rollouts', {
      method: 'POST',
      json: { name: 'crash', target: { kind: 'selector', selector: 'group=crash' }, payload: UPGRADE, strategy: { canary: { count: 2 }, waves: { kind: 'equal', count: 2 } } },
    }).catch(() => undefined);
    const died = await ctl.exited(30_000);
    assert.equal(died.signal, 'SIGKILL', ctl.logs.slice(-2000));
    const id = r?.id ?? (await sql.query<{ id: string }>('SELECT id FROM rollout WHERE name = $1', ['crash'])).rows[0]!.id;
    const first = await sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM rollout_target WHERE "rolloutId" = $1 AND "jobId" IS NOT NULL`, [id]);
    assert.equal(first.rows[0]!.n, 2, 'the canary jobs were committed before the kill');

    // Restarted, it dies again in the next dispatch, this time before the commit.
    await ctl.start({ IBEX_CONTROLLER_FAILPOINTS: 'rollout-dispatch-before-commit' });
    const died2 = await ctl.exited(60_000);
    assert.equal(died2.signal, 'SIGKILL', ctl.logs.slice(-2000));
    const second = await sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM rollout_target WHERE "rolloutId" = $1 AND "jobId" IS NOT NULL`, [id]);
    assert.equal(second.rows[0]!.n, 2, 'the rolled-back dispatch left no job behind');

    await ctl.start();
    let last: unknown;
    const done = await waitFor('the rollout to succeed after the restarts', async () => {
      const x = await ctl.json<{ status: string; counts: Record<string, number> }>(`/api/v1/rollouts/${id}`);
      last = x;
      return x.status === 'succeeded' ? x : undefined;
    }, 90_000).catch(async (err: Error) => {
      const targets = await sql.query(
        `SELECT t."deviceName", t.state::text, t.reason, j.status::text AS job, j.attempt, j.error FROM rollout_target t LEFT JOIN job j ON j.id = t."jobId" WHERE t."rolloutId" = $1 AND t.state <> 'succeeded' ORDER BY 1`,
        [id],
      );
      const agents = fleet.agents.map((a) => a.state).reduce<Record<string, number>>((m, s) => ({ ...m, [s]: (m[s] ?? 0) + 1 }), {});
      throw new Error(`${err.message}; rollout: ${JSON.stringify(last)}; agents: ${JSON.stringify(agents)}; unfinished targets: ${JSON.stringify(targets.rows)}\n${ctl.logs.slice(-2500)}`);
    });
    assert.equal(done.counts['succeeded'], 24);
    await assertExactlyOnce(id, fleet);
    // The next test shares the database: controllers on it must share one Redis prefix too.
    fleet.stop();
    await ctl.stop();
  });

  it('two replicas driving the same rollouts never send a device its job twice', async () => {
    const prefix = `ibex-e2e-replicas-${Date.now().toString(36)}`;
    const a = new ControllerProcess({ databaseUrl: db.url, redisPrefix: prefix, env: { ...ENV, IBEX_REPLICA_ID: 'replica-a' } });
    const b = new ControllerProcess({ databaseUrl: db.url, redisPrefix: prefix, env: { ...ENV, IBEX_REPLICA_ID: 'replica-b' } });
    ctls.push(a, b);
    await a.start();
    await b.start();
    // Half the devices on each replica: jobs created by either reach them through Redis routing.
    const fleet = new Fleet(await enroll(a, 'dual', 30), (i) => `127.0.0.1:${i % 2 ? b.grpcPort : a.grpcPort}`);
    fleets.push(fleet);
    await fleet.connectAll();
    const r = await b.json<{ id: string }>('/api/v1/rollouts', {
      method: 'POST',
      json: { name: 'dual', target: { kind: 'selector', selector: 'group=dual' }, payload: UPGRADE, strategy: { waves: { kind: 'exponential', first: 2, factor: 2 }, maxInProgress: 5 } },
    });
    let last: unknown;
    const done = await waitFor('the rollout to succeed on two replicas', async () => {
      const x = await a.json<{ status: string; counts: Record<string, number> }>(`/api/v1/rollouts/${r.id}`);
      last = x;
      return x.status === 'succeeded' ? x : undefined;
    }, 90_000).catch(async (err: Error) => {
      const jobs = await sql.query(`SELECT status::text, count(*)::int FROM job WHERE "createdBy" = $1 GROUP BY 1`, [`rollout:${r.id}`]);
      throw new Error(`${err.message}; rollout: ${JSON.stringify(last)}; jobs: ${JSON.stringify(jobs.rows)}\nA: ${a.logs.slice(-1500)}\nB: ${b.logs.slice(-1500)}`);
    });
    assert.equal(done.counts['succeeded'], 30);
    await assertExactlyOnce(r.id, fleet);
  });
});
