import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createApiToken, expectError, expectStatus } from '../../testing/api-fixtures.js';
import { startTestController, type TestController } from '../../testing/test-controller.js';

describe('API token authentication and roles', () => {
  let c: TestController;
  before(async () => (c = await startTestController()));
  after(() => c?.close());

  it('refuses a request without a token, with a hint and WWW-Authenticate', async () => {
    const res = await c.api('/api/v1/devices', { token: null });
    const body = await expectError(res, 401, 'unauthenticated');
    assert.match(body.error.message, /Authorization: Bearer/);
    assert.match(res.headers.get('www-authenticate') ?? '', /^Bearer/);
  });

  it('refuses malformed, foreign and unknown tokens', async () => {
    await expectError(await c.api('/api/v1/devices', { token: null, headers: { authorization: 'Basic YTpi' } }), 401, 'unauthenticated');
    const foreign = await expectError(await c.api('/api/v1/devices', { token: 'ibxd_0123456789012345678901234567890123456789' }), 401, 'unauthenticated');
    assert.match(foreign.error.message, /not an API token/);
    const unknown = await expectError(await c.api('/api/v1/devices', { token: 'ibx_0123456789012345678901234567890123456789' }), 401, 'unauthenticated');
    assert.match(unknown.error.message, /not recognised/);
  });

  it('refuses a revoked token from the next request on', async () => {
    const t = await createApiToken(c, 'operator');
    await expectStatus(await c.api('/api/v1/devices', { token: t.token }), 200);
    await expectStatus(await c.api(`/api/v1/api-tokens/${t.id}`, { method: 'DELETE' }), 204);
    const body = await expectError(await c.api('/api/v1/devices', { token: t.token }), 401, 'unauthenticated');
    assert.match(body.error.message, /revoked/);
  });

  it('refuses an expired token', async () => {
    const t = await createApiToken(c, 'operator', { expiresInDays: 1 });
    await expectStatus(await c.api('/api/v1/devices', { token: t.token }), 200);
    await c.prisma.apiToken.update({ where: { id: t.id }, data: { expiresAt: new Date(Date.now() - 1000) } });
    const body = await expectError(await c.api('/api/v1/devices', { token: t.token }), 401, 'unauthenticated');
    assert.match(body.error.message, /expired/);
  });

  it('lets a viewer read but not change anything', async () => {
    const viewer = await createApiToken(c, 'viewer');
    await expectStatus(await c.api('/api/v1/devices', { token: viewer.token }), 200);
    await expectStatus(await c.api('/api/v1/audit', { token: viewer.token }), 200);
    const post = await expectError(await c.api('/api/v1/enrollment-tokens', { method: 'POST', json: {}, token: viewer.token }), 403, 'forbidden');
    assert.match(post.error.message, /viewer/);
    await expectError(await c.api('/api/v1/devices/x', { method: 'DELETE', token: viewer.token }), 403, 'forbidden');
    await expectError(await c.api('/api/v1/devices/x', { method: 'PATCH', json: { labels: {} }, token: viewer.token }), 403, 'forbidden');
    assert.equal(await c.prisma.enrollmentToken.count(), 0);
  });

  it('keeps API token management to admins', async () => {
    const operator = await createApiToken(c, 'operator');
    await expectStatus(await c.api('/api/v1/enrollment-tokens', { method: 'POST', json: {}, token: operator.token }), 201);
    const list = await expectError(await c.api('/api/v1/api-tokens', { token: operator.token }), 403, 'forbidden');
    assert.match(list.error.message, /admin/);
    await expectError(await c.api('/api/v1/api-tokens', { method: 'POST', json: { name: 'x', role: 'admin' }, token: operator.token }), 403, 'forbidden');
    const viewer = await createApiToken(c, 'viewer');
    await expectError(await c.api('/api/v1/api-tokens', { token: viewer.token }), 403, 'forbidden');
  });

  it('updates lastUsedAt at most once a minute per token', async () => {
    const t = await createApiToken(c, 'viewer');
    const lastUsed = async () => (await c.prisma.apiToken.findUniqueOrThrow({ where: { id: t.id } })).lastUsedAt;
    assert.equal(await lastUsed(), null);
    await expectStatus(await c.api('/api/v1/devices', { token: t.token }), 200);
    const first = await lastUsed();
    assert.ok(first, 'the first use is recorded');
    await expectStatus(await c.api('/api/v1/devices', { token: t.token }), 200);
    await expectStatus(await c.api('/api/v1/jobs', { token: t.token }), 200);
    assert.deepEqual(await lastUsed(), first, 'uses within the minute write nothing');
    const old = new Date(Date.now() - 61_000);
    await c.prisma.apiToken.update({ where: { id: t.id }, data: { lastUsedAt: old } });
    await expectStatus(await c.api('/api/v1/devices', { token: t.token }), 200);
    assert.ok((await lastUsed())! > old, 'a use a minute later is recorded');
  });

  it('serves health checks and the API docs without a token', async () => {
    await expectStatus(await c.api('/healthz', { token: null }), 200);
    await expectStatus(await c.api('/readyz', { token: null }), 200);
    await expectStatus(await c.api('/api/docs-json', { token: null }), 200);
  });
});
