import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { AuditService } from '../../audit/audit.service.js';
import { Clock } from '../../common/clock.js';
import { GrpcServer } from '../../gateway/grpc-server.service.js';
import { auditRows, expectError, expectStatus } from '../../testing/api-fixtures.js';
import { startTestController, type TestController } from '../../testing/test-controller.js';
import { EnrollmentTokensService } from './enrollment-tokens.service.js';

/** fetch() will not send a made-up Host header; node:http will. */
function postWithHost(c: TestController, path: string, host: string, json: unknown): Promise<{ status: number; body: any }> {
  const url = new URL(path, c.baseUrl);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: { host, authorization: `Bearer ${c.adminToken}`, 'content-type': 'application/json' } },
      (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(json));
  });
}

describe('enrollment tokens', () => {
  let c: TestController;
  before(async () => (c = await startTestController()));
  after(() => c?.close());

  it('creates a one-use, 24-hour token by default with a ready enroll command', async () => {
    const grpcPort = c.app.get(GrpcServer).port;
    assert.ok(grpcPort > 0);
    const { status, body } = await postWithHost(c, '/api/v1/enrollment-tokens', 'fleet.example.net:8080', { description: 'lab', labels: { site: 'lab' } });
    assert.equal(status, 201, JSON.stringify(body));
    assert.match(body.token, /^ibxe_[A-Za-z0-9]{40}$/);
    assert.equal(body.enrollCommand, `ibex-agent enroll --controller grpc://fleet.example.net:${grpcPort} --token ${body.token}`);
    assert.equal(body.maxUses, 1);
    assert.equal(body.uses, 0);
    assert.equal(body.status, 'active');
    assert.deepEqual(body.labels, { site: 'lab' });
    assert.ok(Math.abs(Date.parse(body.expiresAt) - Date.now() - 24 * 3_600_000) < 60_000);
    const row = await c.prisma.enrollmentToken.findUniqueOrThrow({ where: { id: body.id } });
    assert.equal(row.hash, createHash('sha256').update(body.token).digest('hex'));
    const list = await expectStatus(await c.api('/api/v1/enrollment-tokens'), 200);
    assert.ok(!JSON.stringify(list).includes(body.token), 'listing never shows the secret');
    const [audit] = await auditRows(c, 'enrollment_token.create', body.id);
    assert.ok(audit);
    assert.ok(!JSON.stringify(audit.data).includes(body.token), 'nor does the audit log');
  });

  it('does not put an unsafe Host header into the command', async () => {
    const { status, body } = await postWithHost(c, '/api/v1/enrollment-tokens', 'evil;rm -rf', {});
    assert.equal(status, 201, JSON.stringify(body));
    assert.match(body.enrollCommand, /^ibex-agent enroll --controller grpc:\/\/CONTROLLER_HOST:\d+ --token ibxe_/);
  });

  it('names the configured gRPC port, and a placeholder when the port is 0 (any free one)', () => {
    const service = c.app.get(EnrollmentTokensService);
    assert.equal(service.enrollCommand('ibxe_x', 'fleet.example.net'), `ibex-agent enroll --controller grpc://fleet.example.net:${c.config.grpc.port} --token ibxe_x`);
    const anyPort = new EnrollmentTokensService(c.prisma, c.app.get(AuditService), c.app.get(Clock), { ...c.config, grpc: { ...c.config.grpc, port: 0 } });
    assert.equal(anyPort.enrollCommand('ibxe_x', 'fleet.example.net'), 'ibex-agent enroll --controller grpc://fleet.example.net:CONTROLLER_GRPC_PORT --token ibxe_x');
  });

  it('accepts unlimited uses and refuses bad input by field', async () => {
    const unlimited = await expectStatus(await c.api('/api/v1/enrollment-tokens', { method: 'POST', json: { maxUses: null, expiresInHours: 2 } }), 201);
    assert.equal(unlimited.maxUses, null);
    const body = await expectError(
      await c.api('/api/v1/enrollment-tokens', { method: 'POST', json: { maxUses: 0, expiresInHours: 9000, labels: { 'bad key!': 'x', ok: 'not ok!' } } }),
      400,
      'validation_failed',
    );
    assert.deepEqual(body.error.issues?.map((i) => i.path).sort(), ['expiresInHours', 'labels.bad key!', 'labels.ok', 'maxUses']);
  });

  it('shows each status: active, expired, exhausted, revoked', async () => {
    const make = async () => (await expectStatus(await c.api('/api/v1/enrollment-tokens', { method: 'POST', json: { maxUses: 2 } }), 201)).id as string;
    const [active, expired, exhausted, revoked] = [await make(), await make(), await make(), await make()];
    await c.prisma.enrollmentToken.update({ where: { id: expired }, data: { expiresAt: new Date(Date.now() - 1000) } });
    await c.prisma.enrollmentToken.update({ where: { id: exhausted }, data: { uses: 2 } });
    await c.prisma.enrollmentToken.update({ where: { id: active }, data: { uses: 1 } });
    await expectStatus(await c.api(`/api/v1/enrollment-tokens/${revoked}`, { method: 'DELETE' }), 204);

    const list = await expectStatus(await c.api('/api/v1/enrollment-tokens?limit=1000'), 200);
    const byId = new Map<string, { status: string; uses: number }>(list.items.map((t: { id: string; status: string; uses: number }) => [t.id, t]));
    assert.equal(byId.get(active)?.status, 'active');
    assert.equal(byId.get(active)?.uses, 1);
    assert.equal(byId.get(expired)?.status, 'expired');
    assert.equal(byId.get(exhausted)?.status, 'exhausted');
    assert.equal(byId.get(revoked)?.status, 'revoked');
    assert.ok((await c.prisma.enrollmentToken.findUniqueOrThrow({ where: { id: revoked } })).revokedAt);
    assert.equal((await auditRows(c, 'enrollment_token.revoke', revoked)).length, 1);
  });

  it('revoking an unknown token is a 404', async () => {
    await expectError(await c.api('/api/v1/enrollment-tokens/3b241101-e2bb-4255-8caf-4136c566a962', { method: 'DELETE' }), 404, 'not_found');
  });
});
