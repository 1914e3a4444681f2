import assert from 'node:assert/strict';
import { AGENT_DELIVERY, type AgentDelivery, JOB_SCHEDULER, type JobScheduler } from '../delivery/agent-delivery.port.js';
import type { Prisma } from '../generated/prisma/client.js';
import type { TestController } from './test-controller.js';

/** Reads a response body as JSON after checking the status; a mismatch shows the body. */
export async function expectStatus<T = any>(res: Response, status: number): Promise<T> {
  const text = await res.text();
  assert.equal(res.status, status, `expected HTTP ${status}, got ${res.status}: ${text}`);
  return (text ? JSON.parse(text) : undefined) as T;
}

/** The error body every failure has; returns it for further checks. */
export async function expectError(res: Response, status: number, code: string): Promise<{ error: { code: string; message: string; issues?: Array<{ path: string; message: string }> }; requestId: string }> {
  const body = await expectStatus(res, status);
  assert.equal(body.error?.code, code, `expected error code ${code}: ${JSON.stringify(body)}`);
  assert.equal(typeof body.error.message, 'string');
  assert.equal(body.requestId, res.headers.get('x-request-id'));
  return body;
}

/** A device row as enrollment would leave it (enrollment itself is the gateway's, over gRPC). */
export async function createDevice(
  c: TestController,
  name: string,
  opts: { labels?: Record<string, string>; online?: boolean; revoked?: boolean; data?: Partial<Prisma.DeviceUncheckedCreateInput> } = {},
) {
  const now = new Date();
  return c.prisma.device.create({
    data: {
      name,
      labels: opts.labels ?? {},
      ...(opts.online ? { connectedAt: now, lastSeenAt: now, connectedTo: 'test' } : {}),
      ...(opts.revoked ? { revokedAt: now } : {}),
      ...opts.data,
    },
  });
}

/** Creates an API token with the given role through the API; returns its secret and id. */
export async function createApiToken(c: TestController, role: 'admin' | 'operator' | 'viewer', extra: { expiresInDays?: number } = {}): Promise<{ id: string; token: string }> {
  const body = await expectStatus(await c.api('/api/v1/api-tokens', { method: 'POST', json: { name: `${role}-${Math.random().toString(36).slice(2, 8)}`, role, ...extra } }), 201);
  return { id: body.id, token: body.token };
}

/** The audit rows for an action on a target, oldest first. */
export function auditRows(c: TestController, action: string, targetId?: string) {
  return c.prisma.auditEvent.findMany({ where: { action, ...(targetId ? { targetId } : {}) }, orderBy: { id: 'asc' } });
}

/** The delivery ports the REST services call after a commit (spy on them with `t.mock.method`). */
export const agentDelivery = (c: TestController): AgentDelivery => c.app.get<AgentDelivery>(AGENT_DELIVERY);
export const jobScheduler = (c: TestController): JobScheduler => c.app.get<JobScheduler>(JOB_SCHEDULER);
