// Mutual TLS device identity end to end: two controller processes (mTLS on, one device CA in
// their shared Postgres), the built agent binary in a network namespace. The agent makes its
// key pair and CSR at enrollment, connects with the certificate, renews it before it expires
// and reconnects with the new one; expired, foreign-CA, revoked certificates and a bare bearer
// credential are refused. Revoking through replica B ends the stream replica A holds.
import assert from 'node:assert/strict';
import { X509Certificate, createHash, createPrivateKey } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type ChannelCredentials, Metadata, credentials, status } from '@grpc/grpc-js';
import pg from 'pg';
import { AgentServiceClient, type ControllerMessage } from '@ibex/proto';
import { createTestDatabase, type TestDatabase } from '@ibex/migrate';
import { deleteRedisPrefix, testRedisUrl } from '@ibex/test-support';
import { AgentProcess } from './helpers/agent-process.js';
import { ControllerProcess } from './helpers/controller-process.js';
import { execOk, waitFor } from './helpers/exec.js';
import { createNetns, type TestNetns } from './helpers/netns.js';
import { type PemPair, foreignClientCertificate, serverCertificate, signedBy } from './helpers/pki.js';

const DEVICE = 'mtls-device';
const VALIDITY_SEC = 24;

/** Opens Connect, sends a Hello, and resolves with how the call ended (or `welcomed`). */
function connectOnce(target: string, creds: ChannelCredentials, md = new Metadata()): Promise<{ code: number; details: string; welcomed?: boolean }> {
  const client = new AgentServiceClient(target, creds);
  return new Promise((resolve) => {
    const call = client.connect(md, { deadline: Date.now() + 10_000 });
    const done = (r: { code: number; details: string; welcomed?: boolean }) => {
      call.cancel();
      client.close();
      resolve(r);
    };
    call.on('data', (m: ControllerMessage) => m.msg?.$case === 'welcome' && done({ code: status.OK, details: '', welcomed: true }));
    call.on('error', (e: Error & { code?: number; details?: string }) => done({ code: e.code ?? status.UNKNOWN, details: e.details ?? e.message }));
    call.write({ msg: { $case: 'hello', value: { agentVersion: 'test', facts: undefined, lastAppliedRevision: 0, lastReceivedRevision: 0, unfinishedJobs: [], bootId: 'test' } } });
  });
}

describe('device certificates and mutual TLS (two controller replicas)', () => {
  let db: TestDatabase;
  let sql: pg.Client;
  let ns: TestNetns;
  let a: ControllerProcess;
  let b: ControllerProcess;
  let agent: AgentProcess;
  let root: string;
  let dir: string;
  let server: PemPair;
  let caPem: string;
  let firstCert: X509Certificate;

  const certificateFile = () => join(root, 'var/lib/ibex-agent/certificate.json');
  const serverCa = () => credentials.createSsl(Buffer.from(server.certPem));
  const online = async () => (await b.json(`/api/v1/devices/${DEVICE}`)).status === 'online';

  before(async () => {
    db = await createTestDatabase();
    ns = await createNetns();
    root = await mkdtemp(join(tmpdir(), 'ibex-e2e-mtls-root-'));
    dir = await mkdtemp(join(tmpdir(), 'ibex-e2e-mtls-pki-'));
    server = await serverCertificate(dir, ['127.0.0.1', ns.hostIp]);
    const env = {
      IBEX_GRPC_TLS_CERT: server.certFile,
      IBEX_GRPC_TLS_KEY: server.keyFile,
      IBEX_GRPC_MTLS: 'true',
      IBEX_DEVICE_CERT_VALIDITY_SEC: String(VALIDITY_SEC),
      IBEX_HEARTBEAT_INTERVAL_MS: '1000',
      IBEX_PRESENCE_FLUSH_MS: '200',
      IBEX_LOG_LEVEL: 'warn',
    };
    a = new ControllerProcess({ databaseUrl: db.url, env: { ...env, IBEX_REPLICA_ID: 'replica-a' } });
    await a.start();
    b = new ControllerProcess({ databaseUrl: db.url, redisPrefix: a.redisPrefix, env: { ...env, IBEX_REPLICA_ID: 'replica-b' } });
    await b.start();
    sql = new pg.Client({ connectionString: db.url });
    await sql.connect();
    agent = new AgentProcess(ns.prefix(), root);
  });

  after(async () => {
    await agent?.stop('SIGKILL').catch(() => {});
    await a?.stop('SIGKILL').catch(() => {});
    await b?.stop('SIGKILL').catch(() => {});
    await sql?.end().catch(() => {});
    await ns?.destroy();
    if (a) await deleteRedisPrefix(testRedisUrl, a.redisPrefix);
    await db?.drop();
    for (const d of [root, dir]) if (d) await rm(d, { recursive: true, force: true });
  });

  it('both replicas use the one device CA kept in Postgres', async () => {
    const rows = (await sql.query<{ certPem: string }>('SELECT "certPem" FROM device_ca')).rows;
    assert.equal(rows.length, 1);
    caPem = rows[0]!.certPem;
    assert.ok(new X509Certificate(caPem).ca);
  });

  it('enrollment sends a CSR for a key made on the device and stores the certificate the device CA signed', async () => {
    const tok = await b.json('/api/v1/enrollment-tokens', { method: 'POST', json: { maxUses: 1 } });
    const enroll = await agent.cli(['enroll', '--controller', `grpcs://${ns.hostIp}:${a.grpcPort}`, '--ca', server.certFile, '--token', tok.token, '--name', DEVICE]);
    assert.equal(enroll.code, 0, enroll.stderr);
    assert.equal((await stat(certificateFile())).mode & 0o777, 0o600);
    const file = JSON.parse(await readFile(certificateFile(), 'utf8')) as { keyPem: string; certificatePem: string };
    firstCert = new X509Certificate(file.certificatePem);
    assert.ok(firstCert.checkPrivateKey(createPrivateKey(file.keyPem)), 'the certificate is for the key the agent made');
    assert.match(firstCert.subject, new RegExp(`CN=${DEVICE}`));
    const device = await b.json(`/api/v1/devices/${DEVICE}`);
    assert.match(firstCert.subjectAltName ?? '', new RegExp(`urn:ibex:device:${device.id}`));
    // The real openssl agrees that the device CA issued it, for client authentication.
    await writeFile(join(dir, 'device-ca.pem'), caPem);
    await writeFile(join(dir, 'first.pem'), file.certificatePem);
    assert.match(await execOk('openssl', ['verify', '-purpose', 'sslclient', '-CAfile', join(dir, 'device-ca.pem'), join(dir, 'first.pem')]), /: OK/);
    const shown = JSON.parse((await agent.cli(['status', '--json'])).stdout) as { certificate: { serial: string; notAfterMs: number; renewAfterMs: number } };
    assert.equal(shown.certificate.serial, firstCert.serialNumber);
    assert.equal(shown.certificate.notAfterMs, Date.parse(firstCert.validTo));
    assert.ok(shown.certificate.renewAfterMs < shown.certificate.notAfterMs);
    const identity = await b.json(`/api/v1/devices/${DEVICE}/identity`);
    assert.equal(identity.certificates.length, 1);
    assert.equal(identity.certificates[0].serial, firstCert.serialNumber);
    assert.equal(identity.certificates[0].fingerprint, createHash('sha256').update(firstCert.raw).digest('hex'));
  });

  it('the agent connects with its certificate', async () => {
    agent.start();
    await waitFor('online through its certificate', online, 20_000);
  });

  it('a valid bearer credential without a certificate is refused under mTLS', async () => {
    const cred = JSON.parse(await readFile(join(root, 'var/lib/ibex-agent/credential.json'), 'utf8')) as { credential: string };
    const md = new Metadata();
    md.set('authorization', `Bearer ${cred.credential}`);
    const r = await connectOnce(`127.0.0.1:${a.grpcPort}`, serverCa(), md);
    assert.equal(r.code, status.UNAUTHENTICATED, r.details);
    assert.match(r.details, /requires mutual TLS.*bearer credential alone is not accepted/);
  });

  it('a certificate from a foreign CA is refused', async () => {
    const foreign = await foreignClientCertificate(dir, DEVICE);
    const r = await connectOnce(`127.0.0.1:${a.grpcPort}`, credentials.createSsl(Buffer.from(server.certPem), Buffer.from(foreign.keyPem), Buffer.from(foreign.certPem)));
    assert.equal(r.code, status.UNAUTHENTICATED, r.details);
    assert.match(r.details, /no valid device certificate/);
  });

  it('an expired certificate signed by the device CA, and known to the controller, is refused', async () => {
    const caKey = (await sql.query<{ keyPem: string }>('SELECT "keyPem" FROM device_ca')).rows[0]!.keyPem;
    const now = Date.now();
    const expired = await signedBy(caPem, caKey, DEVICE, new Date(now - 2 * 3600_000), new Date(now - 3600_000));
    const device = await b.json(`/api/v1/devices/${DEVICE}`);
    await sql.query('INSERT INTO device_certificate (id, "deviceId", serial, fingerprint, "notBefore", "notAfter") VALUES (gen_random_uuid(), $1, $2, $3, $4, $5)', [
      device.id,
      expired.serial.toUpperCase(),
      createHash('sha256').update(expired.der).digest('hex'),
      new Date(now - 2 * 3600_000),
      new Date(now - 3600_000),
    ]);
    const r = await connectOnce(`127.0.0.1:${a.grpcPort}`, credentials.createSsl(Buffer.from(server.certPem), Buffer.from(expired.keyPem), Buffer.from(expired.certPem)));
    assert.equal(r.code, status.UNAUTHENTICATED, r.details);
    assert.match(r.details, /no valid device certificate/);
  });

  it('the agent renews its certificate before it expires and, once the first one expired, reconnects with the new one', async () => {
    const renewed = await waitFor(
      'a second certificate',
      async () => {
        const identity = await b.json(`/api/v1/devices/${DEVICE}/identity`);
        if (identity.certificates.length < 3) return undefined; // the expired one above, the first, the renewed
        // The controller records the new certificate before the agent has written it to its data dir.
        const onDisk = new X509Certificate((JSON.parse(await readFile(certificateFile(), 'utf8')) as { certificatePem: string }).certificatePem);
        return onDisk.serialNumber !== firstCert.serialNumber ? identity.certificates : undefined;
      },
      VALIDITY_SEC * 1000,
      250,
    );
    const file = JSON.parse(await readFile(certificateFile(), 'utf8')) as { keyPem: string; certificatePem: string };
    const second = new X509Certificate(file.certificatePem);
    assert.notEqual(second.serialNumber, firstCert.serialNumber);
    assert.equal(renewed[0].serial, second.serialNumber, 'the newest certificate is the one on the device');
    assert.ok(Date.parse(second.validFrom) > Date.parse(firstCert.validFrom), 'issued later');
    assert.ok(Date.now() < Date.parse(firstCert.validTo), 'renewed before the first one expired');
    assert.equal(agent.events(/device certificate renewed/).length, 1);
    // Past the first certificate's end, a new connection can only be made with the renewed one.
    await new Promise((r) => setTimeout(r, Math.max(0, Date.parse(firstCert.validTo) + 1000 - Date.now())));
    const restartedAt = Date.now();
    await a.restart();
    await waitFor('online again after the restart', async () => {
      const d = await b.json(`/api/v1/devices/${DEVICE}`);
      return d.status === 'online' && Date.parse(d.connectedAt) >= restartedAt;
    }, 30_000).catch((err: Error) => {
      throw new Error(`${err.message}\nagent log (end):\n${agent.logs.slice(-4000)}`);
    });
  });

  it('revoking the certificate through B ends the stream held by A within 1 s, and it cannot reconnect', async () => {
    const current = new X509Certificate(JSON.parse(await readFile(certificateFile(), 'utf8')).certificatePem as string);
    const t0 = Date.now();
    const revoked = await b.json(`/api/v1/devices/${DEVICE}/certificates/${current.serialNumber}/revoke`, { method: 'POST' });
    assert.ok(revoked.revokedAt);
    await waitFor('the stream ended', async () => (await b.json(`/api/v1/devices/${DEVICE}`)).connectedAt === null, 5000, 20);
    const latencyMs = Date.now() - t0;
    console.log(`certificate revocation through replica B ended the stream on replica A after ${latencyMs} ms`);
    assert.ok(latencyMs < 1000, `took ${latencyMs} ms`);
    await waitFor('the agent refused', async () => JSON.parse((await agent.cli(['status', '--json'])).stdout).credentialRefused === true, 10_000);
    const file = JSON.parse(await readFile(certificateFile(), 'utf8')) as { keyPem: string; certificatePem: string };
    const r = await connectOnce(`127.0.0.1:${a.grpcPort}`, credentials.createSsl(Buffer.from(server.certPem), Buffer.from(file.keyPem), Buffer.from(file.certificatePem)));
    assert.equal(r.code, status.UNAUTHENTICATED);
    assert.match(r.details, /certificate \(serial [0-9A-F]+\) was revoked/);
    const audit = await b.json(`/api/v1/audit?action=device.certificate.revoke`);
    assert.equal(audit.items.length, 1);
  });
});
