import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { SectionState } from '../../generated/prisma/client.js';
import { createApiToken, createDevice, expectError, expectStatus } from '../../testing/api-fixtures.js';
import { startTestController, type TestController } from '../../testing/test-controller.js';

describe('device sync and the fleet summary', () => {
  let c: TestController;

  /** A device at desired revision `desired`, applied `applied`, with these section states. */
  async function device(name: string, desired: number, applied: number, sections: SectionState[], opts: { online?: boolean; revoked?: boolean } = {}) {
    const d = await createDevice(c, name, { ...opts, data: { desiredRevision: desired, appliedRevision: applied, receivedRevision: applied } });
    for (const [i, state] of sections.entries()) {
      await c.prisma.deviceSectionState.create({ data: { deviceId: d.id, section: `s${i}`, state, revision: applied, observedAt: new Date() } });
    }
    return d;
  }

  before(async () => {
    c = await startTestController();
    await device('a-none', 0, 0, [], { online: true });
    await device('b-sync', 2, 2, ['in_sync', 'in_sync'], { online: true });
    await device('c-behind', 3, 2, ['in_sync']);
    await device('d-applying', 1, 1, ['in_sync', 'applying'], { online: true });
    await device('e-drift', 1, 1, ['in_sync', 'drifted']);
    // Worst wins: failed (or reverted) over drifted over unsupported over pending.
    await device('f-failed', 2, 1, ['drifted', 'failed', 'unsupported']);
    await device('g-reverted', 1, 1, ['reverted']);
    await device('h-unsupported', 1, 1, ['unsupported', 'pending']);
    await device('i-revoked', 1, 1, ['drifted'], { revoked: true });
  });
  after(() => c?.close());

  const syncs = async (query = '') => {
    const page = await expectStatus<{ items: Array<{ name: string; sync: string }> }>(await c.api(`/api/v1/devices?${query}`), 200);
    return Object.fromEntries(page.items.map((d) => [d.name, d.sync]));
  };

  it('each device view says how far it is from its desired state, worst section first', async () => {
    assert.deepEqual(await syncs(), {
      'a-none': 'none',
      'b-sync': 'in_sync',
      'c-behind': 'pending',
      'd-applying': 'pending',
      'e-drift': 'drifted',
      'f-failed': 'failed',
      'g-reverted': 'failed',
      'h-unsupported': 'unsupported',
      'i-revoked': 'drifted',
    });
    // The single view and the list agree (a page of one, and GET by name).
    assert.equal((await expectStatus(await c.api('/api/v1/devices/e-drift'), 200)).sync, 'drifted');
  });

  it('the list filters by sync, combined with status', async () => {
    assert.deepEqual(Object.keys(await syncs('sync=failed')), ['f-failed', 'g-reverted']);
    assert.deepEqual(Object.keys(await syncs('sync=pending&status=online')), ['d-applying']);
    assert.deepEqual(Object.keys(await syncs('sync=drifted&status=offline')), ['e-drift']);
    const bad = await expectError(await c.api('/api/v1/devices?sync=drifting'), 400, 'validation_failed');
    assert.equal(bad.error.issues?.[0]?.path, 'sync');
    assert.match(bad.error.issues?.[0]?.message ?? '', /in_sync, pending, drifted/);
  });

  it('the summary counts devices by status and (revoked left out) by sync, and unfinished jobs', async () => {
    const b = await c.prisma.device.findUniqueOrThrow({ where: { name: 'b-sync' } });
    const job = (status: 'queued' | 'running' | 'succeeded') =>
      c.prisma.job.create({ data: { deviceId: b.id, type: 'facts.collect', status, timeoutMs: 1000, expiresAt: new Date(Date.now() + 3600_000) } });
    await job('queued');
    await job('queued');
    await job('running');
    await job('succeeded');
    const s = await expectStatus(await c.api('/api/v1/fleet/summary'), 200);
    assert.deepEqual(s.devices, { total: 9, online: 3, offline: 5, revoked: 1 });
    assert.deepEqual(s.sync, { none: 1, in_sync: 1, pending: 2, drifted: 1, failed: 2, unsupported: 1 });
    assert.deepEqual(s.jobs, { queued: 2, delivered: 0, running: 1 });
    assert.ok(Math.abs(Date.parse(s.at) - Date.now()) < 60_000);
  });

  it('needs a token; a viewer may read it', async () => {
    await expectError(await c.api('/api/v1/fleet/summary', { token: null }), 401, 'unauthenticated');
    const viewer = await createApiToken(c, 'viewer');
    await expectStatus(await c.api('/api/v1/fleet/summary', { token: viewer.token }), 200);
  });
});
