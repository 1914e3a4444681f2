import { credentials, Metadata, type ClientDuplexStream, type ServiceError, type status } from '@grpc/grpc-js';
import { AgentServiceClient, type AgentMessage, type ControllerMessage, type EnrollRequest, type EnrollResponse, type Facts, type Hello } from '@ibex/proto';
import type { GenerationsInventory } from '@ibex/spec';
import { waitFor } from './wait-for.js';

export type Inbound = NonNullable<ControllerMessage['msg']>;
export type Outbound = NonNullable<AgentMessage['msg']>;
export type InboundOf<C extends Inbound['$case']> = Extract<Inbound, { $case: C }>['value'];

/** How a stream ended, as the agent sees it. */
export interface StreamEnd {
  code: status;
  details: string;
}

export function sampleFacts(hostname = 'edge-1'): Facts {
  return {
    hostname,
    osRelease: { id: 'alpine', versionId: '3.20.3', prettyName: 'Alpine Linux v3.20' },
    kernel: '6.6.58-0-lts',
    arch: 'x86_64',
    interfaces: [{ name: 'eth0', mac: '52:54:00:12:34:56', mtu: 1500, up: true, addresses: ['192.0.2.10/24'] }],
    filesystems: [{ device: '/dev/vda1', mountpoint: '/', fstype: 'ext4', sizeBytes: 8e9, usedBytes: 2e9, readOnly: false }],
    agentVersion: '0.1.0',
    uptimeSeconds: 1234,
    memoryTotalBytes: 512 * 1024 * 1024,
    cpuCount: 2,
    collectedAtMs: 1_700_000_000_000,
    generationsJson: '',
  };
}

/**
 * A generations inventory as an agent reports it: `g3` just switched to (trial, current, not
 * booted yet), `g2` booted and last good, `g1` an older fallback, `g0` bad, `g4` half-made.
 */
export function sampleGenerations(): GenerationsInventory {
  const gen = (id: string, status: 'trial' | 'good' | 'bad', slot: number | null, extra: Partial<GenerationsInventory['generations'][number]> = {}) => ({
    id,
    createdAtMs: slot === null ? null : 1_700_000_000_000 - slot * 86_400_000,
    status,
    booted: false,
    current: false,
    slot,
    readOnly: true,
    complete: true,
    ...extra,
  });
  return {
    volume: '/mnt/ibex-root',
    current: 'g3',
    booted: 'g2',
    lastGood: 'g2',
    trial: { id: 'g3', deadlineAtMs: 1_700_000_600_000, bootsLeft: 2 },
    generations: [
      gen('g3', 'trial', 0, { current: true }),
      gen('g2', 'good', 1, { booted: true }),
      gen('g1', 'good', 2),
      gen('g0', 'bad', 3),
      gen('g4', 'trial', null, { readOnly: false, complete: false }),
    ],
    collectedAtMs: 1_700_000_100_000,
  };
}

/** Calls Enroll like `ibex-agent enroll` does; rejects with the gRPC ServiceError. */
export async function enrollAgent(address: string, req: Partial<EnrollRequest> & { enrollmentToken: string }): Promise<EnrollResponse> {
  const client = new AgentServiceClient(address, credentials.createInsecure());
  try {
    return await new Promise<EnrollResponse>((resolve, reject) =>
      client.enroll({ name: '', facts: sampleFacts(), agentVersion: '0.1.0', ...req, csrPem: req.csrPem ?? '' }, (err: ServiceError | null, res: EnrollResponse) => (err ? reject(err) : resolve(res))),
    );
  } finally {
    client.close();
  }
}

/**
 * A scripted agent stream for tests: a real grpc-js client of the generated AgentService.
 * It records every message the controller sends; `next()` waits for (and consumes) the next
 * one of a kind. Always `close()` it (tests do so in `finally`/`after`).
 */
export class FakeAgent {
  readonly received: Inbound[] = [];
  readonly ended: Promise<StreamEnd>;
  private readonly consumed = new Set<number>();
  private readonly client: AgentServiceClient;
  private readonly call: ClientDuplexStream<AgentMessage, ControllerMessage>;
  private endedWith?: StreamEnd;

  constructor(address: string, credential: string | null) {
    this.client = new AgentServiceClient(address, credentials.createInsecure());
    const md = new Metadata();
    if (credential !== null) md.set('authorization', `Bearer ${credential}`);
    this.call = this.client.connect(md);
    this.call.on('data', (m: ControllerMessage) => m.msg && this.received.push(m.msg));
    this.call.on('error', () => {}); // the status is reported through `ended`
    this.ended = new Promise((resolve) =>
      this.call.on('status', (s) => {
        this.endedWith = { code: s.code, details: s.details };
        resolve(this.endedWith);
      }),
    );
  }

  /** Opens a stream, sends Hello and waits for Welcome. */
  static async connect(address: string, credential: string, hello: Partial<Hello> = {}): Promise<FakeAgent> {
    const agent = new FakeAgent(address, credential);
    agent.hello(hello);
    try {
      await agent.next('welcome');
    } catch (err) {
      agent.close();
      throw err;
    }
    return agent;
  }

  get endStatus(): StreamEnd | undefined {
    return this.endedWith;
  }

  send(msg: Outbound): void {
    this.call.write({ msg });
  }

  hello(h: Partial<Hello> = {}): void {
    this.send({
      $case: 'hello',
      value: { agentVersion: '0.1.0', facts: sampleFacts(), lastAppliedRevision: 0, lastReceivedRevision: 0, unfinishedJobs: [], bootId: 'boot-1', ...h },
    });
  }

  heartbeat(seq: number): void {
    this.send({ $case: 'heartbeat', value: { seq, sentAtMs: Date.now() } });
  }

  /** Waits for the first not yet consumed message of `kind` (matching `match`) and consumes it. */
  async next<C extends Inbound['$case']>(kind: C, match: (v: InboundOf<C>) => boolean = () => true, timeoutMs = 10_000): Promise<InboundOf<C>> {
    const index = await waitFor(
      `a ${kind} message`,
      () => {
        const i = this.received.findIndex((m, j) => !this.consumed.has(j) && m.$case === kind && match(m.value as InboundOf<C>));
        if (i < 0 && this.endedWith) throw new Error(`stream ended (code ${this.endedWith.code}: ${this.endedWith.details}) before a ${kind} message`);
        return i >= 0 ? i : undefined;
      },
      { timeoutMs, intervalMs: 10 },
    );
    this.consumed.add(index);
    return this.received[index]!.value as InboundOf<C>;
  }

  /** Every message of `kind` received so far (consumed or not). */
  all<C extends Inbound['$case']>(kind: C): InboundOf<C>[] {
    return this.received.filter((m) => m.$case === kind).map((m) => m.value as InboundOf<C>);
  }

  /** Waits for an Ack carrying `id`. */
  async acked(id: string, timeoutMs?: number): Promise<void> {
    await this.next('ack', (a) => a.ids.includes(id), timeoutMs);
  }

  close(): void {
    this.call.cancel();
    this.client.close();
  }
}
