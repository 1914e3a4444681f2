import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Clock } from '../../common/clock.js';
import { AuditService } from '../../audit/audit.service.js';
import { auditRows, createApiToken, expectError, expectStatus } from '../../testing/api-fixtures.js';
import { startTestController, type TestController } from '../../testing/test-controller.js';
import { AdminTokenBootstrap } from './admin-token-bootstrap.service.js';

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

describe('API tokens', () => {
  let c: TestController;
  before(async () => (c = await startTestController()));
  after(() => c?.close());

  it('creates a token whose secret is shown once and stored only as its SHA-256', async () => {
    const created = await expectStatus(await c.api('/api/v1/api-tokens', { method: 'POST', json: { name: 'ci deploy', role: 'operator', expiresInDays: 30 } }), 201);
    assert.match(created.token, /^ibx_[A-Za-z0-9]{40}$/);
    assert.equal(created.prefix, created.token.slice(0, 10));
    assert.equal(created.role, 'operator');
    assert.equal(created.status, 'active');
    assert.ok(Math.abs(Date.parse(created.expiresAt) - Date.now() - 30 * 86_400_000) < 60_000);

    const row = await c.prisma.apiToken.findUniqueOrThrow({ where: { id: created.id } });
    assert.equal(row.hash, sha256(created.token));
    assert.ok(!JSON.stringify(row).includes(created.token.slice(4)), 'the secret is nowhere in the row');

    const list = await expectStatus(await c.api('/api/v1/api-tokens'), 200);
    const listed = list.items.find((t: { id: string }) => t.id === created.id);
    assert.ok(listed);
    assert.equal(listed.token, undefined);
    assert.ok(!JSON.stringify(list).includes(created.token));
    // The new token works.
    await expectStatus(await c.api('/api/v1/devices', { token: created.token }), 200);
  });

  it('validates the request and names the fields', async () => {
    const body = await expectError(await c.api('/api/v1/api-tokens', { method: 'POST', json: { name: ' ', role: 'root', expiresInDays: 0 } }), 400, 'validation_failed');
    assert.deepEqual(body.error.issues?.map((i) => i.path).sort(), ['expiresInDays', 'name', 'role']);
  });

  it('revokes a token, idempotently, and audits it once', async () => {
    const t = await createApiToken(c, 'viewer');
    await expectStatus(await c.api(`/api/v1/api-tokens/${t.id}`, { method: 'DELETE' }), 204);
    await expectStatus(await c.api(`/api/v1/api-tokens/${t.id}`, { method: 'DELETE' }), 204);
    const rows = await auditRows(c, 'api_token.revoke', t.id);
    assert.equal(rows.length, 1);
    const list = await expectStatus(await c.api('/api/v1/api-tokens'), 200);
    assert.equal(list.items.find((x: { id: string }) => x.id === t.id)?.status, 'revoked');
    await expectError(await c.api('/api/v1/api-tokens/00000000-0000-4000-8000-000000000000', { method: 'DELETE' }), 404, 'not_found');
    await expectError(await c.api('/api/v1/api-tokens/not-a-uuid', { method: 'DELETE' }), 404, 'not_found');
  });

  it('pages through tokens newest first without repeats', async () => {
    for (let i = 0; i < 3; i++) await createApiToken(c, 'viewer');
    const total = await c.prisma.apiToken.count();
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { items: Array<{ id: string; createdAt: string }>; nextCursor: string | null } = await expectStatus(
        await c.api(`/api/v1/api-tokens?limit=2${cursor ? `&cursor=${cursor}` : ''}`),
        200,
      );
      assert.ok(page.items.length <= 2);
      seen.push(...page.items.map((t) => t.id));
      cursor = page.nextCursor;
    } while (cursor);
    assert.equal(seen.length, total);
    assert.equal(new Set(seen).size, total);
    const rows = await c.prisma.apiToken.findMany({ orderBy: [{ createdAt: 'desc' }, { id: 'desc' }] });
    assert.deepEqual(seen, rows.map((r) => r.id));
  });
  it('refuses to revoke the last active admin token', async () => {
    const admins = await c.prisma.apiToken.findMany({ where: { role: 'admin', revokedAt: null } });
    assert.equal(admins.length, 1, 'only the bootstrap admin token exists');
    const body = await expectError(await c.api(`/api/v1/api-tokens/${admins[0]!.id}`, { method: 'DELETE' }), 409, 'conflict');
    assert.match(body.error.message, /last active admin/);
    // With a second admin it can go; the new admin carries on.
    const second = await createApiToken(c, 'admin');
    await expectStatus(await c.api(`/api/v1/api-tokens/${admins[0]!.id}`, { method: 'DELETE', token: second.token }), 204);
    // Last in this suite: the default admin token of `c.api` is revoked from here on.
    await expectError(await c.api('/api/v1/devices'), 401, 'unauthenticated');
  });
});

describe('admin token bootstrap', () => {
  let c: TestController;
  before(async () => (c = await startTestController()));
  after(() => c?.close());

  const bootstrap = (adminToken?: string) =>
    new AdminTokenBootstrap(c.prisma, c.app.get(AuditService), c.app.get(Clock), { ...c.config, ...(adminToken ? { adminToken } : { adminToken: undefined }) });

  it('created the IBEX_ADMIN_TOKEN token at startup, hashed, and does so only once', async () => {
    const rows = await c.prisma.apiToken.findMany();
    assert.equal(rows.length, 1);
    assert.equal(rows[0]!.hash, sha256(c.adminToken));
    assert.equal(rows[0]!.role, 'admin');
    const printed: string[] = [];
    assert.equal(await bootstrap(c.adminToken).ensureAdminToken((l) => printed.push(l)), 'existing');
    assert.equal(await c.prisma.apiToken.count(), 1);
    assert.deepEqual(printed, [], 'a token from the environment is never printed');
  });

  it('generates and prints an admin token once when no usable admin token exists', async () => {
    await c.prisma.apiToken.updateMany({ data: { revokedAt: new Date() } });
    const printed: string[] = [];
    assert.equal(await bootstrap().ensureAdminToken((l) => printed.push(l)), 'generated');
    assert.equal(printed.length, 1);
    const secret = /^Admin API token \(shown once, store it now\): (ibx_[A-Za-z0-9]{40})$/.exec(printed[0]!)?.[1];
    assert.ok(secret, printed[0]);
    const row = await c.prisma.apiToken.findUniqueOrThrow({ where: { hash: sha256(secret) } });
    assert.equal(row.role, 'admin');
    await expectStatus(await c.api('/api/v1/api-tokens', { token: secret }), 200);
    assert.equal((await auditRows(c, 'api_token.create', row.id))[0]?.actorType, 'system');

    assert.equal(await bootstrap().ensureAdminToken((l) => printed.push(l)), 'existing');
    assert.equal(printed.length, 1, 'a second start prints nothing');
    assert.equal(await c.prisma.apiToken.count({ where: { revokedAt: null } }), 1);
  });

  it('leaves a revoked IBEX_ADMIN_TOKEN revoked', async () => {
    assert.equal(await bootstrap(c.adminToken).ensureAdminToken(() => assert.fail('nothing to print')), 'env_token_revoked');
    const row = await c.prisma.apiToken.findUniqueOrThrow({ where: { hash: sha256(c.adminToken) } });
    assert.ok(row.revokedAt);
  });
});
