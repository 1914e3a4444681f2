import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Clock } from '../common/clock.js';
import { connectedDevice, enrollDevice, filesSpec, setDesiredState } from '../gateway/testing/fixtures.js';
import { FakeAgent, sampleFacts, sampleGenerations } from '../testing/fake-agent.js';
import { appliedOutput, type Assignment, JobResponder, type Reaction } from '../testing/job-responder.js';
import { startTestController, type TestController } from '../testing/test-controller.js';
import { waitFor } from '../testing/wait-for.js';
import type { RolloutPreview, RolloutView } from './rollouts.dto.js';

const ok = (a: Assignment): Reaction => ({ outcome: 'succeed', output: a.type === 'state.apply' ? appliedOutput(1) : a.type === 'generations.rollback' ? sampleGenerations() : undefined });

describe('rollouts (real Postgres, Redis, gRPC streams)', () => {
  let c: TestController;
  const agents: FakeAgent[] = [];
  const agentOf = new Map<string, FakeAgent>();
  const responders: JobResponder[] = [];
  let seq = 0;

  before(async () => {
    c = await startTestController({ env: { IBEX_OFFLINE_AFTER_MS: String(30 * 86_400_000) /* the window test moves the clock days ahead */, IBEX_ROLLOUT_TICK_MS: '100' } });
  });
  after(async () => {
    for (const r of responders) r.stop();
    for (const a of agents) a.close();
    await c?.close();
  });

  /** n connected devices labelled group=<group>, each answering its jobs with `react`. */
  async function fleet(group: string, n: number, react: (a: Assignment, name: string) => Reaction = ok, facts = (name: string) => sampleFacts(name)) {
    const out: { id: string; name: string; responder: JobResponder; agent: FakeAgent }[] = [];
    for (let i = 0; i < n; i++) {
      const name = `${group}-${String(i).padStart(2, '0')}`;
      const d = await enrollDevice(c, name);
      await c.prisma.device.update({ where: { id: d.deviceId }, data: { labels: { group } } });
      const agent = await FakeAgent.connect(c.grpcAddress, d.credential, { facts: facts(name) });
      agents.push(agent);
      agentOf.set(name, agent);
      const responder = new JobResponder(agent, (a) => react(a, name));
      responders.push(responder);
      out.push({ id: d.deviceId, name, responder, agent });
    }
    return out;
  }

  async function create(body: Record<string, unknown>, query = ''): Promise<Response> {
    return c.api(`/api/v1/rollouts${query}`, { method: 'POST', json: { name: `r${++seq}`, ...body } });
  }
  const get = async (id: string): Promise<RolloutView> => (await (await c.api(`/api/v1/rollouts/${id}`)).json()) as RolloutView;
  const until = (id: string, what: string, pred: (r: RolloutView) => boolean, timeoutMs = 20_000) =>
    waitFor(`rollout ${what}`, async () => {
      const r = await get(id);
      return pred(r) ? r : undefined;
    }, { timeoutMs, intervalMs: 50 }).catch(async (err: Error) => {
      throw new Error(`${err.message}\n${await explain(id)}`);
    });
  /** What a timed-out wait saw: the rollout, each target with its job, and whose stream ended. */
  async function explain(id: string): Promise<string> {
    const r = await c.prisma.rollout.findUnique({ where: { id } });
    const targets = await c.prisma.rolloutTarget.findMany({ where: { rolloutId: id }, orderBy: { deviceName: 'asc' } });
    const jobs = await c.prisma.job.findMany({ where: { id: { in: targets.flatMap((t) => (t.jobId ? [t.jobId] : [])) } }, include: { events: { orderBy: { id: 'asc' } } } });
    const lines = [`rollout ${r?.status} (${r?.reason ?? 'no reason'})`];
    for (const t of targets) {
      const j = jobs.find((x) => x.id === t.jobId);
      const ended = agentOf.get(t.deviceName)?.endStatus;
      lines.push(
        `  ${t.deviceName}: ${t.state}${t.reason ? ` (${t.reason})` : ''}` +
          (j ? `; job ${j.status} attempt ${j.attempt}${j.error ? ` (${j.error})` : ''}, events ${j.events.map((e) => `${e.kind}@${e.attempt}`).join(' ') || 'none'}` : '; no job') +
          (ended ? `; stream ended ${ended.code}: ${ended.details}` : ''),
      );
    }
    return lines.join('\n');
  }
  const post = async (id: string, action: string, json: unknown = {}) => c.api(`/api/v1/rollouts/${id}/${action}`, { method: 'POST', json });

  it('canary first, then the waves in order and sizes; each device executes its job once', async () => {
    const devices = await fleet('order', 10);
    const res = await create({
      target: { kind: 'selector', selector: 'group=order' },
      payload: { kind: 'desired_state', spec: filesSpec('hello\n') },
      strategy: { canary: { count: 1 }, waves: { kind: 'fixed', sizes: [{ count: 3 }] } },
    });
    assert.equal(res.status, 201, await res.clone().text());
    const r = (await res.json()) as RolloutView;
    assert.deepEqual(r.waves.map((w) => [w.name, w.total]), [['canary', 1], ['wave-1', 3], ['wave-2', 6]]);
    const done = await until(r.id, 'succeeded', (x) => x.status === 'succeeded');
    assert.deepEqual(done.waves.map((w) => w.counts.succeeded), [1, 3, 6]);

    // The order the devices got their jobs: each wave's jobs only after the wave before finished.
    const targets = await c.prisma.rolloutTarget.findMany({ where: { rolloutId: r.id } });
    const jobs = await c.prisma.job.findMany({ where: { id: { in: targets.map((t) => t.jobId!) } } });
    const jobOf = new Map(jobs.map((j) => [j.deviceId, j]));
    const waveOf = new Map(targets.map((t) => [t.deviceId, t.wave]));
    for (const [w, next] of [[0, 1], [1, 2]] as const) {
      const lastFinished = Math.max(...targets.filter((t) => t.wave === w).map((t) => jobOf.get(t.deviceId)!.finishedAt!.getTime()));
      const firstNext = Math.min(...targets.filter((t) => t.wave === next).map((t) => jobOf.get(t.deviceId)!.createdAt.getTime()));
      assert.ok(firstNext >= lastFinished, `wave ${next} started before wave ${w} finished`);
    }
    assert.deepEqual(devices.filter((d) => waveOf.get(d.id) === 0).map((d) => d.name), ['order-00'], 'the canary is the first device by name');
    for (const d of devices) {
      assert.deepEqual([...d.responder.executed.values()], [1], `${d.name} executed exactly one job once`);
      const dev = await c.prisma.device.findUniqueOrThrow({ where: { id: d.id } });
      assert.equal(dev.desiredRevision, 1, 'the rollout wrote the desired revision');
    }
    const audit = await c.prisma.auditEvent.findMany({ where: { targetType: 'rollout', targetId: r.id }, orderBy: { id: 'asc' } });
    assert.deepEqual([...new Set(audit.map((a) => a.action))], ['rollout.create', 'rollout.running', 'rollout.dispatch', 'rollout.succeeded']);
  });

  it('the error threshold aborts and the changed devices are rolled back to their previous desired state', async () => {
    const devices = await fleet('thresh', 6, (a, name) => (name === 'thresh-01' ? { outcome: 'fail', error: 'disk full' } : ok(a)));
    for (const d of devices) await setDesiredState(c, d.id, filesSpec('before\n'));
    const res = await create({
      target: { kind: 'selector', selector: 'group=thresh' },
      payload: { kind: 'desired_state', spec: filesSpec('after\n') },
      // The canary of two settles before anything else starts: one success, one failure = 50 %.
      strategy: { canary: { count: 2 }, successThresholdPercent: 0, errorThreshold: { percent: 50, minFinished: 2 } },
      autoRollback: true,
    });
    const r = (await res.json()) as RolloutView;
    const done = await until(r.id, 'aborted', (x) => x.status === 'aborted');
    assert.match(done.reason!, /error threshold reached: 1 of 2 finished devices failed \(50%, threshold 50%\)/);
    const targets = new Map((await c.prisma.rolloutTarget.findMany({ where: { rolloutId: r.id } })).map((t) => [t.deviceName, t]));
    assert.equal(targets.get('thresh-00')!.state, 'rolled_back');
    assert.equal(targets.get('thresh-01')!.state, 'failed');
    assert.match(targets.get('thresh-01')!.reason!, /disk full/);
    for (const n of ['thresh-02', 'thresh-03', 'thresh-04', 'thresh-05']) assert.equal(targets.get(n)!.state, 'skipped');
    const d0 = await c.prisma.device.findUniqueOrThrow({ where: { id: devices[0]!.id } });
    const spec = await c.prisma.desiredRevision.findUniqueOrThrow({ where: { deviceId_revision: { deviceId: d0.id, revision: d0.desiredRevision } } });
    assert.equal(d0.desiredRevision, 3, 'revision 1 (before), 2 (the rollout), 3 (the rollback)');
    assert.deepEqual(spec.spec, filesSpec('before\n'));
    assert.equal(done.counts.rolled_back, 1);
    assert.equal((await c.prisma.device.findUniqueOrThrow({ where: { id: devices[2]!.id } })).desiredRevision, 1, 'a skipped device was not touched');
  });

  it('waits for approval after the canary; pause stops new jobs, resume finishes', async () => {
    const devices = await fleet('gate', 5, (a) => ({ ...ok(a), delayMs: 150 }) as Reaction);
    const res = await create({
      target: { kind: 'devices', devices: devices.map((d) => d.name) },
      payload: { kind: 'desired_state', spec: filesSpec('gate\n') },
      strategy: { canary: { count: 1 }, approval: 'after_canary', maxInProgress: 1 },
    });
    const r = (await res.json()) as RolloutView;
    const waiting = await until(r.id, 'waiting for approval', (x) => x.status === 'waiting_approval');
    assert.deepEqual(waiting.waves.map((w) => w.counts.succeeded), [1, 0]);
    assert.match(waiting.reason!, /waits for approval/);
    assert.equal((await post(r.id, 'resume')).status, 409, 'resume needs a paused rollout');
    assert.equal((await post(r.id, 'approve')).status, 200);
    await until(r.id, 'one device of wave-1 done', (x) => x.waves[1]!.counts.succeeded >= 1);
    const paused = (await (await post(r.id, 'pause')).json()) as RolloutView;
    assert.equal(paused.status, 'paused');
    await new Promise((res) => setTimeout(res, 600));
    const still = await get(r.id);
    assert.equal(still.counts.in_progress, 0, 'the job under way finished and nothing new started');
    assert.ok(still.counts.pending >= 1, JSON.stringify(still.counts));
    const pendingBefore = still.counts.pending;
    await new Promise((res) => setTimeout(res, 400));
    assert.equal((await get(r.id)).counts.pending, pendingBefore, 'paused: no device got a job');
    assert.equal((await post(r.id, 'resume')).status, 200);
    const done = await until(r.id, 'succeeded', (x) => x.status === 'succeeded');
    assert.equal(done.counts.succeeded, 5);
    const actions = (await c.prisma.auditEvent.findMany({ where: { targetId: r.id }, orderBy: { id: 'asc' } })).map((a) => a.action);
    for (const a of ['rollout.approve', 'rollout.pause', 'rollout.resume']) assert.ok(actions.includes(a), `${a} audited: ${actions.join(', ')}`);
  });

  it('an offline device gets its part when it comes back; retry sends a failed device a new job', async () => {
    let failOnce = true;
    const online = await fleet('late', 2, (a, name) => {
      if (name === 'late-01' && failOnce) {
        failOnce = false;
        return { outcome: 'fail', error: 'transient' };
      }
      return ok(a);
    });
    const away = await enrollDevice(c, 'late-99');
    await c.prisma.device.update({ where: { id: away.deviceId }, data: { labels: { group: 'late' } } });
    const res = await create({ target: { kind: 'selector', selector: 'group=late' }, payload: { kind: 'desired_state', spec: filesSpec('late\n') }, strategy: { successThresholdPercent: 30 } });
    const r = (await res.json()) as RolloutView;
    const waiting = await until(r.id, 'waiting for the offline device', (x) => x.counts.pending === 1 && x.counts.in_progress === 0);
    assert.equal(waiting.status, 'running');
    assert.equal(await c.prisma.job.count({ where: { deviceId: away.deviceId } }), 0, 'no job queued for an offline device');
    const agent = await FakeAgent.connect(c.grpcAddress, away.credential, { facts: sampleFacts('late-99') });
    agents.push(agent);
    responders.push(new JobResponder(agent, ok));
    await until(r.id, 'the late device succeeded', (x) => x.counts.succeeded === 2 && x.counts.failed === 1);
    const failed = (await (await c.api(`/api/v1/rollouts/${r.id}/devices?state=failed`)).json()) as { items: { deviceName: string; reason: string }[] };
    assert.deepEqual(failed.items.map((t) => [t.deviceName, t.reason]), [['late-01', 'transient']]);
    assert.equal((await post(r.id, 'retry')).status, 200);
    const done = await until(r.id, 'succeeded after retry', (x) => x.status === 'succeeded');
    assert.equal(done.counts.succeeded, 3);
    const t = await c.prisma.rolloutTarget.findFirstOrThrow({ where: { rolloutId: r.id, deviceName: 'late-01' } });
    assert.equal(t.attempts, 2);
    assert.equal(online[1]!.responder.executed.size, 2, 'two jobs, each executed once');
    assert.equal((await post(r.id, 'retry')).status, 409, 'nothing failed any more');
  });

  it('a fleet generation rollback: devices without that generation are skipped with the reason', async () => {
    const inv = sampleGenerations();
    const noG1 = { ...inv, generations: inv.generations.filter((g) => g.id !== 'g1') };
    const facts = (name: string) => ({ ...sampleFacts(name), generationsJson: name === 'genrb-00' ? JSON.stringify(inv) : name === 'genrb-01' ? JSON.stringify(noG1) : '' });
    await fleet('genrb', 3, ok, facts);
    const res = await create({ target: { kind: 'selector', selector: 'group=genrb' }, payload: { kind: 'generation_rollback', toGeneration: 'g1' } });
    const r = (await res.json()) as RolloutView;
    const done = await until(r.id, 'succeeded', (x) => x.status === 'succeeded');
    assert.deepEqual([done.counts.succeeded, done.counts.skipped], [1, 2]);
    const rows = await c.prisma.rolloutTarget.findMany({ where: { rolloutId: r.id }, orderBy: { deviceName: 'asc' } });
    assert.deepEqual(rows.map((t) => t.state), ['succeeded', 'skipped', 'skipped']);
    assert.match(rows[1]!.reason!, /no longer holds generation "g1"/);
    assert.match(rows[2]!.reason!, /reports no generations/);
    const job = await c.prisma.job.findUniqueOrThrow({ where: { id: rows[0]!.jobId! } });
    assert.equal(job.type, 'generations.rollback');
    assert.equal((job.params as { to: string }).to, 'g1');
  });

  it('a generation upgrade from an artifact by name@version: resolved when stored, its jobs carry the sha256, the artifact cannot be deleted while the rollout runs', async () => {
    const bytes = Buffer.from('a generation tarball, for the rollout test\n');
    const up = await c.api('/api/v1/artifacts?name=rollout-img&version=1&kind=generation-tarball', { method: 'POST', body: bytes, headers: { 'content-type': 'application/octet-stream' } });
    assert.equal(up.status, 201, await up.clone().text());
    const art = (await up.json()) as { id: string; sha256: string; size: number };
    const bad = await create({ target: { kind: 'all' }, payload: { kind: 'generation_upgrade', upgrade: { from: { kind: 'tarball', artifact: 'rollout-img@9' } } } });
    assert.equal(bad.status, 400);
    assert.match(await bad.text(), /payload\.upgrade\.from\.artifact/);
    // Devices that hold their jobs (never answer), so the rollout is still running at the delete.
    await fleet('artup', 2, () => ({ outcome: 'ignore' }));
    const res = await create({ target: { kind: 'selector', selector: 'group=artup' }, payload: { kind: 'generation_upgrade', upgrade: { from: { kind: 'tarball', artifact: 'rollout-img@1' } } } });
    assert.equal(res.status, 201, await res.clone().text());
    const r = (await res.json()) as RolloutView;
    const rows = await waitFor('both jobs dispatched', async () => {
      const t = await c.prisma.rolloutTarget.findMany({ where: { rolloutId: r.id } });
      return t.length === 2 && t.every((x) => x.jobId) ? t : undefined;
    });
    for (const t of rows) {
      const job = await c.prisma.job.findUniqueOrThrow({ where: { id: t.jobId! } });
      const from = (job.params as { from: { artifact: { id: string; sha256: string; size: number } } }).from;
      assert.deepEqual([from.artifact.id, from.artifact.sha256, from.artifact.size], [art.id, art.sha256, bytes.length]);
    }
    const del = await c.api(`/api/v1/artifacts/${art.id}`, { method: 'DELETE' });
    assert.equal(del.status, 409);
    assert.match(((await del.json()) as { error: { message: string } }).error.message, new RegExp(`rollout ${r.id} \\("${r.name}", running\\)`), 'the 409 names the rollout');
    assert.ok((await post(r.id, 'abort', { rollback: false })).status < 300);
  });

  it('dryRun returns the waves and each online device\'s plan, and changes nothing', async () => {
    const devices = await fleet('dry', 3, (a) =>
      a.type === 'state.plan'
        ? { outcome: 'succeed', output: { revision: 0, proposed: true, sections: [{ section: 'files', state: 'pending', steps: [{ action: 'write', text: 'write /etc/motd' }] }] } }
        : ok(a),
    );
    const before = { rollouts: await c.prisma.rollout.count(), jobs: await c.prisma.job.count({ where: { type: { not: 'state.plan' } } }) };
    const res = await create(
      { target: { kind: 'selector', selector: 'group=dry' }, payload: { kind: 'desired_state', spec: filesSpec('dry\n') }, strategy: { canary: { count: 1 }, waves: { kind: 'equal', count: 2 } } },
      '?dryRun=true&wait=10',
    );
    assert.equal(res.status, 201, await res.clone().text());
    const p = (await res.json()) as RolloutPreview;
    assert.equal(p.dryRun, true);
    assert.deepEqual(p.waves.map((w) => w.devices.map((d) => d.deviceName)), [['dry-00'], ['dry-01'], ['dry-02']]);
    for (const d of p.waves.flatMap((w) => w.devices)) {
      assert.equal(d.outcome, 'planned');
      assert.deepEqual(d.changes, [{ section: 'files', state: 'pending', steps: ['write /etc/motd'], error: null }]);
    }
    assert.equal(await c.prisma.rollout.count(), before.rollouts, 'no rollout stored');
    assert.equal(await c.prisma.job.count({ where: { type: { not: 'state.plan' } } }), before.jobs, 'only plan jobs');
    for (const d of devices) assert.equal((await c.prisma.device.findUniqueOrThrow({ where: { id: d.id } })).desiredRevision, 0, 'no desired state written');
  });

  it('bad input is refused naming the field, and stores nothing', async () => {
    const before = await c.prisma.rollout.count();
    const cases: [Record<string, unknown>, string][] = [
      [{ target: { kind: 'all' }, payload: { kind: 'generation_rollback' } }, 'payload.toDate'],
      [{ target: { kind: 'devices', devices: ['no-such-device'] }, payload: { kind: 'generation_rollback', toGeneration: 'g1' } }, 'target.devices.0'],
      [{ target: { kind: 'selector', selector: 'a=b=c' }, payload: { kind: 'generation_rollback', toGeneration: 'g1' } }, 'target.selector'],
      [{ target: { kind: 'all' }, payload: { kind: 'generation_rollback', toGeneration: 'g1' }, start: { kind: 'window', cron: '0 2 * * 0', timeZone: 'Mars/Olympus', durationMinutes: 60 } }, 'start.timeZone'],
      [{ target: { kind: 'all' }, payload: { kind: 'generation_rollback', toGeneration: 'g1' }, strategy: { errorThreshold: { percent: 0 } } }, 'strategy.errorThreshold.percent'],
      [{ target: { kind: 'all' }, payload: { kind: 'generation_upgrade', upgrade: { from: { kind: 'tarball', url: 'http://x/y.tar' } } } }, 'payload.upgrade.from.sha256'],
    ];
    for (const [body, field] of cases) {
      const res = await create(body);
      const text = await res.text();
      assert.equal(res.status, 400, text);
      assert.ok((JSON.parse(text) as { error: { issues?: { path: string }[] } }).error.issues?.some((i) => i.path === field), `${field} named in ${text}`);
    }
    assert.equal(await c.prisma.rollout.count(), before);
  });

  it('a schedule starts rollouts from BullMQ\'s job scheduler; an occurrence handed out twice starts one; pause and delete stop it', async () => {
    await fleet('sched', 2);
    const body = {
      name: 'every-second',
      cron: '* * * * * *', // seconds field: an occurrence every second, so the test sees BullMQ fire
      timeZone: 'Europe/Berlin',
      rollout: { name: 'sched', target: { kind: 'selector', selector: 'group=sched' }, payload: { kind: 'desired_state', spec: filesSpec('sched\n') } },
    };
    const res = await c.api('/api/v1/schedules', { method: 'POST', json: body });
    assert.equal(res.status, 201, await res.clone().text());
    const s = (await res.json()) as { id: string; nextRunAt: string };
    assert.ok(s.nextRunAt);
    const started = await waitFor('a rollout started by the schedule', async () => {
      const n = await c.prisma.rollout.findMany({ where: { scheduleId: s.id } });
      return n.length ? n : undefined;
    }, { timeoutMs: 15_000, intervalMs: 100 });
    assert.match(started[0]!.name, /^sched 20\d\d-/);
    assert.equal((await c.api(`/api/v1/schedules/${s.id}/pause`, { method: 'POST' })).status, 200);
    await new Promise((r) => setTimeout(r, 1500)); // an occurrence already in a worker may still finish
    const count = await c.prisma.rollout.count({ where: { scheduleId: s.id } });
    await new Promise((r) => setTimeout(r, 2500));
    assert.equal(await c.prisma.rollout.count({ where: { scheduleId: s.id } }), count, 'paused: no new rollout');

    // The same occurrence twice (BullMQ's at-least-once after a crash): one rollout.
    const { SchedulesService } = await import('./schedules.service.js');
    const svc = c.app.get(SchedulesService);
    await c.api(`/api/v1/schedules/${s.id}/resume`, { method: 'POST' });
    await c.api(`/api/v1/schedules/${s.id}/pause`, { method: 'POST' });
    await c.prisma.rolloutSchedule.update({ where: { id: s.id }, data: { paused: false } });
    const first = await svc.fire(s.id, 'repeat:test:1');
    const again = await svc.fire(s.id, 'repeat:test:1');
    assert.ok(first);
    assert.equal(again, null);
    await c.prisma.rolloutSchedule.update({ where: { id: s.id }, data: { paused: true } });

    const bad = await c.api('/api/v1/schedules', { method: 'POST', json: { ...body, name: 'bad', cron: 'sundays' } });
    assert.equal(bad.status, 400);
    assert.match(await bad.text(), /"path":"cron"/);
    assert.equal((await c.api(`/api/v1/schedules/${s.id}`, { method: 'DELETE' })).status, 204);
    assert.equal((await c.api(`/api/v1/schedules/${s.id}`)).status, 404);
    assert.ok(await c.prisma.rollout.count({ where: { scheduleId: null, name: { startsWith: 'sched ' } } }) >= 1, 'its rollouts stay');
  });

  it('a maintenance window (controllable clock): no jobs before it opens, jobs inside it, none after it closed', async () => {
    await fleet('win', 3, (a) => ({ ...ok(a), delayMs: 50 }) as Reaction);
    const clock = c.app.get(Clock);
    const real = clock.now.bind(clock);
    let fake = new Date('2026-12-06T00:30:00Z'); // Sunday, 01:30 in Berlin
    clock.now = () => fake;
    try {
      // Only the first device's job finishes inside the window: one at a time, and the test
      // moves the clock past the window once one device is done.
      const res = await create({
        target: { kind: 'selector', selector: 'group=win' },
        payload: { kind: 'desired_state', spec: filesSpec('win\n') },
        strategy: { maxInProgress: 1 },
        start: { kind: 'window', cron: '0 2 * * 0', timeZone: 'Europe/Berlin', durationMinutes: 60 },
      });
      const r = (await res.json()) as RolloutView;
      await new Promise((res) => setTimeout(res, 400));
      let now = await get(r.id);
      assert.equal(now.status, 'scheduled');
      assert.match(now.reason!, /waiting for the maintenance window \(opens 2026-12-06T01:00:00.000Z\)/);
      assert.equal(now.counts.in_progress + now.counts.succeeded, 0);
      fake = new Date('2026-12-06T01:00:00Z');
      await until(r.id, 'first device done in the window', (x) => x.counts.succeeded >= 1);
      fake = new Date('2026-12-06T02:00:00Z');
      await until(r.id, 'nothing under way', (x) => x.counts.in_progress === 0);
      const stopped = (await get(r.id)).counts.succeeded;
      await new Promise((res) => setTimeout(res, 500));
      now = await get(r.id);
      assert.equal(now.counts.succeeded, stopped, 'no device got a job after the window closed');
      assert.ok(now.counts.pending >= 1);
      assert.match(now.reason!, /outside the maintenance window \(opens again 2026-12-13T01:00:00.000Z\)/);
      fake = new Date('2026-12-13T01:00:00Z');
      const done = await until(r.id, 'finished in the next window', (x) => x.status === 'succeeded');
      assert.equal(done.counts.succeeded, 3);
    } finally {
      clock.now = real;
    }
  });
});
