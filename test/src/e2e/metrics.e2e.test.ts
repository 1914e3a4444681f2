// /metrics after real traffic: the controller as a process, the agent binary connected, REST
// calls and a job; the exposition is parsed with a Prometheus text-format parser and every
// series the issue asks for is checked for the values that traffic must have produced. The
// Grafana dashboard in deploy/ may only query series that exist.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import parsePrometheus from 'parse-prometheus-text-format';
import { createTestDatabase, type TestDatabase } from '@ibex/migrate';
import { AgentProcess } from './helpers/agent-process.js';
import { ControllerProcess } from './helpers/controller-process.js';
import { waitFor } from './helpers/exec.js';
import { deleteRedisPrefix, testRedisUrl } from '@ibex/test-support';
import { repo } from './helpers/repo.js';

interface Family {
  name: string;
  type: string;
  metrics: Array<{ value?: string; labels?: Record<string, string>; buckets?: Record<string, string>; count?: string; sum?: string }>;
}

const DEVICE = 'metrics-edge';
const REPLICA = 'metrics-replica-1';

describe('/metrics after real traffic', () => {
  let db: TestDatabase;
  let ctl: ControllerProcess;
  let agent: AgentProcess;
  let root: string;

  const scrape = async (): Promise<Map<string, Family>> => {
    const r = await fetch(`${ctl.baseUrl}/metrics`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const text = await r.text();
    const families = new Map((parsePrometheus(text) as Family[]).map((f) => [f.name, f]));
    // The parser folds a histogram's labelled series into one object: parsed again without the
    // histogram TYPE lines, its _bucket/_count/_sum samples come back as plain labelled series.
    const untyped = text.replace(/^# TYPE \S+ histogram$/gm, '');
    // (prom-client writes each label set's buckets, sum and count together, so a name recurs.)
    const parts = new Map<string, Family>();
    for (const f of parsePrometheus(untyped) as Family[]) {
      if (!/_(bucket|count|sum)$/.test(f.name) || families.has(f.name)) continue;
      const seen = parts.get(f.name);
      if (seen) seen.metrics.push(...f.metrics);
      else parts.set(f.name, { ...f, metrics: [...f.metrics] });
    }
    for (const [name, f] of parts) families.set(name, f);
    return families;
  };
  const series = (m: Map<string, Family>, name: string, labels: Record<string, string> = {}) =>
    (m.get(name)?.metrics ?? []).filter((s) => Object.entries(labels).every(([k, v]) => s.labels?.[k] === v));
  const value = (m: Map<string, Family>, name: string, labels: Record<string, string> = {}) => {
    const found = series(m, name, labels);
    assert.equal(found.length, 1, `one ${name}${JSON.stringify(labels)}; got ${JSON.stringify(m.get(name)?.metrics ?? 'no such family')}`);
    return Number(found[0]!.value);
  };

  before(async () => {
    db = await createTestDatabase();
    root = await mkdtemp(join(tmpdir(), 'ibex-metrics-root-'));
    ctl = new ControllerProcess({
      databaseUrl: db.url,
      env: { IBEX_HEARTBEAT_INTERVAL_MS: '500', IBEX_PRESENCE_FLUSH_MS: '200', IBEX_LOG_LEVEL: 'warn', IBEX_REPLICA_ID: REPLICA },
    });
    await ctl.start();
    agent = new AgentProcess([], root);
    const tok = await ctl.json('/api/v1/enrollment-tokens', { method: 'POST', json: { description: 'metrics' } });
    const r = await agent.cli(['enroll', '--controller', `grpc://127.0.0.1:${ctl.grpcPort}`, '--token', tok.token, '--name', DEVICE]);
    assert.equal(r.code, 0, r.stderr);
    agent.start();
    await waitFor('the device online', async () => (await ctl.json(`/api/v1/devices/${DEVICE}`)).status === 'online', 30_000);
  });

  after(async () => {
    await agent?.stop('SIGKILL').catch(() => {});
    await ctl?.stop('SIGKILL').catch(() => {});
    if (ctl) await deleteRedisPrefix(testRedisUrl, ctl.redisPrefix);
    await db?.drop();
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('needs no token and labels every series with the replica', async () => {
    const m = await scrape();
    for (const f of m.values()) {
      if (f.type === 'HISTOGRAM') continue; // its labelled parts are checked as NAME_bucket/_count/_sum
      for (const s of f.metrics) assert.equal(s.labels?.['replica'], REPLICA, `${f.name} ${JSON.stringify(s.labels)}`);
    }
    assert.ok(m.has('ibex_http_request_duration_seconds_count'));
  });

  it('reports agents, heartbeats, delivery passes, jobs, HTTP latency, queue depths and pools after traffic', async () => {
    // Traffic: a job to completion, successful and failing requests.
    const job = await ctl.json(`/api/v1/devices/${DEVICE}/jobs`, { method: 'POST', json: { type: 'facts.collect' } });
    await waitFor('the job to succeed', async () => (await ctl.json(`/api/v1/jobs/${job.id}`)).status === 'succeeded', 30_000);
    for (let i = 0; i < 3; i++) await ctl.json(`/api/v1/devices/${DEVICE}`);
    assert.equal((await ctl.api('/api/v1/devices/no-such-device')).status, 404);
    assert.equal((await ctl.api('/api/v1/devices', { token: null })).status, 401);
    assert.equal((await ctl.api('/no/such/route')).status, 404);
    // Heartbeats every 500 ms, flushed every 200 ms: a few seconds give several stored ones.
    const m = await waitFor('heartbeats stored', async () => {
      const m = await scrape();
      return value(m, 'ibex_presence_rows_written_total') >= 3 ? m : undefined;
    }, 30_000);

    assert.equal(m.get('ibex_connected_agents')?.type, 'GAUGE');
    assert.equal(value(m, 'ibex_connected_agents'), 1);
    assert.equal(m.get('ibex_presence_rows_written_total')?.type, 'COUNTER');
    assert.ok(value(m, 'ibex_presence_flushes_total') >= 1);

    assert.equal(m.get('ibex_delivery_pass_duration_seconds')?.type, 'HISTOGRAM');
    assert.ok(value(m, 'ibex_delivery_pass_duration_seconds_count') >= 2, 'a pass at connect and one for the job');

    assert.equal(value(m, 'ibex_jobs', { type: 'facts.collect', status: 'succeeded' }), 1);
    const job1 = { type: 'facts.collect', status: 'succeeded' };
    assert.equal(value(m, 'ibex_job_duration_seconds_count', job1), 1);
    const took = value(m, 'ibex_job_duration_seconds_sum', job1);
    assert.ok(took > 0 && took < 30, `took ${took} s`);
    assert.equal(value(m, 'ibex_job_duration_seconds_bucket', { ...job1, le: '+Inf' }), 1);

    // Routes are patterns, never raw paths: the device name does not become a label value.
    const route = (r: string, status: string, method = 'GET') => value(m, 'ibex_http_request_duration_seconds_count', { route: r, status, method });
    assert.ok(route('/api/v1/devices/:device', '200') >= 3, JSON.stringify(m.get('ibex_http_request_duration_seconds_count')?.metrics.map((s) => s.labels)));
    assert.equal(route('/api/v1/devices/:device', '404'), 1);
    assert.equal(route('/api/v1/devices', '401'), 1);
    assert.equal(route('/api/v1/devices/:device/jobs', '201', 'POST'), 1);
    assert.ok(route('unmatched', '404') >= 1);
    assert.ok(!JSON.stringify([...m.values()]).includes(DEVICE), 'no series carries a device name');

    for (const state of ['waiting', 'active', 'delayed', 'failed']) assert.ok(series(m, 'ibex_queue_jobs', { queue: 'job-timers', state }).length === 1, `queue state ${state}`);
    assert.equal(value(m, 'ibex_db_pool_connections', { pool: 'prisma', state: 'max' }), 10);
    assert.ok(value(m, 'ibex_db_pool_connections', { pool: 'prisma', state: 'total' }) >= 1);
    assert.equal(value(m, 'ibex_db_pool_connections', { pool: 'presence', state: 'max' }), 1);
    assert.ok(value(m, 'process_resident_memory_bytes') > 0);
  });

  it('the Grafana dashboard in deploy/ queries only series the controller exports', async () => {
    const m = await scrape();
    const dash = JSON.parse(await readFile(join(repo, 'deploy', 'grafana', 'ibex-controller.json'), 'utf8')) as { panels: Array<{ title: string; targets: Array<{ expr: string }> }> };
    const exported = new Set<string>();
    for (const f of m.values()) {
      exported.add(f.name);
      if (f.type === 'HISTOGRAM' || f.type === 'SUMMARY') for (const s of ['_bucket', '_count', '_sum']) exported.add(`${f.name}${s}`);
    }
    const missing: string[] = [];
    for (const p of dash.panels) {
      assert.ok(p.targets.length, `panel ${p.title} has queries`);
      for (const t of p.targets) for (const name of t.expr.match(/\b(ibex|process|nodejs)_[a-z0-9_]+/g) ?? []) if (!exported.has(name)) missing.push(`${p.title}: ${name}`);
    }
    assert.deepEqual(missing, []);
    // The series the issue names each have a panel.
    const queried = dash.panels.flatMap((p) => p.targets.map((t) => t.expr)).join('\n');
    for (const name of ['ibex_connected_agents', 'ibex_presence_rows_written_total', 'ibex_delivery_pass_duration_seconds_bucket', 'ibex_jobs', 'ibex_job_duration_seconds_bucket', 'ibex_http_request_duration_seconds_bucket', 'ibex_queue_jobs', 'ibex_db_pool_connections']) {
      assert.ok(queried.includes(name), `a panel shows ${name}`);
    }
  });
});
