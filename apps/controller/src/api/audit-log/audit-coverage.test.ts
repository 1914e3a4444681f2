import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import type { Prisma } from '../../generated/prisma/client.js';
import { sampleFacts, sampleGenerations } from '../../testing/fake-agent.js';
import { createApiToken, createDevice, expectStatus } from '../../testing/api-fixtures.js';
import { startTestController, type TestController } from '../../testing/test-controller.js';
import { type OpenApiDoc, operations } from '../fuzz/openapi-cases.js';

// apps/controller/dist/api/audit-log -> the repository root (or IBEX_REPO as scripts/test.mjs sets it).
const repo = process.env['IBEX_REPO'] ?? fileURLToPath(new URL('../../../../../', import.meta.url));
const doc = JSON.parse(readFileSync(join(repo, 'docs', 'openapi.json'), 'utf8')) as OpenApiDoc;

interface Call {
  path: string;
  json?: unknown;
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

const RECIPES: Record<string, Recipe> = {
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
  const mutating = operations(doc).filter((o) => o.mutating);

  before(async () => {
    c = await startTestController();
    operator = await createApiToken(c, 'operator');
    adminId = (await c.prisma.apiToken.findFirstOrThrow({ where: { name: { startsWith: 'admin' } }, orderBy: { createdAt: 'asc' } })).id;
  });
  after(async () => {
    await c?.close();
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
      const res = await c.api(call.path, { method: op.method, ...(call.json !== undefined ? { json: call.json } : {}), token: call.as === 'admin' ? c.adminToken : operator.token, headers: { 'x-request-id': requestId } });
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
