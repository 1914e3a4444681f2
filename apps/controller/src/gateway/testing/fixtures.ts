// tsyringe (used by @peculiar/x509) needs the Reflect metadata polyfill before it loads.
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import type { EnrollResponse } from '@ibex/proto';
import { displayPrefix, hashSecret, newSecret } from '../../common/secrets.js';
import { AGENT_DELIVERY, JOB_SCHEDULER, type AgentDelivery, type JobScheduler } from '../../delivery/agent-delivery.port.js';
import type { Job, Prisma } from '../../generated/prisma/client.js';
import { enrollAgent, FakeAgent, sampleFacts } from '../../testing/fake-agent.js';
import type { TestController } from '../../testing/test-controller.js';

// Test data made directly with Prisma and the gateway's ports (the REST API is built elsewhere).

export interface TokenOptions {
  maxUses?: number | null;
  expiresAt?: Date;
  labels?: Record<string, string>;
  revoked?: boolean;
}

/** An enrollment token row; returns the secret. */
export async function createEnrollmentToken(c: TestController, opts: TokenOptions = {}): Promise<string> {
  const secret = newSecret('enrollmentToken');
  await c.prisma.enrollmentToken.create({
    data: {
      prefix: displayPrefix(secret),
      hash: hashSecret(secret),
      labels: opts.labels ?? {},
      expiresAt: opts.expiresAt ?? new Date(Date.now() + 3600_000),
      maxUses: opts.maxUses === undefined ? 1 : opts.maxUses,
      revokedAt: opts.revoked ? new Date() : null,
    },
  });
  return secret;
}

/** Enrolls a device over gRPC with a fresh token. */
export async function enrollDevice(c: TestController, name = ''): Promise<EnrollResponse> {
  return enrollAgent(c.grpcAddress, { enrollmentToken: await createEnrollmentToken(c), name, facts: sampleFacts(name || 'edge-host') });
}

/** Enrolls a device and connects it (Hello answered by Welcome). */
export async function connectedDevice(c: TestController, name = ''): Promise<{ device: EnrollResponse; agent: FakeAgent }> {
  const device = await enrollDevice(c, name);
  return { device, agent: await FakeAgent.connect(c.grpcAddress, device.credential) };
}

export interface JobOptions {
  type?: string;
  params?: Prisma.InputJsonValue;
  timeoutMs?: number;
  maxAttempts?: number;
  expiresAt?: Date;
}

/** A queued job, announced through JOB_SCHEDULER as the REST API does after commit. */
export async function createJob(c: TestController, deviceId: string, opts: JobOptions = {}, scheduler = c.app.get<JobScheduler>(JOB_SCHEDULER)): Promise<Job> {
  const job = await c.prisma.job.create({
    data: {
      deviceId,
      type: opts.type ?? 'facts.collect',
      params: opts.params ?? {},
      timeoutMs: opts.timeoutMs ?? 60_000,
      maxAttempts: opts.maxAttempts ?? 3,
      expiresAt: opts.expiresAt ?? new Date(Date.now() + 3600_000),
    },
  });
  await scheduler.jobCreated(job);
  return job;
}

/** Writes desired revision n+1 for the device and kicks it, as the REST API does. */
export async function setDesiredState(c: TestController, deviceId: string, spec: Prisma.InputJsonValue): Promise<number> {
  const revision = await c.prisma.$transaction(async (tx) => {
    const d = await tx.device.update({ where: { id: deviceId }, data: { desiredRevision: { increment: 1 } } });
    await tx.desiredRevision.create({ data: { deviceId, revision: d.desiredRevision, spec } });
    return d.desiredRevision;
  });
  await c.app.get<AgentDelivery>(AGENT_DELIVERY).kick(deviceId);
  return revision;
}

export const filesSpec = (content: string) => ({ files: { entries: [{ path: '/etc/motd', content }] } });

/** A key pair and its CSR, made the way any PKCS#10 client makes them. */
export async function keyAndCsr(cn: string): Promise<{ keys: webcrypto.CryptoKeyPair; csrPem: string }> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: `CN=${cn}`, keys: keys as never, signingAlgorithm: alg }, webcrypto as never);
  return { keys, csrPem: csr.toString('pem') };
}
