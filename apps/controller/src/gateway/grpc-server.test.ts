import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { it } from 'node:test';
import { credentials, Metadata, type ServiceError } from '@grpc/grpc-js';
import { AgentServiceClient, type EnrollResponse } from '@ibex/proto';
import { sampleFacts } from '../testing/fake-agent.js';
import { startTestController } from '../testing/test-controller.js';
import { createEnrollmentToken } from './testing/fixtures.js';

it('serves agents over TLS when IBEX_GRPC_TLS_CERT and IBEX_GRPC_TLS_KEY are set', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ibex-tls-'));
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  await promisify(execFile)('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-keyout', key, '-out', cert,
  ]);
  const c = await startTestController({ env: { IBEX_GRPC_TLS_CERT: cert, IBEX_GRPC_TLS_KEY: key } });
  const tls = new AgentServiceClient(c.grpcAddress, credentials.createSsl(await readFile(cert)));
  const plain = new AgentServiceClient(c.grpcAddress, credentials.createInsecure());
  try {
    const token = await createEnrollmentToken(c);
    const res = await new Promise<EnrollResponse>((resolve, reject) =>
      tls.enroll({ enrollmentToken: token, name: 'tls-device', facts: sampleFacts(), agentVersion: '0.1.0', csrPem: '' }, (err: ServiceError | null, r: EnrollResponse) => (err ? reject(err) : resolve(r))),
    );
    assert.equal(res.deviceName, 'tls-device');
    // A plaintext client cannot talk to the TLS port.
    await assert.rejects(
      new Promise((resolve, reject) =>
        plain.enroll({ enrollmentToken: token, name: 'plain', facts: undefined, agentVersion: '', csrPem: '' }, new Metadata(), { deadline: Date.now() + 3000 }, (err: ServiceError | null, r: EnrollResponse) => (err ? reject(err) : resolve(r))),
      ),
    );
  } finally {
    tls.close();
    plain.close();
    await c.close();
    await rm(dir, { recursive: true, force: true });
  }
});
