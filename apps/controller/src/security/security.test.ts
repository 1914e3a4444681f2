import assert from 'node:assert/strict';
import 'reflect-metadata';
import { execFile } from 'node:child_process';
import { KeyObject, X509Certificate, webcrypto } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Metadata, credentials, status, type ServiceError } from '@grpc/grpc-js';
import { AgentServiceClient } from '@ibex/proto';
import { DeviceAuth } from '../gateway/connect/device-auth.service.js';
import { createEnrollmentToken, keyAndCsr } from '../gateway/testing/fixtures.js';
import { FakeAgent, enrollAgent } from '../testing/fake-agent.js';
import { startTestController, type TestController } from '../testing/test-controller.js';

const unknownEnrollmentToken = () => `ibxe_${'A'.repeat(20)}${Math.random().toString(36).slice(2, 12).padEnd(20, 'x')}`.slice(0, 45);
const enrollError = (c: TestController, token: string) => enrollAgent(c.grpcAddress, { enrollmentToken: token }).then(
  () => assert.fail('enrolled'),
  (err: ServiceError) => err,
);

describe('failed enrollments are limited per source address, across replicas', () => {
  let a: TestController;
  let b: TestController;
  before(async () => {
    const env = { IBEX_AUTH_FAILURES_PER_SOURCE: '3', IBEX_AUTH_FAILURES_PER_TOKEN: '100', IBEX_AUTH_FAILURE_WINDOW_SEC: '60' };
    a = await startTestController({ env });
    b = await startTestController({ db: a.db, redisPrefix: a.config.redisPrefix, env });
  });
  after(async () => {
    await b?.close();
    await a?.close();
  });

  it('refuses with RESOURCE_EXHAUSTED on replica B after three failures on replica A, even a valid token, and spends nothing', async () => {
    for (let i = 0; i < 3; i++) assert.equal((await enrollError(a, unknownEnrollmentToken())).code, status.UNAUTHENTICATED);
    const limited = await enrollError(b, unknownEnrollmentToken());
    assert.equal(limited.code, status.RESOURCE_EXHAUSTED);
    assert.match(limited.details, /too many failed attempts \(3 failed attempts from 127\.0\.0\.1 in the last 60 s\); wait \d+ s/);
    const valid = await createEnrollmentToken(b);
    assert.equal((await enrollError(b, valid)).code, status.RESOURCE_EXHAUSTED);
    assert.equal(await b.prisma.device.count(), 0);
    assert.equal((await b.prisma.enrollmentToken.findFirstOrThrow()).uses, 0);
  });
});

describe('failed stream authentications are limited per presented credential', () => {
  let c: TestController;
  before(async () => {
    c = await startTestController({ env: { IBEX_AUTH_FAILURES_PER_SOURCE: '100', IBEX_AUTH_FAILURES_PER_TOKEN: '2' } });
  });
  after(() => c?.close());

  it('a credential that failed twice is refused with RESOURCE_EXHAUSTED; other credentials are not', async () => {
    const bad = `ibxd_${'b'.repeat(40)}`;
    for (let i = 0; i < 2; i++) {
      const end = await new FakeAgent(c.grpcAddress, bad).ended;
      assert.equal(end.code, status.UNAUTHENTICATED);
    }
    const limited = await new FakeAgent(c.grpcAddress, bad).ended;
    assert.equal(limited.code, status.RESOURCE_EXHAUSTED);
    assert.match(limited.details, /2 failed attempts with this device credential or certificate/);
    assert.equal((await new FakeAgent(c.grpcAddress, `ibxd_${'c'.repeat(40)}`).ended).code, status.UNAUTHENTICATED);
    const device = await enrollAgent(c.grpcAddress, { enrollmentToken: await createEnrollmentToken(c), name: 'still-fine' });
    const ok = await FakeAgent.connect(c.grpcAddress, device.credential);
    ok.close();
  });
});

describe('REST: failed API token authentications, security headers, CORS', () => {
  let c: TestController;
  before(async () => {
    c = await startTestController({ env: { IBEX_AUTH_FAILURES_PER_SOURCE: '2', IBEX_CORS_ORIGINS: 'https://ops.example.com' } });
  });
  after(() => c?.close());

  it('sends security headers, and CORS headers only to an allowed origin', async () => {
    const res = await c.api('/api/v1/devices', { headers: { origin: 'https://evil.example.net' } });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-security-policy') ?? '', /default-src 'self'/);
    assert.match(res.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/);
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    assert.ok(res.headers.get('strict-transport-security'));
    assert.equal(res.headers.get('x-powered-by'), null);
    assert.equal(res.headers.get('access-control-allow-origin'), null);
    const allowed = await c.api('/api/v1/devices', { headers: { origin: 'https://ops.example.com' } });
    assert.equal(allowed.headers.get('access-control-allow-origin'), 'https://ops.example.com');
  });

  it('answers 429 with Retry-After once a source failed twice, even with a valid token', async () => {
    for (let i = 0; i < 2; i++) assert.equal((await c.api('/api/v1/devices', { token: `ibx_${'x'.repeat(40)}` })).status, 401);
    const limited = await c.api('/api/v1/devices', { token: `ibx_${'y'.repeat(40)}` });
    assert.equal(limited.status, 429);
    assert.match(limited.headers.get('retry-after') ?? '', /^\d+$/);
    const body = (await limited.json()) as { error: { code: string; message: string } };
    assert.equal(body.error.code, 'rate_limited');
    assert.match(body.error.message, /wait \d+ s/);
    assert.equal((await c.api('/api/v1/devices')).status, 429);
    assert.equal((await c.api('/healthz', { token: null })).status, 200, 'public routes are not behind the limit');
  });
});

describe('without IBEX_CORS_ORIGINS', () => {
  let c: TestController;
  before(async () => {
    c = await startTestController();
  });
  after(() => c?.close());

  it('sends no CORS headers, also to a preflight', async () => {
    const pre = await fetch(`${c.baseUrl}/api/v1/devices`, { method: 'OPTIONS', headers: { origin: 'https://ops.example.com', 'access-control-request-method': 'DELETE' } });
    assert.equal(pre.headers.get('access-control-allow-origin'), null);
    assert.equal(pre.headers.get('access-control-allow-methods'), null);
  });
});

describe('certificates at enrollment (plaintext gateway)', () => {
  let c: TestController;
  before(async () => {
    c = await startTestController();
  });
  after(() => c?.close());

  it('signs the CSR the agent makes and records the certificate for the device', async () => {
    const { keys, csrPem } = await keyAndCsr('with-cert');
    const res = await enrollAgent(c.grpcAddress, { enrollmentToken: await createEnrollmentToken(c), name: 'with-cert', csrPem });
    const cert = new X509Certificate(res.certificatePem);
    const ca = new X509Certificate((await c.prisma.deviceCa.findUniqueOrThrow({ where: { id: 'default' } })).certPem);
    assert.ok(cert.verify(ca.publicKey), 'signed by the device CA');
    assert.ok(cert.checkPrivateKey(KeyObject.from(keys.privateKey)));
    assert.equal(cert.ca, false);
    const row = await c.prisma.deviceCertificate.findUniqueOrThrow({ where: { serial: cert.serialNumber } });
    assert.equal(row.deviceId, res.deviceId);
    assert.equal(row.notAfter.getTime(), Date.parse(cert.validTo));
  });

  it('refuses a CSR whose signature does not match its key, naming csr_pem, and spends nothing', async () => {
    const good = (await keyAndCsr('x')).csrPem;
    // Flip a byte of the signature (the last bytes of the DER).
    const der = Buffer.from(good.replace(/-----[^-]+-----|\s/g, ''), 'base64');
    der[der.length - 3] = der[der.length - 3]! ^ 0xff;
    const forged = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
    const token = await createEnrollmentToken(c);
    const err = await enrollAgent(c.grpcAddress, { enrollmentToken: token, name: 'forged', csrPem: forged }).then(() => assert.fail('enrolled'), (e: ServiceError) => e);
    assert.equal(err.code, status.INVALID_ARGUMENT);
    assert.match(err.details, /csr_pem/);
    assert.equal(await c.prisma.device.count({ where: { name: 'forged' } }), 0);
    const garbage = await enrollAgent(c.grpcAddress, { enrollmentToken: token, name: 'forged', csrPem: 'hello' }).then(() => assert.fail('enrolled'), (e: ServiceError) => e);
    assert.equal(garbage.code, status.INVALID_ARGUMENT);
    assert.match(garbage.details, /csr_pem: is not a PEM certificate request/);
  });
});

describe('REST failure limits behind a trusted proxy (IBEX_HTTP_TRUST_PROXY)', () => {
  let c: TestController;
  before(async () => {
    c = await startTestController({ env: { IBEX_AUTH_FAILURES_PER_SOURCE: '2', IBEX_HTTP_TRUST_PROXY: 'loopback' } });
  });
  after(() => c?.close());

  it('counts per forwarded client address, so one client cannot lock out the others', async () => {
    const from = (ip: string, token?: string) => c.api('/api/v1/devices', { headers: { 'x-forwarded-for': ip }, ...(token ? { token } : {}) });
    for (let i = 0; i < 2; i++) assert.equal((await from('203.0.113.5', `ibx_${'x'.repeat(40)}`)).status, 401);
    const limited = await from('203.0.113.5');
    assert.equal(limited.status, 429);
    assert.match(((await limited.json()) as { error: { message: string } }).error.message, /from 203\.0\.113\.5/);
    assert.equal((await from('198.51.100.7')).status, 200);
  });
});

function renew(c: TestController, credential: string, csrPem: string): Promise<{ certificatePem: string }> {
  const client = new AgentServiceClient(c.grpcAddress, credentials.createInsecure());
  const md = new Metadata();
  md.set('authorization', `Bearer ${credential}`);
  return new Promise<{ certificatePem: string }>((resolve, reject) => client.renewCertificate({ csrPem }, md, (err, r) => (err ? reject(err) : resolve(r)))).finally(() => client.close());
}

describe('RenewCertificate without mTLS (bearer credential)', () => {
  let c: TestController;
  before(async () => {
    c = await startTestController();
  });
  after(() => c?.close());

  it('signs a new key for an enrolled device and audits it; a bad CSR names csr_pem; a revoked credential is refused', async () => {
    const device = await enrollAgent(c.grpcAddress, { enrollmentToken: await createEnrollmentToken(c), name: 'renewing' });
    const { keys, csrPem } = await keyAndCsr('renewing');
    const cert = new X509Certificate((await renew(c, device.credential, csrPem)).certificatePem);
    assert.ok(cert.checkPrivateKey(KeyObject.from(keys.privateKey)));
    assert.match(cert.subject, /CN=renewing/);
    assert.equal((await c.prisma.deviceCertificate.findMany({ where: { deviceId: device.deviceId } })).length, 1);
    assert.equal(await c.prisma.auditEvent.count({ where: { action: 'device.certificate.renew', targetId: device.deviceId } }), 1);
    const bad = await renew(c, device.credential, '').then(() => assert.fail('renewed'), (e: ServiceError) => e);
    assert.equal(bad.code, status.INVALID_ARGUMENT);
    assert.match(bad.details, /csr_pem/);
    await c.prisma.deviceCredential.updateMany({ where: { deviceId: device.deviceId }, data: { revokedAt: new Date() } });
    const refused = await renew(c, device.credential, csrPem).then(() => assert.fail('renewed'), (e: ServiceError) => e);
    assert.equal(refused.code, status.UNAUTHENTICATED);
    assert.equal((await c.prisma.deviceCertificate.findMany({ where: { deviceId: device.deviceId } })).length, 1, 'nothing issued after the refusals');
  });

  it('stillValid: the device and the credential or certificate that let it in, none revoked', async () => {
    const auth = c.app.get(DeviceAuth);
    const device = await enrollAgent(c.grpcAddress, { enrollmentToken: await createEnrollmentToken(c), name: 'still-valid' });
    await renew(c, device.credential, (await keyAndCsr('still-valid')).csrPem);
    const cred = await c.prisma.deviceCredential.findFirstOrThrow({ where: { deviceId: device.deviceId } });
    const cert = await c.prisma.deviceCertificate.findFirstOrThrow({ where: { deviceId: device.deviceId } });
    const byCred = { id: device.deviceId, name: 'still-valid', credentialId: cred.id };
    const byCert = { id: device.deviceId, name: 'still-valid', certificateId: cert.id };
    assert.equal(await auth.stillValid(byCred), true);
    assert.equal(await auth.stillValid(byCert), true);
    await c.prisma.deviceCertificate.update({ where: { id: cert.id }, data: { revokedAt: new Date() } });
    assert.equal(await auth.stillValid(byCert), false, 'certificate revoked');
    assert.equal(await auth.stillValid(byCred), true, 'the credential still stands');
    const other = await enrollAgent(c.grpcAddress, { enrollmentToken: await createEnrollmentToken(c), name: 'still-valid-other' });
    const otherCred = await c.prisma.deviceCredential.findFirstOrThrow({ where: { deviceId: other.deviceId } });
    assert.equal(await auth.stillValid({ ...byCred, credentialId: otherCred.id }), false, "another device's credential");
    await c.prisma.deviceCredential.update({ where: { id: cred.id }, data: { revokedAt: new Date() } });
    assert.equal(await auth.stillValid(byCred), false, 'credential revoked');
    assert.equal(await auth.stillValid({ id: other.deviceId, name: 'x', credentialId: otherCred.id }), true);
    await c.prisma.device.update({ where: { id: other.deviceId }, data: { revokedAt: new Date() } });
    assert.equal(await auth.stillValid({ id: other.deviceId, name: 'x', credentialId: otherCred.id }), false, 'device revoked');
    assert.equal(await auth.stillValid({ id: '00000000-0000-4000-8000-000000000000', name: 'gone' }), false, 'no such device');
  });

  it('ends a stream whose credential was revoked between authentication and Hello, before any Welcome', async () => {
    const device = await enrollAgent(c.grpcAddress, { enrollmentToken: await createEnrollmentToken(c), name: 'racing' });
    const agent = new FakeAgent(c.grpcAddress, device.credential);
    try {
      await new Promise((r) => setTimeout(r, 500)); // the credential is checked when the call opens
      await c.prisma.deviceCredential.updateMany({ where: { deviceId: device.deviceId }, data: { revokedAt: new Date() } });
      agent.hello();
      const end = await agent.ended;
      assert.equal(end.code, status.UNAUTHENTICATED);
      assert.match(end.details, /revoked while connecting/);
      assert.equal(agent.received.filter((m) => m.$case === 'welcome').length, 0);
    } finally {
      agent.close();
    }
  });
});

describe('an operator-supplied device CA (IBEX_DEVICE_CA_CERT / IBEX_DEVICE_CA_KEY)', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ibex-operator-ca-'));
    await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384', '-nodes', '-days', '30', '-subj', '/CN=Operator device CA',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign', '-keyout', join(dir, 'ca.key'), '-out', join(dir, 'ca.pem')]);
    await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '30', '-subj', '/CN=not a CA',
      '-addext', 'basicConstraints=critical,CA:FALSE', '-keyout', join(dir, 'leaf.key'), '-out', join(dir, 'leaf.pem')]);
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('signs with the operator CA and keeps no CA in the database', async () => {
    const c = await startTestController({ env: { IBEX_DEVICE_CA_CERT: join(dir, 'ca.pem'), IBEX_DEVICE_CA_KEY: join(dir, 'ca.key') } });
    try {
      const { csrPem } = await keyAndCsr('operator-signed');
      const res = await enrollAgent(c.grpcAddress, { enrollmentToken: await createEnrollmentToken(c), name: 'operator-signed', csrPem });
      const { stdout } = await run('openssl', ['verify', '-CAfile', join(dir, 'ca.pem')], res.certificatePem);
      assert.match(stdout, /OK/);
      assert.equal(await c.prisma.deviceCa.count(), 0);
    } finally {
      await c.close();
    }
  });

  it('refuses to start with a certificate that is not a CA, or a key that is not its own, saying which', async () => {
    await assert.rejects(startTestController({ env: { IBEX_DEVICE_CA_CERT: join(dir, 'leaf.pem'), IBEX_DEVICE_CA_KEY: join(dir, 'leaf.key') } }), /is not a CA certificate/);
    await assert.rejects(startTestController({ env: { IBEX_DEVICE_CA_CERT: join(dir, 'ca.pem'), IBEX_DEVICE_CA_KEY: join(dir, 'leaf.key') } }), /private key does not belong to its certificate/);
  });
});

/** Runs a program with an argument array; `input` goes to its stdin. */
function run(cmd: string, args: string[], input?: string): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, (err, stdout, stderr) => (err ? reject(new Error(`${cmd} ${args.join(' ')}: ${stderr || err.message}`)) : resolve({ stdout, stderr })));
    if (input !== undefined) child.stdin?.end(input);
  });
}
