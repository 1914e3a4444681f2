import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import type { Prisma } from '../../generated/prisma/client.js';
import { enrollDevice, filesSpec, keyAndCsr, createEnrollmentToken } from '../../gateway/testing/fixtures.js';
import type { RolloutView } from '../../rollouts/rollouts.dto.js';
import { enrollAgent, FakeAgent, sampleFacts, sampleGenerations } from '../../testing/fake-agent.js';
import { appliedOutput, JobResponder, type Reaction } from '../../testing/job-responder.js';
import { waitFor } from '../../testing/wait-for.js';
import { createApiToken, createDevice, expectStatus } from '../../testing/api-fixtures.js';
import { startTestController, type TestController } from '../../testing/test-controller.js';
import { type OpenApiDoc, operations } from '../fuzz/openapi-cases.js';

// apps/controller/dist/api/audit-log -> the repository root (or IBEX_REPO as scripts/test.mjs sets it).
const repo = process.env['IBEX_REPO'] ?? fileURLToPath(new URL('../../../../../', import.meta.url));
const doc = JSON.parse(readFileSync(join(repo, 'docs', 'openapi.json'), 'utf8')) as OpenApiDoc;

interface Call {
  path: string;
  json?: unknown;
  /** A raw body (an artifact upload) instead of JSON. */
  raw?: { body: Buffer; contentType: string };
  /** The caller (admin for API tokens, an operator otherwise). */
  as: 'admin' | 'operator';
  /** What the audit entry must name as its target. */
  target: { type: string; id: string };
}

/** One successful call per mutating operation, prepared on fresh rows so each can succeed. */
type Recipe = (c: TestController, n: string) => Promise<Call>;

const factsWithGenerations = (): Prisma.InputJsonValue => {
  const { generationsJson: _, ...facts } = sampleFacts('audit');
  return JSON.parse(JSON.stringify({ ...facts, generations: sampleGenerations() })) as Prisma.InputJsonValue;
};

/** The job the call creates, on a fresh device. */
const createdJobOn = async (c: TestController, name: string) => (await createDevice(c, name), { type: 'job', id: '(created)' });

const deviceTarget = async (c: TestController, name: string, extra: Parameters<typeof createDevice>[2] = {}) => ({ type: 'device', id: (await createDevice(c, name, extra)).id });

/** Agents and responders the recipes connect; closed after the suite. */
const agents: { agent: FakeAgent; responder: JobResponder }[] = [];

/** An enrolled, connected device answering every job with `outcome`. */
async function answeringDevice(c: TestController, name: string, outcome: 'succeed' | 'fail'): Promise<void> {
  const d = await enrollDevice(c, name);
  const agent = await FakeAgent.connect(c.grpcAddress, d.credential, { facts: sampleFacts(name) });
  const responder = new JobResponder(agent, (a): Reaction => (outcome === 'fail' ? { outcome: 'fail', error: 'refused by the test' } : { outcome: 'succeed', output: a.type === 'state.apply' ? appliedOutput(1) : undefined }));
  agents.push({ agent, responder });
}

/** A stored desired-state rollout of the named (existing) devices. */
async function createRollout(c: TestController, name: string, devices: string[], strategy: Record<string, unknown> = {}): Promise<RolloutView> {
  return expectStatus<RolloutView>(await c.api('/api/v1/rollouts', { method: 'POST', json: { name, target: { kind: 'devices', devices }, payload: { kind: 'desired_state', spec: filesSpec(`${name}\n`) }, strategy } }), 201);
}

/** A running rollout of a device that never answers (offline: it waits for it). */
async function waitingRollout(c: TestController, name: string): Promise<RolloutView> {
  await createDevice(c, name);
  return createRollout(c, name, [name]);
}

const untilRollout = (c: TestController, id: string, what: string, pred: (r: RolloutView) => boolean) =>
  waitFor(`rollout ${what}`, async () => {
    const r = await expectStatus<RolloutView>(await c.api(`/api/v1/rollouts/${id}`), 200);
    return pred(r) ? r : undefined;
  }, { timeoutMs: 20_000, intervalMs: 50 });

const rolloutCall = (r: RolloutView, action: string, json: unknown = {}): Call => ({ path: `/api/v1/rollouts/${r.id}/${action}`, json, as: 'operator', target: { type: 'rollout', id: r.id } });

const scheduleBody = (name: string) => ({ name, cron: '0 3 1 1 *' /* once a year: it does not fire during the test */, rollout: { name, target: { kind: 'devices', devices: [name] }, payload: { kind: 'desired_state', spec: filesSpec(`${name}\n`) } } });

async function createSchedule(c: TestController, name: string): Promise<{ id: string }> {
  await createDevice(c, name);
  return expectStatus(await c.api('/api/v1/schedules', { method: 'POST', json: scheduleBody(name) }), 201);
}

const uploadQuery = (name: string) => `name=${name}&version=1&kind=file`;

const RECIPES: Record<string, Recipe> = {
  ArtifactsController_upload: async (_c, n) => ({ path: `/api/v1/artifacts?${uploadQuery(n)}`, raw: { body: Buffer.from(`bytes of ${n}\n`), contentType: 'application/octet-stream' }, as: 'operator', target: { type: 'artifact', id: '(created)' } }),
  ArtifactsController_delete: async (c, n) => {
    const a = await expectStatus(await c.api(`/api/v1/artifacts?${uploadQuery(n)}`, { method: 'POST', body: Buffer.from('to delete'), headers: { 'content-type': 'application/octet-stream' } }), 201);
    return { path: `/api/v1/artifacts/${a.id}`, as: 'operator', target: { type: 'artifact', id: a.id } };
  },
  DeviceIdentityController_revokeCredential: async (c, n) => {
    const d = await enrollDevice(c, n);
    const cred = await c.prisma.deviceCredential.findFirstOrThrow({ where: { deviceId: d.deviceId } });
    return { path: `/api/v1/devices/${n}/credentials/${cred.id}/revoke`, as: 'operator', target: { type: 'device', id: d.deviceId } };
  },
  DeviceIdentityController_revokeCertificate: async (c, n) => {
    const d = await enrollAgent(c.grpcAddress, { enrollmentToken: await createEnrollmentToken(c), name: n, csrPem: (await keyAndCsr(n)).csrPem });
    const cert = await c.prisma.deviceCertificate.findFirstOrThrow({ where: { deviceId: d.deviceId } });
    return { path: `/api/v1/devices/${n}/certificates/${cert.id}/revoke`, as: 'operator', target: { type: 'device', id: d.deviceId } };
  },
  // A `{ path }` base is refused by the runner (IBEX_IMAGE_SOURCE_DIR unset): the build fails at once, in the background.
  ImageBuildsController_create: async (_c, n) => ({ path: '/api/v1/image-builds', json: { spec: { name: n, base: { path: '/rootfs' }, hostname: 'audited' } }, as: 'operator', target: { type: 'image_build', id: '(created)' } }),
  RolloutsController_create: async (c, n) => (await createDevice(c, n), { path: '/api/v1/rollouts', json: { name: n, target: { kind: 'devices', devices: [n] }, payload: { kind: 'desired_state', spec: filesSpec('x\n') } }, as: 'operator', target: { type: 'rollout', id: '(created)' } }),
  RolloutsController_pause: async (c, n) => rolloutCall(await waitingRollout(c, n), 'pause'),
  RolloutsController_abort: async (c, n) => rolloutCall(await waitingRollout(c, n), 'abort', { rollback: false }),
  RolloutsController_resume: async (c, n) => {
    const r = await waitingRollout(c, n);
    await expectStatus(await c.api(`/api/v1/rollouts/${r.id}/pause`, { method: 'POST', json: {} }), 200);
    return rolloutCall(r, 'resume');
  },
  RolloutsController_approve: async (c, n) => {
    await answeringDevice(c, `${n}-a`, 'succeed');
    await answeringDevice(c, `${n}-b`, 'succeed');
    const r = await createRollout(c, n, [`${n}-a`, `${n}-b`], { canary: { count: 1 }, approval: 'after_canary' });
    return rolloutCall(await untilRollout(c, r.id, 'waiting for approval', (x) => x.status === 'waiting_approval'), 'approve');
  },
  RolloutsController_retry: async (c, n) => {
    await answeringDevice(c, n, 'fail');
    const r = await createRollout(c, n, [n]);
    return rolloutCall(await untilRollout(c, r.id, 'a failed device', (x) => x.counts.failed === 1 && x.counts.in_progress === 0), 'retry');
  },
  // The dry run of a stored rollout sends each online device a state.plan job (that is what it
  // changes, and what it audits); wait=0 returns without waiting for the plans.
  RolloutsController_preview: async (c, n) => {
    await createDevice(c, n, { online: true });
    const r = await createRollout(c, n, [n]);
    return { ...rolloutCall(r, 'preview?wait=0'), json: undefined };
  },
  SchedulesController_create: async (c, n) => (await createDevice(c, n), { path: '/api/v1/schedules', json: scheduleBody(n), as: 'operator', target: { type: 'rollout_schedule', id: '(created)' } }),
  SchedulesController_pause: async (c, n) => {
    const s = await createSchedule(c, n);
    return { path: `/api/v1/schedules/${s.id}/pause`, as: 'operator', target: { type: 'rollout_schedule', id: s.id } };
  },
  SchedulesController_resume: async (c, n) => {
    const s = await createSchedule(c, n);
    await expectStatus(await c.api(`/api/v1/schedules/${s.id}/pause`, { method: 'POST' }), 200);
    return { path: `/api/v1/schedules/${s.id}/resume`, as: 'operator', target: { type: 'rollout_schedule', id: s.id } };
  },
  SchedulesController_delete: async (c, n) => {
    const s = await createSchedule(c, n);
    return { path: `/api/v1/schedules/${s.id}`, as: 'operator', target: { type: 'rollout_schedule', id: s.id } };
  },
  ApiTokensController_create: async () => ({ path: '/api/v1/api-tokens', json: { name: 'audited', role: 'viewer' }, as: 'admin', target: { type: 'api_token', id: '(created)' } }),
  ApiTokensController_revoke: async (c) => {
    const t = await createApiToken(c, 'viewer');
    return { path: `/api/v1/api-tokens/${t.id}`, as: 'admin', target: { type: 'api_token', id: t.id } };
  },
  DevicesController_remove: async (c, n) => ({ path: `/api/v1/devices/${n}`, as: 'operator', target: await deviceTarget(c, n) }),
  DevicesController_patch: async (c, n) => ({ path: `/api/v1/devices/${n}`, json: { labels: { a: 'b' } }, as: 'operator', target: await deviceTarget(c, n) }),
  DesiredStateController_put: async (c, n) => ({ path: `/api/v1/devices/${n}/desired-state`, json: { spec: {} }, as: 'operator', target: await deviceTarget(c, n) }),
  GenerationsController_rollback: async (c, n) => ({ path: `/api/v1/devices/${n}/generations/rollback`, json: { to: 'g1' }, as: 'operator', target: await deviceTarget(c, n, { data: { facts: factsWithGenerations() } }) }),
  JobsController_create: async (c, n) => ({ path: `/api/v1/devices/${n}/jobs`, json: { type: 'facts.collect' }, as: 'operator', target: await createdJobOn(c, n) }),
  PlanController_plan: async (c, n) => ({ path: `/api/v1/devices/${n}/plan`, json: { spec: {} }, as: 'operator', target: await createdJobOn(c, n) }),
  DevicesController_revoke: async (c, n) => ({ path: `/api/v1/devices/${n}/revoke`, as: 'operator', target: await deviceTarget(c, n) }),
  EnrollmentTokensController_create: async () => ({ path: '/api/v1/enrollment-tokens', json: {}, as: 'operator', target: { type: 'enrollment_token', id: '(created)' } }),
  EnrollmentTokensController_revoke: async (c) => {
    const t = await expectStatus(await c.api('/api/v1/enrollment-tokens', { method: 'POST', json: {} }), 201);
    return { path: `/api/v1/enrollment-tokens/${t.id}`, as: 'operator', target: { type: 'enrollment_token', id: t.id } };
  },
  JobsController_cancel: async (c, n) => {
    await createDevice(c, n);
    const j = await expectStatus(await c.api(`/api/v1/devices/${n}/jobs`, { method: 'POST', json: { type: 'facts.collect' } }), 201);
    return { path: `/api/v1/jobs/${j.id}/cancel`, as: 'operator', target: { type: 'job', id: j.id } };
  },
};

interface AuditEventView {
  actor: { type: string; id: string | null; name: string | null };
  action: string;
  target: { type: string; id: string } | null;
  requestId: string | null;
}

// Every mutating call lands in the audit log (ARCHITECTURE.md): walk every POST/PUT/PATCH/DELETE
// of docs/openapi.json, make it succeed, and find the entry naming who did it to what.
describe('audit log coverage of every mutating operation in docs/openapi.json', () => {
  let c: TestController;
  let operator: { id: string; token: string };
  let adminId: string;
  let imageDir: string;
  const mutating = operations(doc).filter((o) => o.mutating);

  before(async () => {
    imageDir = await mkdtemp(join(tmpdir(), 'ibex-audit-images-'));
    c = await startTestController({ env: { IBEX_IMAGE_DIR: imageDir, IBEX_ROLLOUT_TICK_MS: '100' } });
    operator = await createApiToken(c, 'operator');
    adminId = (await c.prisma.apiToken.findFirstOrThrow({ where: { name: { startsWith: 'admin' } }, orderBy: { createdAt: 'asc' } })).id;
  });
  after(async () => {
    for (const a of agents) (a.responder.stop(), a.agent.close());
    await c?.close();
    if (imageDir) await rm(imageDir, { recursive: true, force: true });
  });

  it('has a recipe for every mutating operation (a new one must be added here)', () => {
    assert.ok(mutating.length >= 12, `read ${mutating.length} mutating operations`);
    for (const op of mutating) assert.ok(RECIPES[op.id], `${op.method} ${op.template} (${op.id}): add a recipe that makes it succeed`);
  });

  for (const op of mutating) {
    it(`${op.method} ${op.template} writes an audit entry naming the actor and the target`, async () => {
      const recipe = RECIPES[op.id];
      assert.ok(recipe, `no recipe for ${op.id}`);
      const call = await recipe(c, `audit-${op.id.toLowerCase().replace(/[^a-z]/g, '')}`.slice(0, 60));
      const requestId = `cover-${op.id}`;
      const body = call.raw ? { body: call.raw.body } : call.json !== undefined ? { json: call.json } : {};
      const headers = { 'x-request-id': requestId, ...(call.raw ? { 'content-type': call.raw.contentType } : {}) };
      const res = await c.api(call.path, { method: op.method, ...body, token: call.as === 'admin' ? c.adminToken : operator.token, headers });
      const text = await res.text();
      assert.ok(res.status >= 200 && res.status < 300, `${op.method} ${call.path} must succeed for this test: ${res.status} ${text}`);
      const created = text ? (JSON.parse(text) as { id?: string }) : {};
      const target = call.target.id === '(created)' ? { ...call.target, id: created.id! } : call.target;
      const page = await expectStatus<{ items: AuditEventView[] }>(await c.api('/api/v1/audit?limit=1000'), 200);
      const events = page.items.filter((e) => e.requestId === requestId);
      assert.ok(events.length > 0, `${op.method} ${op.template}: no audit entry for request ${requestId}`);
      const actorId = call.as === 'admin' ? adminId : operator.id;
      for (const e of events) {
        assert.equal(e.actor.type, 'api_token', `${e.action}: actor type`);
        assert.equal(e.actor.id, actorId, `${e.action}: names the caller`);
        assert.ok(e.actor.name, `${e.action}: the caller's name`);
        assert.ok(e.target?.type && e.target.id, `${e.action}: names a target: ${JSON.stringify(e)}`);
      }
      assert.ok(
        events.some((e) => e.target?.type === target.type && e.target.id === target.id),
        `${op.method} ${op.template}: an entry names ${target.type} ${target.id}: ${JSON.stringify(events)}`,
      );
    });
  }
});
