import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { status, type ServiceError } from '@grpc/grpc-js';
import { hashSecret } from '../../common/secrets.js';
import { enrollAgent, sampleFacts } from '../../testing/fake-agent.js';
import { startTestController, type TestController } from '../../testing/test-controller.js';
import { createEnrollmentToken } from '../testing/fixtures.js';

/** Asserts that `p` fails with gRPC `code` and a message matching `message`. */
async function rejectsWith(p: Promise<unknown>, code: status, message: RegExp): Promise<void> {
  await assert.rejects(p, (err: ServiceError) => {
    assert.equal(err.code, code, `code ${err.code} (${err.details})`);
    assert.match(err.details, message);
    return true;
  });
}

describe('Enroll', () => {
  let c: TestController;
  before(async () => {
    c = await startTestController();
  });
  after(async () => {
    await c?.close();
  });

  it('trades a token for a device, a credential shown once, the token labels and an audit event', async () => {
    const token = await createEnrollmentToken(c, { labels: { site: 'berlin', tier: 'edge' }, maxUses: 2 });
    const res = await enrollAgent(c.grpcAddress, { enrollmentToken: token, name: 'router-1', agentVersion: '0.1.0' });

    assert.equal(res.deviceName, 'router-1');
    assert.deepEqual(res.labels, { site: 'berlin', tier: 'edge' });
    assert.match(res.credential, /^ibxd_[A-Za-z0-9]{40}$/);
    const device = await c.prisma.device.findUniqueOrThrow({ where: { id: res.deviceId }, include: { credentials: true, enrollmentToken: true } });
    assert.equal(device.name, 'router-1');
    assert.deepEqual(device.labels, { site: 'berlin', tier: 'edge' });
    assert.equal(device.agentVersion, '0.1.0');
    assert.equal((device.facts as { hostname: string }).hostname, 'edge-1');
    assert.equal(device.credentials.length, 1);
    assert.equal(device.credentials[0]!.hash, hashSecret(res.credential), 'only the hash is stored');
    assert.equal(device.enrollmentToken?.uses, 1);
    const audit = await c.prisma.auditEvent.findFirstOrThrow({ where: { action: 'device.enroll', targetId: res.deviceId } });
    assert.equal(audit.actorType, 'device');
    assert.equal(audit.actorId, res.deviceId);
    assert.equal(audit.actorName, 'router-1');
  });

  it('refuses unknown, revoked, expired and used-up tokens with UNAUTHENTICATED, consuming nothing', async () => {
    const devicesBefore = await c.prisma.device.count();
    await rejectsWith(enrollAgent(c.grpcAddress, { enrollmentToken: `ibxe_${'x'.repeat(40)}` }), status.UNAUTHENTICATED, /not recognised.*new enrollment token/);

    const revoked = await createEnrollmentToken(c, { revoked: true });
    await rejectsWith(enrollAgent(c.grpcAddress, { enrollmentToken: revoked }), status.UNAUTHENTICATED, /was revoked/);

    const expired = await createEnrollmentToken(c, { expiresAt: new Date(Date.now() - 1000) });
    await rejectsWith(enrollAgent(c.grpcAddress, { enrollmentToken: expired }), status.UNAUTHENTICATED, /expired at/);

    const once = await createEnrollmentToken(c, { maxUses: 1 });
    await enrollAgent(c.grpcAddress, { enrollmentToken: once, name: 'used-once' });
    await rejectsWith(enrollAgent(c.grpcAddress, { enrollmentToken: once, name: 'used-twice' }), status.UNAUTHENTICATED, /used 1 of 1 times/);

    assert.equal(await c.prisma.device.count(), devicesBefore + 1);
    assert.equal((await c.prisma.enrollmentToken.findUniqueOrThrow({ where: { hash: hashSecret(once) } })).uses, 1);
  });

  it('validates the request at the edge, naming the field', async () => {
    await rejectsWith(enrollAgent(c.grpcAddress, { enrollmentToken: 'nope' }), status.INVALID_ARGUMENT, /enrollment_token: must be an enrollment token/);
    const token = await createEnrollmentToken(c);
    await rejectsWith(enrollAgent(c.grpcAddress, { enrollmentToken: token, name: 'Bad Name!' }), status.INVALID_ARGUMENT, /^invalid EnrollRequest: name: must be 1-63 lowercase/);
    await rejectsWith(
      enrollAgent(c.grpcAddress, { enrollmentToken: token, facts: { ...sampleFacts(), osRelease: { id: 'x', versionId: 'y', prettyName: 'p'.repeat(300) } } }),
      status.INVALID_ARGUMENT,
      /facts\.os_release\.pretty_name/,
    );
    assert.equal((await c.prisma.enrollmentToken.findUniqueOrThrow({ where: { hash: hashSecret(token) } })).uses, 0);
  });

  it('lets exactly maxUses of many parallel enrollments through', async () => {
    const token = await createEnrollmentToken(c, { maxUses: 1 });
    const results = await Promise.allSettled(Array.from({ length: 12 }, (_, i) => enrollAgent(c.grpcAddress, { enrollmentToken: token, name: `race-${i}` })));
    const ok = results.filter((r) => r.status === 'fulfilled');
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    assert.equal(ok.length, 1);
    assert.equal(refused.length, 11);
    for (const r of refused) assert.equal((r.reason as ServiceError).code, status.UNAUTHENTICATED);
    assert.equal(await c.prisma.device.count({ where: { name: { startsWith: 'race-' } } }), 1);
    assert.equal((await c.prisma.enrollmentToken.findUniqueOrThrow({ where: { hash: hashSecret(token) } })).uses, 1);
  });

  it('refuses a requested name that is taken, and suffixes a derived one', async () => {
    const token = await createEnrollmentToken(c, { maxUses: null });
    await enrollAgent(c.grpcAddress, { enrollmentToken: token, name: 'taken' });
    await rejectsWith(enrollAgent(c.grpcAddress, { enrollmentToken: token, name: 'taken' }), status.ALREADY_EXISTS, /"taken" is already taken/);

    const first = await enrollAgent(c.grpcAddress, { enrollmentToken: token, facts: sampleFacts('Shop-Router_01') });
    assert.equal(first.deviceName, 'shop-router_01', 'derived from the hostname, lowercased');
    const second = await enrollAgent(c.grpcAddress, { enrollmentToken: token, facts: sampleFacts('shop-router_01') });
    assert.match(second.deviceName, /^shop-router_01-[0-9a-f]{4}$/);

    const anonymous = await enrollAgent(c.grpcAddress, { enrollmentToken: token, facts: undefined });
    assert.match(anonymous.deviceName, /^device-[0-9a-f]{8}$/);
  });

  it('gives parallel enrollments that derive the same name distinct names', async () => {
    const token = await createEnrollmentToken(c, { maxUses: null });
    const results = await Promise.all(Array.from({ length: 6 }, () => enrollAgent(c.grpcAddress, { enrollmentToken: token, facts: sampleFacts('twin') })));
    const names = results.map((r) => r.deviceName);
    assert.equal(new Set(names).size, 6, names.join());
    assert.ok(names.includes('twin'));
  });
});
