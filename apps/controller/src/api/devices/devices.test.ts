import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { agentDelivery, auditRows, createApiToken, createDevice, expectError, expectStatus } from '../../testing/api-fixtures.js';
import { startTestController, type TestController } from '../../testing/test-controller.js';

type Named = { items: Array<{ name: string }>; nextCursor: string | null };
const names = (page: Named) => page.items.map((d) => d.name);

const facts = {
  hostname: 'r1',
  osRelease: { id: 'alpine', versionId: '3.20', prettyName: 'Alpine Linux v3.20' },
  kernel: '6.6.1',
  arch: 'aarch64',
  interfaces: [{ name: 'eth0', mac: '02:00:00:00:00:01', mtu: 1500, up: true, addresses: ['192.0.2.10/24'] }],
  filesystems: [{ device: '/dev/sda1', mountpoint: '/', fstype: 'ext4', sizeBytes: 1000, usedBytes: 10, readOnly: false }],
  agentVersion: '0.1.0',
  uptimeSeconds: 5,
  memoryTotalBytes: 1024,
  cpuCount: 2,
  collectedAtMs: 1,
};

describe('devices: listing', () => {
  let c: TestController;
  before(async () => {
    c = await startTestController();
    await createDevice(c, 'a-prod-lab', { labels: { env: 'prod', site: 'lab' }, online: true });
    await createDevice(c, 'b-prod', { labels: { env: 'prod' } });
    await createDevice(c, 'c-dev-lab', { labels: { env: 'dev', site: 'lab', 'example.com/tier': 'edge' }, online: true });
    await createDevice(c, 'd-bare');
    await createDevice(c, 'e-revoked', { labels: { env: 'prod' }, revoked: true, online: true });
    // Connected, but silent for longer than offlineAfterMs: offline.
    await createDevice(c, 'f-stale', { labels: { env: 'dev' }, data: { connectedAt: new Date(), lastSeenAt: new Date(Date.now() - 3_600_000) } });
  });
  after(async () => {
    await c?.close();
  });

  const list = async (query: string): Promise<string[]> => names(await expectStatus(await c.api(`/api/v1/devices?${query}`), 200));

  it('lists every device by name', async () => {
    assert.deepEqual(await list(''), ['a-prod-lab', 'b-prod', 'c-dev-lab', 'd-bare', 'e-revoked', 'f-stale']);
  });

  it('filters by label selector: eq, neq, exists, notexists and combined', async () => {
    assert.deepEqual(await list('selector=env%3Dprod'), ['a-prod-lab', 'b-prod', 'e-revoked']);
    assert.deepEqual(await list('selector=env%3D%3Dprod'), ['a-prod-lab', 'b-prod', 'e-revoked']);
    // neq matches devices without the label too.
    assert.deepEqual(await list('selector=env!%3Dprod'), ['c-dev-lab', 'd-bare', 'f-stale']);
    assert.deepEqual(await list('selector=site'), ['a-prod-lab', 'c-dev-lab']);
    assert.deepEqual(await list('selector=!site'), ['b-prod', 'd-bare', 'e-revoked', 'f-stale']);
    assert.deepEqual(await list('selector=example.com/tier%3Dedge'), ['c-dev-lab']);
    assert.deepEqual(await list(`selector=${encodeURIComponent('env=prod, site')}`), ['a-prod-lab']);
    assert.deepEqual(await list(`selector=${encodeURIComponent('env!=prod,!site,env')}`), ['f-stale']);
    assert.deepEqual(await list('selector=env%3Dnone'), []);
  });

  it('filters by status computed from connectedAt, lastSeenAt and revokedAt', async () => {
    assert.deepEqual(await list('status=online'), ['a-prod-lab', 'c-dev-lab']);
    assert.deepEqual(await list('status=offline'), ['b-prod', 'd-bare', 'f-stale']);
    assert.deepEqual(await list('status=revoked'), ['e-revoked']);
    assert.deepEqual(await list('status=online&selector=site%3Dlab,env%3Ddev'), ['c-dev-lab']);
    const page = await expectStatus(await c.api('/api/v1/devices'), 200);
    const status = Object.fromEntries(page.items.map((d: { name: string; status: string }) => [d.name, d.status]));
    assert.deepEqual(status, { 'a-prod-lab': 'online', 'b-prod': 'offline', 'c-dev-lab': 'online', 'd-bare': 'offline', 'e-revoked': 'revoked', 'f-stale': 'offline' });
  });

  it('refuses a bad selector or status, naming the term', async () => {
    const body = await expectError(await c.api(`/api/v1/devices?selector=${encodeURIComponent('env=prod,bad key=1')}`), 400, 'validation_failed');
    assert.equal(body.error.issues?.[0]?.path, 'selector');
    assert.match(body.error.message, /bad key=1/);
    await expectError(await c.api('/api/v1/devices?status=sleeping'), 400, 'validation_failed');
  });

  it('pages with limit and cursor, without gaps or repeats', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page: Named = await expectStatus(await c.api(`/api/v1/devices?limit=4${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`), 200);
      seen.push(...names(page));
      cursor = page.nextCursor;
      pages++;
    } while (cursor);
    assert.equal(pages, 2);
    assert.deepEqual(seen, ['a-prod-lab', 'b-prod', 'c-dev-lab', 'd-bare', 'e-revoked', 'f-stale']);
    const filtered: Named = await expectStatus(await c.api('/api/v1/devices?limit=1&selector=env%3Dprod'), 200);
    assert.deepEqual(names(filtered), ['a-prod-lab']);
    const next: Named = await expectStatus(await c.api(`/api/v1/devices?limit=1&selector=env%3Dprod&cursor=${encodeURIComponent(filtered.nextCursor!)}`), 200);
    assert.deepEqual(names(next), ['b-prod']);
    await expectError(await c.api('/api/v1/devices?limit=1001'), 400, 'validation_failed');
    await expectError(await c.api('/api/v1/devices?cursor=garbage'), 400, 'validation_failed');
  });
});

describe('devices: one device', () => {
  let c: TestController;
  before(async () => (c = await startTestController()));
  after(() => c?.close());

  it('gets a device by id or name with its facts and revisions', async () => {
    const d = await createDevice(c, 'r1', { labels: { env: 'prod' }, online: true, data: { facts, agentVersion: '0.1.0', desiredRevision: 3, receivedRevision: 3, appliedRevision: 2 } });
    const byName = await expectStatus(await c.api('/api/v1/devices/r1'), 200);
    const byId = await expectStatus(await c.api(`/api/v1/devices/${d.id}`), 200);
    assert.deepEqual(byId, byName);
    assert.equal(byName.id, d.id);
    assert.equal(byName.status, 'online');
    assert.equal(byName.agentVersion, '0.1.0');
    assert.deepEqual(byName.facts, facts);
    assert.deepEqual([byName.desiredRevision, byName.receivedRevision, byName.appliedRevision], [3, 3, 2]);
    assert.equal(byName.enrolledAt, d.enrolledAt.toISOString());
    assert.equal(byName.lastSeenAt, d.lastSeenAt!.toISOString(), 'milliseconds and Z, as toISOString');
    // The list builds each item in SQL: it is the same view, property for property.
    const res = await c.api('/api/v1/devices?selector=env%3Dprod');
    assert.match(res.headers.get('content-type') ?? '', /^application\/json; charset=utf-8/);
    const page = (await expectStatus(res, 200)) as { items: Array<{ id: string }> };
    const item = page.items.find((x) => x.id === d.id);
    assert.deepEqual(item, byName);
    assert.deepEqual(Object.keys(item!), Object.keys(byName));
    const missing = await expectError(await c.api('/api/v1/devices/nope'), 404, 'not_found');
    assert.match(missing.error.message, /"nope"/);
  });

  it('shows only string label values and null facts when the stored ones are not an object, in the list as in GET', async () => {
    const d = await createDevice(c, 'odd-stored', { labels: { env: 'odd' } });
    await c.prisma.device.update({ where: { id: d.id }, data: { labels: { env: 'odd', n: 5, nested: { a: 'b' } }, facts: ['not', 'an', 'object'] } });
    const got = await expectStatus(await c.api('/api/v1/devices/odd-stored'), 200);
    assert.deepEqual(got.labels, { env: 'odd' });
    assert.equal(got.facts, null);
    assert.equal(got.generations, null);
    const page = await expectStatus(await c.api('/api/v1/devices?selector=env%3Dodd'), 200);
    assert.deepEqual(page.items, [got]);
  });

  it('merges labels: sets, replaces, removes with null, keeps the rest', async () => {
    const d = await createDevice(c, 'labels-1', { labels: { env: 'prod', site: 'lab', old: 'x' } });
    const body = await expectStatus(await c.api('/api/v1/devices/labels-1', { method: 'PATCH', json: { labels: { site: 'hq', old: null, 'ibex.dev/role': 'router', absent: null } } }), 200);
    assert.deepEqual(body.labels, { env: 'prod', site: 'hq', 'ibex.dev/role': 'router' });
    assert.deepEqual((await c.prisma.device.findUniqueOrThrow({ where: { id: d.id } })).labels, body.labels);
    const [audit] = await auditRows(c, 'device.update', d.id);
    assert.deepEqual(audit?.data, { name: 'labels-1', set: { site: 'hq', 'ibex.dev/role': 'router' }, removed: ['old'] });
  });

  it('refuses invalid labels by field, and more than 64 labels in total', async () => {
    await createDevice(c, 'labels-2', { labels: Object.fromEntries(Array.from({ length: 63 }, (_, i) => [`k${i}`, 'v'])) });
    const bad = await expectError(await c.api('/api/v1/devices/labels-2', { method: 'PATCH', json: { labels: { '-bad': 'x', good: 'spaces are bad' } } }), 400, 'validation_failed');
    assert.deepEqual(bad.error.issues?.map((i) => i.path).sort(), ['labels.-bad', 'labels.good']);
    await expectStatus(await c.api('/api/v1/devices/labels-2', { method: 'PATCH', json: { labels: { k63: 'v' } } }), 200);
    const tooMany = await expectError(await c.api('/api/v1/devices/labels-2', { method: 'PATCH', json: { labels: { k64: 'v' } } }), 400, 'validation_failed');
    assert.match(tooMany.error.message, /64/);
    assert.equal(Object.keys((await c.prisma.device.findUniqueOrThrow({ where: { name: 'labels-2' } })).labels as object).length, 64);
  });

  it('revokes the device and its credentials, then closes its stream', async (t) => {
    const d = await createDevice(c, 'rev-1', { online: true });
    await c.prisma.deviceCredential.createMany({ data: [{ deviceId: d.id, hash: 'h-rev-1-a' }, { deviceId: d.id, hash: 'h-rev-1-b' }] });
    const seenAtCall: Array<Date | null> = [];
    const disconnect = t.mock.method(agentDelivery(c), 'disconnect', async (id: string) => {
      // Called after the commit: another connection already sees the revocation.
      seenAtCall.push((await c.prisma.device.findUniqueOrThrow({ where: { id } })).revokedAt);
    });
    const body = await expectStatus(await c.api('/api/v1/devices/rev-1/revoke', { method: 'POST' }), 200);
    assert.equal(body.status, 'revoked');
    assert.ok(body.revokedAt);
    const creds = await c.prisma.deviceCredential.findMany({ where: { deviceId: d.id } });
    assert.equal(creds.length, 2);
    assert.ok(creds.every((x) => x.revokedAt !== null));
    assert.equal(disconnect.mock.callCount(), 1);
    assert.equal(disconnect.mock.calls[0]?.arguments[0], d.id);
    assert.match(String(disconnect.mock.calls[0]?.arguments[1]), /revoked/);
    assert.ok(seenAtCall[0], 'revokedAt was committed before disconnect');
    const [audit] = await auditRows(c, 'device.revoke', d.id);
    assert.equal(audit?.actorType, 'api_token');

    // Again: nothing changes, the stream is still asked to close.
    const again = await expectStatus(await c.api(`/api/v1/devices/${d.id}/revoke`, { method: 'POST' }), 200);
    assert.equal(again.revokedAt, body.revokedAt);
    assert.equal(disconnect.mock.callCount(), 2);
    assert.equal((await auditRows(c, 'device.revoke', d.id)).length, 1);
  });

  it('reports a failed disconnect as 503 while keeping the revocation', async (t) => {
    const d = await createDevice(c, 'rev-2', { online: true });
    t.mock.method(agentDelivery(c), 'disconnect', async () => {
      throw new Error('Redis is down');
    });
    const body = await expectError(await c.api('/api/v1/devices/rev-2/revoke', { method: 'POST' }), 503, 'unavailable');
    assert.match(body.error.message, /rev-2.*revoked.*retry/);
    assert.ok((await c.prisma.device.findUniqueOrThrow({ where: { id: d.id } })).revokedAt);
  });

  it('deletes a device with its jobs and history, then closes its stream', async (t) => {
    const d = await createDevice(c, 'del-1', { online: true });
    await c.prisma.job.create({ data: { deviceId: d.id, type: 'facts.collect', timeoutMs: 1000, expiresAt: new Date(Date.now() + 60_000) } });
    await c.prisma.deviceCredential.create({ data: { deviceId: d.id, hash: 'h-del-1' } });
    const disconnect = t.mock.method(agentDelivery(c), 'disconnect', async () => {});
    await expectStatus(await c.api('/api/v1/devices/del-1', { method: 'DELETE' }), 204);
    assert.equal(await c.prisma.device.count({ where: { id: d.id } }), 0);
    assert.equal(await c.prisma.job.count({ where: { deviceId: d.id } }), 0);
    assert.equal(await c.prisma.deviceCredential.count({ where: { deviceId: d.id } }), 0);
    assert.deepEqual(disconnect.mock.calls[0]?.arguments[0], d.id);
    const [audit] = await auditRows(c, 'device.delete', d.id);
    assert.equal((audit?.data as { name: string }).name, 'del-1');
    await expectError(await c.api('/api/v1/devices/del-1', { method: 'DELETE' }), 404, 'not_found');
  });

  it('lets an operator change devices and a viewer only look', async () => {
    await createDevice(c, 'perm-1');
    const operator = await createApiToken(c, 'operator');
    const viewer = await createApiToken(c, 'viewer');
    await expectStatus(await c.api('/api/v1/devices/perm-1', { method: 'PATCH', json: { labels: { a: 'b' } }, token: operator.token }), 200);
    await expectStatus(await c.api('/api/v1/devices/perm-1', { token: viewer.token }), 200);
    await expectError(await c.api('/api/v1/devices/perm-1/revoke', { method: 'POST', token: viewer.token }), 403, 'forbidden');
    assert.equal((await c.prisma.device.findUniqueOrThrow({ where: { name: 'perm-1' } })).revokedAt, null);
  });
});
