import { type ChannelCredentials, credentials, Metadata, status as grpcStatus, type ServiceError } from '@grpc/grpc-js';
import { AgentServiceClient, type EnrollResponse } from '@ibex/proto';
import { setTimeout as sleep } from 'node:timers/promises';
import { type AgentEvents, type AgentIdentity, benchFacts, SimulatedAgent } from './simulated-agent.js';

/** Runs `fn` over `items` with at most `limit` in flight; stops starting new ones once `signal` aborts. */
export async function forEachLimit<T>(items: readonly T[], limit: number, signal: AbortSignal, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length && !signal.aborted) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** Transient failures worth another try (the controller was busy, not wrong). */
const RETRYABLE = new Set<number>([grpcStatus.UNAVAILABLE, grpcStatus.DEADLINE_EXCEEDED, grpcStatus.RESOURCE_EXHAUSTED]);
const ATTEMPTS = 3;

/** Creates an enrollment token for `uses` devices through the REST API; returns its secret and id. */
export async function createEnrollmentToken(api: string, apiToken: string, uses: number, description: string, labels: Record<string, string> = {}): Promise<{ id: string; token: string }> {
  const res = await fetch(`${api}/api/v1/enrollment-tokens`, {
    method: 'POST',
    headers: { authorization: `Bearer ${apiToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ maxUses: uses, expiresInHours: 1, description, labels }),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`POST ${api}/api/v1/enrollment-tokens answered ${res.status}: ${text.slice(0, 500)}`);
  const body = JSON.parse(text) as { id: string; token: string };
  return { id: body.id, token: body.token };
}

export async function revokeEnrollmentToken(api: string, apiToken: string, id: string): Promise<void> {
  const res = await fetch(`${api}/api/v1/enrollment-tokens/${id}`, {
    method: 'DELETE',
    headers: { authorization: `Bearer ${apiToken}` },
    signal: AbortSignal.timeout(10_000),
  });
  if (!res.ok && res.status !== 404) throw new Error(`DELETE enrollment token ${id} answered ${res.status}`);
}

/**
 * Enrolls `count` devices named `<namePrefix>-<i>` with the Enroll RPC, `concurrency` at a time,
 * over one channel (enrollment is a one-off per device, not part of the steady load).
 */
export async function enrollAll(opts: {
  target: string;
  enrollmentToken: string;
  count: number;
  namePrefix: string;
  concurrency: number;
  deadline: number;
  onProgress: (done: number) => void;
  /** TLS toward the controller; plaintext without. */
  credentials?: ChannelCredentials;
}): Promise<AgentIdentity[]> {
  const client = new AgentServiceClient(opts.target, opts.credentials ?? credentials.createInsecure());
  const identities: AgentIdentity[] = new Array(opts.count);
  const stop = new AbortController();
  let done = 0;
  let failure: Error | undefined;
  try {
    const indexes = Array.from({ length: opts.count }, (_, i) => i);
    await forEachLimit(indexes, opts.concurrency, stop.signal, async (i) => {
      const name = `${opts.namePrefix}-${i}`;
      for (let attempt = 1; ; attempt++) {
        try {
          const r = await enrollOne(client, { enrollmentToken: opts.enrollmentToken, name, facts: benchFacts(name), agentVersion: 'bench', csrPem: '' }, opts.deadline);
          identities[i] = { index: i, deviceId: r.deviceId, deviceName: r.deviceName, credential: r.credential };
          opts.onProgress(++done);
          return;
        } catch (err) {
          const code = (err as ServiceError).code;
          if (attempt < ATTEMPTS && RETRYABLE.has(code) && Date.now() < opts.deadline) {
            await sleep(500 * attempt);
            continue;
          }
          failure ??= new Error(`Enroll of ${name} failed after ${attempt} attempt(s): ${(err as Error).message}`);
          stop.abort();
          return;
        }
      }
    });
  } finally {
    client.close();
  }
  if (failure) throw failure;
  return identities;
}

function enrollOne(client: AgentServiceClient, req: Parameters<AgentServiceClient['enroll']>[0], deadline: number): Promise<EnrollResponse> {
  return new Promise((resolve, reject) => {
    client.enroll(req, new Metadata(), { deadline: Math.min(deadline, Date.now() + 30_000) }, (err, res) => (err ? reject(err) : resolve(res)));
  });
}

export interface ConnectProgress {
  connected: number;
  failedAttempts: number;
}

/**
 * Opens every agent's stream, `concurrency` waiting for a Welcome at once, each retried (like
 * a real agent) up to 3 times on a transient failure. Returns the agents that never connected,
 * with their last error; gives up on the rest at `deadline`.
 */
export async function connectAll(opts: {
  identities: readonly AgentIdentity[];
  target: string;
  events: AgentEvents;
  concurrency: number;
  deadline: number;
  onConnected: (agent: SimulatedAgent) => void;
  onFailedAttempt: (agent: SimulatedAgent, err: Error) => void;
  /** TLS toward the controller (one credentials object for all: the CA is parsed once); plaintext without. */
  credentials?: ChannelCredentials;
}): Promise<{ agents: SimulatedAgent[]; failed: { agent: SimulatedAgent; error: string }[] }> {
  const agents = opts.identities.map((id) => new SimulatedAgent(id, opts.target, opts.events, opts.credentials));
  const failed: { agent: SimulatedAgent; error: string }[] = [];
  const stop = new AbortController();
  const timer = setTimeout(() => stop.abort(), Math.max(0, opts.deadline - Date.now()));
  try {
    await forEachLimit(agents, opts.concurrency, stop.signal, async (agent) => {
      for (let attempt = 1; ; attempt++) {
        try {
          await agent.connect(Math.max(1, Math.min(30_000, opts.deadline - Date.now())));
          opts.onConnected(agent);
          return;
        } catch (err) {
          opts.onFailedAttempt(agent, err as Error);
          const code = (err as ServiceError).code;
          if (attempt < ATTEMPTS && RETRYABLE.has(code) && Date.now() + 1000 * attempt < opts.deadline) {
            await sleep(1000 * attempt);
            continue;
          }
          failed.push({ agent, error: (err as Error).message });
          return;
        }
      }
    });
  } finally {
    clearTimeout(timer);
  }
  const gaveUp = new Set(failed.map((f) => f.agent));
  for (const agent of agents) if (agent.state === 'idle' && !gaveUp.has(agent)) failed.push({ agent, error: 'not started before the connect timeout' });
  return { agents, failed };
}
