import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createApiToken, createDevice, expectError, expectStatus } from '../../testing/api-fixtures.js';
import { startTestController, type TestController } from '../../testing/test-controller.js';

interface AuditEventView {
  id: string;
  at: string;
  actor: { type: string; id: string | null; name: string | null };
  action: string;
  target: { type: string; id: string } | null;
  data: Record<string, unknown>;
  requestId: string | null;
}

describe('audit log', () => {
  let c: TestController;
  let operator: { id: string; token: string };
  before(async () => {
    c = await startTestController();
    operator = await createApiToken(c, 'operator');
  });
  after(async () => {
    await c?.close();
  });

  /** Makes a call as the operator and returns the audit events it caused (through the API). */
  async function audited(path: string, init: { method: string; json?: unknown }, status: number): Promise<{ body: any; events: AuditEventView[] }> {
    const requestId = `audit-${Math.random().toString(36).slice(2)}`;
    const res = await c.api(path, { ...init, token: operator.token, headers: { 'x-request-id': requestId } });
    const body = await expectStatus(res, status);
    const all: { items: AuditEventView[] } = await expectStatus(await c.api('/api/v1/audit?limit=1000'), 200);
    return { body, events: all.items.filter((e) => e.requestId === requestId) };
  }

  function assertOne(events: AuditEventView[], action: string, target: { type: string; id: string }): AuditEventView {
    assert.equal(events.length, 1, `one audit event for ${action}: ${JSON.stringify(events)}`);
    const [e] = events;
    assert.equal(e!.action, action);
    assert.equal(e!.actor.type, 'api_token');
    assert.equal(e!.actor.id, operator.id);
    assert.match(e!.actor.name ?? '', /^operator-/);
    assert.deepEqual(e!.target, target);
    return e!;
  }

  it('records every mutating call with its actor, target and request id', async () => {
    const device = await createDevice(c, 'audit-dev', { online: true });
    const dev = { type: 'device', id: device.id };

    const enroll = await audited('/api/v1/enrollment-tokens', { method: 'POST', json: { description: 'x' } }, 201);
    assertOne(enroll.events, 'enrollment_token.create', { type: 'enrollment_token', id: enroll.body.id });
    const unenroll = await audited(`/api/v1/enrollment-tokens/${enroll.body.id}`, { method: 'DELETE' }, 204);
    assertOne(unenroll.events, 'enrollment_token.revoke', { type: 'enrollment_token', id: enroll.body.id });

    assertOne((await audited('/api/v1/devices/audit-dev', { method: 'PATCH', json: { labels: { a: 'b' } } }, 200)).events, 'device.update', dev);
    const ds = assertOne((await audited('/api/v1/devices/audit-dev/desired-state', { method: 'PUT', json: { spec: {}, message: 'empty' } }, 200)).events, 'device.desired_state.set', dev);
    assert.equal(ds.data['revision'], 1);

    const job = await audited('/api/v1/devices/audit-dev/jobs', { method: 'POST', json: { type: 'facts.collect' } }, 201);
    assertOne(job.events, 'job.create', { type: 'job', id: job.body.id });
    assertOne((await audited(`/api/v1/jobs/${job.body.id}/cancel`, { method: 'POST' }, 200)).events, 'job.cancel', { type: 'job', id: job.body.id });

    assertOne((await audited('/api/v1/devices/audit-dev/revoke', { method: 'POST' }, 200)).events, 'device.revoke', dev);
    const del = assertOne((await audited('/api/v1/devices/audit-dev', { method: 'DELETE' }, 204)).events, 'device.delete', dev);
    assert.equal(del.data['name'], 'audit-dev');
  });

  it('records API token management by the admin', async () => {
    const created = await expectStatus(await c.api('/api/v1/api-tokens', { method: 'POST', json: { name: 'audited', role: 'viewer' }, headers: { 'x-request-id': 'tok-create' } }), 201);
    await expectStatus(await c.api(`/api/v1/api-tokens/${created.id}`, { method: 'DELETE', headers: { 'x-request-id': 'tok-revoke' } }), 204);
    const page = await expectStatus(await c.api(`/api/v1/audit?targetId=${created.id}`), 200);
    assert.deepEqual(
      page.items.map((e: AuditEventView) => [e.action, e.requestId, e.actor.type]),
      [
        ['api_token.revoke', 'tok-revoke', 'api_token'],
        ['api_token.create', 'tok-create', 'api_token'],
      ],
    );
    assert.ok(!JSON.stringify(page).includes(created.token), 'no secret in the audit log');
  });

  it('writes no audit event for a refused or failed call', async () => {
    const before = await c.prisma.auditEvent.count();
    await expectError(await c.api('/api/v1/devices/ghost/revoke', { method: 'POST', token: operator.token }), 404, 'not_found');
    await expectError(await c.api('/api/v1/enrollment-tokens', { method: 'POST', json: { maxUses: -1 }, token: operator.token }), 400, 'validation_failed');
    assert.equal(await c.prisma.auditEvent.count(), before);
  });

  it('filters by action (exact or prefix), target, actor and time, newest first, paginated', async () => {
    await createDevice(c, 'audit-f1');
    await createDevice(c, 'audit-f2');
    for (const name of ['audit-f1', 'audit-f2', 'audit-f1']) {
      await expectStatus(await c.api(`/api/v1/devices/${name}`, { method: 'PATCH', json: { labels: { n: name } }, token: operator.token }), 200);
    }
    const byActor = await expectStatus(await c.api(`/api/v1/audit?actorId=${operator.id}&action=device.update`), 200);
    const ids = byActor.items.map((e: AuditEventView) => Number(e.id));
    assert.deepEqual(ids, [...ids].sort((a, b) => b - a), 'newest first');
    assert.ok(byActor.items.every((e: AuditEventView) => e.actor.id === operator.id && e.action === 'device.update'));

    const f1 = await c.prisma.device.findUniqueOrThrow({ where: { name: 'audit-f1' } });
    const byTarget = await expectStatus(await c.api(`/api/v1/audit?targetType=device&targetId=${f1.id}`), 200);
    assert.equal(byTarget.items.length, 2);

    const prefix = await expectStatus(await c.api('/api/v1/audit?action=device.*'), 200);
    assert.ok(prefix.items.length >= 3);
    assert.ok(prefix.items.every((e: AuditEventView) => e.action.startsWith('device.')));

    const newest = byActor.items[0] as AuditEventView;
    const since = await expectStatus(await c.api(`/api/v1/audit?since=${encodeURIComponent(newest.at)}&action=device.update`), 200);
    assert.ok(since.items.some((e: AuditEventView) => e.id === newest.id));
    assert.ok(since.items.every((e: AuditEventView) => Date.parse(e.at) >= Date.parse(newest.at)));
    const until = await expectStatus(await c.api(`/api/v1/audit?until=${encodeURIComponent(newest.at)}&action=device.update`), 200);
    assert.ok(until.items.every((e: AuditEventView) => Date.parse(e.at) < Date.parse(newest.at)));

    const first = await expectStatus(await c.api('/api/v1/audit?limit=2'), 200);
    const second = await expectStatus(await c.api(`/api/v1/audit?limit=2&cursor=${first.nextCursor}`), 200);
    assert.ok(Number(second.items[0].id) < Number(first.items[1].id));

    await expectError(await c.api('/api/v1/audit?since=yesterday'), 400, 'validation_failed');
    await expectError(await c.api('/api/v1/audit?action=DROP TABLE'), 400, 'validation_failed');
  });
});
