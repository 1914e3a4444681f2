import assert from 'node:assert/strict';
import 'reflect-metadata';
import { KeyObject, X509Certificate, webcrypto } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { status, type ServiceError } from '@grpc/grpc-js';
import * as x509 from '@peculiar/x509';
import { createEnrollmentToken } from '../gateway/testing/fixtures.js';
import { FakeAgent, enrollAgent } from '../testing/fake-agent.js';
import { startTestController, type TestController } from '../testing/test-controller.js';

/** A key pair and its CSR, made the way any PKCS#10 client makes them. */
async function keyAndCsr(cn: string): Promise<{ keys: webcrypto.CryptoKeyPair; csrPem: string }> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: `CN=${cn}`, keys: keys as never, signingAlgorithm: alg }, webcrypto as never);
  return { keys, csrPem: csr.toString('pem') };
}

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
