import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DeviceRouting } from '../../gateway/routing/device-routing.service.js';
import { agentDelivery, auditRows, createDevice, expectError, expectStatus } from '../../testing/api-fixtures.js';
import { startTestController, type TestController } from '../../testing/test-controller.js';
import { parseIfMatch } from './desired-state.service.js';

const spec = (path: string, content = 'hello\n') => ({ files: { entries: [{ path, content }] } });

describe('parseIfMatch', () => {
  it('reads a revision from plain, quoted and weak ETags, and refuses anything else', () => {
    assert.equal(parseIfMatch(undefined), undefined);
    assert.equal(parseIfMatch('3'), 3);
    assert.equal(parseIfMatch('"3"'), 3);
    assert.equal(parseIfMatch('W/"12"'), 12);
    assert.throws(() => parseIfMatch('*'), /If-Match/);
    assert.throws(() => parseIfMatch('"abc"'), /If-Match/);
  });
});

describe('desired state', () => {
  let c: TestController;
  before(async () => (c = await startTestController()));
  after(() => c?.close());

  const put = (device: string, json: unknown, headers: Record<string, string> = {}) => c.api(`/api/v1/devices/${device}/desired-state`, { method: 'PUT', json, headers });

  it('writes revision 1 with pending sections, audits, then kicks the device', async (t) => {
    const d = await createDevice(c, 'ds-1');
    const revisionAtKick: number[] = [];
    const kick = t.mock.method(agentDelivery(c), 'kick', async (id: string) => {
      revisionAtKick.push((await c.prisma.device.findUniqueOrThrow({ where: { id } })).desiredRevision);
    });
    const res = await put('ds-1', { spec: spec('/etc/motd'), message: 'motd' });
    const body = await expectStatus(res, 200);
    assert.equal(res.headers.get('etag'), '"1"');
    assert.equal(body.revision, 1);
    assert.equal(body.message, 'motd');
    // Stored with the schema's defaults filled in, as the agent will read it.
    assert.deepEqual(body.spec, { files: { entries: [{ path: '/etc/motd', content: 'hello\n', ensure: 'present', encoding: 'utf8', mode: '0644' }] } });
    assert.equal((await c.prisma.device.findUniqueOrThrow({ where: { id: d.id } })).desiredRevision, 1);
    const rev = await c.prisma.desiredRevision.findUniqueOrThrow({ where: { deviceId_revision: { deviceId: d.id, revision: 1 } } });
    assert.deepEqual(rev.spec, body.spec);
    const states = await c.prisma.deviceSectionState.findMany({ where: { deviceId: d.id } });
    assert.deepEqual(states.map((s) => [s.section, s.state, s.revision]), [['files', 'pending', 1]]);
    assert.deepEqual(kick.mock.calls.map((call) => call.arguments[0]), [d.id]);
    assert.deepEqual(revisionAtKick, [1], 'kicked after the commit');
    const [audit] = await auditRows(c, 'device.desired_state.set', d.id);
    assert.deepEqual((audit?.data as { revision: number; sections: string[] }).sections, ['files']);
    assert.equal(audit?.requestId, res.headers.get('x-request-id'));
  });

  it('refuses a bad spec naming every field path, and writes nothing', async (t) => {
    const d = await createDevice(c, 'ds-bad');
    const kick = t.mock.method(agentDelivery(c), 'kick', async () => {});
    const res = await put('ds-bad', {
      spec: { files: { entries: [{ path: 'etc/motd', content: 'x' }, { path: '/a', mode: '999', content: 'x' }, { path: '/b' }] }, wifi: {} },
    });
    const body = await expectError(res, 400, 'validation_failed');
    const issues = new Map(body.error.issues?.map((i) => [i.path, i.message]));
    assert.equal(issues.get('spec.files.entries[0].path'), 'must be an absolute path');
    assert.match(issues.get('spec.files.entries[1].mode') ?? '', /octal/);
    assert.match(issues.get('spec.files.entries[2].content') ?? '', /required/);
    assert.equal(issues.get('spec.wifi'), 'is not a known field');
    assert.match(body.error.message, /spec\.files\.entries\[0\]\.path: must be an absolute path/);
    assert.equal((await c.prisma.device.findUniqueOrThrow({ where: { id: d.id } })).desiredRevision, 0);
    assert.equal(await c.prisma.desiredRevision.count({ where: { deviceId: d.id } }), 0);
    assert.equal(kick.mock.callCount(), 0);
    await expectError(await put('ds-bad', { message: 'no spec' }), 400, 'validation_failed');
  });

  it('keeps a history of revisions, newest first and paginated', async () => {
    await createDevice(c, 'ds-hist');
    for (let i = 1; i <= 3; i++) await expectStatus(await put('ds-hist', { spec: spec(`/etc/f${i}`), message: `rev ${i}` }), 200);
    const first = await expectStatus(await c.api('/api/v1/devices/ds-hist/desired-state/revisions?limit=2'), 200);
    assert.deepEqual(first.items.map((r: { revision: number }) => r.revision), [3, 2]);
    assert.equal(first.items[0].spec, undefined, 'history rows leave the spec out');
    const second = await expectStatus(await c.api(`/api/v1/devices/ds-hist/desired-state/revisions?limit=2&cursor=${first.nextCursor}`), 200);
    assert.deepEqual(second.items.map((r: { revision: number; message: string }) => [r.revision, r.message]), [[1, 'rev 1']]);
    assert.equal(second.nextCursor, null);
    const two = await expectStatus(await c.api('/api/v1/devices/ds-hist/desired-state/revisions/2'), 200);
    assert.equal(two.spec.files.entries[0].path, '/etc/f2');
    const current = await c.api('/api/v1/devices/ds-hist/desired-state');
    assert.equal((await expectStatus(current, 200)).revision, 3);
    assert.equal(current.headers.get('etag'), '"3"');
    await expectError(await c.api('/api/v1/devices/ds-hist/desired-state/revisions/9'), 404, 'not_found');
    const notNumber = await expectError(await c.api('/api/v1/devices/ds-hist/desired-state/revisions/x'), 400, 'validation_failed');
    assert.equal(notNumber.error.issues?.[0]?.path, 'revision');
  });

  it('shows revision 0 and no spec before anything was set', async () => {
    await createDevice(c, 'ds-empty');
    const res = await c.api('/api/v1/devices/ds-empty/desired-state');
    const body = await expectStatus(res, 200);
    assert.equal(body.revision, 0);
    assert.equal(body.spec, null);
    assert.equal(res.headers.get('etag'), '"0"');
  });

  it('writes only on the expected revision with ifMatchRevision or If-Match, else 409', async () => {
    const d = await createDevice(c, 'ds-occ');
    await expectStatus(await put('ds-occ', { spec: spec('/a'), ifMatchRevision: 0 }), 200);
    const stale = await expectError(await put('ds-occ', { spec: spec('/b'), ifMatchRevision: 0 }), 409, 'conflict');
    assert.match(stale.error.message, /revision 1, not 0/);
    await expectError(await put('ds-occ', { spec: spec('/b') }, { 'if-match': '"0"' }), 409, 'conflict');
    await expectStatus(await put('ds-occ', { spec: spec('/b') }, { 'if-match': '"1"' }), 200);
    await expectStatus(await put('ds-occ', { spec: spec('/c'), ifMatchRevision: 2 }), 200);
    await expectError(await put('ds-occ', { spec: spec('/d'), ifMatchRevision: 3 }, { 'if-match': '"2"' }), 400, 'validation_failed');
    assert.equal((await c.prisma.device.findUniqueOrThrow({ where: { id: d.id } })).desiredRevision, 3);
    assert.equal(await c.prisma.desiredRevision.count({ where: { deviceId: d.id } }), 3);
  });

  it('drops the states of sections the new spec no longer has', async () => {
    const d = await createDevice(c, 'ds-drop');
    await expectStatus(await put('ds-drop', { spec: spec('/a') }), 200);
    // An unknown section reported by an agent earlier, and one the spec drops.
    await c.prisma.deviceSectionState.create({ data: { deviceId: d.id, section: 'legacy', state: 'in_sync', revision: 1, observedAt: new Date() } });
    await expectStatus(await put('ds-drop', { spec: {} }), 200);
    assert.equal(await c.prisma.deviceSectionState.count({ where: { deviceId: d.id } }), 0);
  });

  it('reports state per section and whether the device is in sync', async () => {
    const d = await createDevice(c, 'ds-state');
    await expectStatus(await put('ds-state', { spec: spec('/a') }), 200);
    let state = await expectStatus(await c.api('/api/v1/devices/ds-state/state'), 200);
    assert.equal(state.inSync, false);
    assert.deepEqual(state.sections.map((s: { section: string; state: string }) => [s.section, s.state]), [['files', 'pending']]);

    // What the gateway writes when the agent reports.
    await c.prisma.deviceSectionState.update({
      where: { deviceId_section: { deviceId: d.id, section: 'files' } },
      data: { state: 'failed', error: 'EACCES: /a', detail: { step: 'write' } },
    });
    await c.prisma.device.update({ where: { id: d.id }, data: { receivedRevision: 1 } });
    state = await expectStatus(await c.api(`/api/v1/devices/${d.id}/state`), 200);
    assert.equal(state.inSync, false);
    assert.deepEqual(state.sections[0], { section: 'files', state: 'failed', revision: 1, error: 'EACCES: /a', detail: { step: 'write' }, observedAt: state.sections[0].observedAt });
    assert.deepEqual([state.desiredRevision, state.receivedRevision, state.appliedRevision], [1, 1, 0]);

    await c.prisma.deviceSectionState.update({ where: { deviceId_section: { deviceId: d.id, section: 'files' } }, data: { state: 'in_sync', error: null } });
    await c.prisma.device.update({ where: { id: d.id }, data: { appliedRevision: 1 } });
    state = await expectStatus(await c.api('/api/v1/devices/ds-state/state'), 200);
    assert.equal(state.inSync, true);

    await c.prisma.deviceSectionState.update({ where: { deviceId_section: { deviceId: d.id, section: 'files' } }, data: { state: 'drifted' } });
    state = await expectStatus(await c.api('/api/v1/devices/ds-state/state'), 200);
    assert.equal(state.inSync, false, 'drift after applying is out of sync');
  });

  it('refuses a desired state for a revoked device', async () => {
    await createDevice(c, 'ds-revoked', { revoked: true });
    await expectError(await put('ds-revoked', { spec: spec('/a') }), 409, 'conflict');
    await expectError(await put('ds-missing', { spec: spec('/a') }), 404, 'not_found');
  });

  it('keeps the revision when the kick fails (the device gets it on reconnect)', async (t) => {
    const d = await createDevice(c, 'ds-kick');
    // Below the port: AGENT_DELIVERY never throws, it logs the failed publish.
    const publish = t.mock.method(c.app.get(DeviceRouting), 'publish', async () => {
      throw new Error('Redis is down');
    });
    await expectStatus(await put('ds-kick', { spec: spec('/a') }), 200);
    assert.equal((await c.prisma.device.findUniqueOrThrow({ where: { id: d.id } })).desiredRevision, 1);
    assert.equal(publish.mock.callCount(), 1, 'the kick was tried');
  });
});
