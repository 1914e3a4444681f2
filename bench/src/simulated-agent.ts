import { type ClientDuplexStream, type ClientOptions, credentials, Metadata, status as grpcStatus } from '@grpc/grpc-js';
import { type AgentMessage, AgentServiceClient, type ControllerMessage, type Facts, type Welcome } from '@ibex/proto';

export interface AgentIdentity {
  index: number;
  deviceId: string;
  deviceName: string;
  credential: string;
}

export interface AgentEvents {
  /** A heartbeat was written to the stream at `sentAtMs`. */
  heartbeat(agent: SimulatedAgent, sentAtMs: number): void;
  /** A welcomed stream ended (the controller closed it, or the connection broke). */
  ended(agent: SimulatedAgent, code: number, details: string): void;
}

/**
 * Each agent gets its own channel and, through the local subchannel pool, its own TCP
 * connection, as real devices have. Without it grpc-js would share one connection per target.
 * Keepalive as the real agent sets it (apps/agent/src/connection/connection.ts).
 */
export const AGENT_CHANNEL_OPTIONS: Partial<ClientOptions> = {
  'grpc.use_local_subchannel_pool': 1,
  'grpc.keepalive_time_ms': 60_000,
  'grpc.keepalive_timeout_ms': 20_000,
  'grpc.enable_retries': 0,
};

export type AgentState = 'idle' | 'connecting' | 'connected' | 'ended';

/**
 * One simulated agent: a real Connect stream with Hello, Welcome and heartbeats, doing what
 * apps/agent does on the wire and nothing else (no jobs, no desired state).
 */
export class SimulatedAgent {
  state: AgentState = 'idle';
  heartbeatsSent = 0;
  endedWith?: { code: number; details: string };
  private client?: AgentServiceClient;
  private call?: ClientDuplexStream<AgentMessage, ControllerMessage>;
  private timer?: NodeJS.Timeout;

  constructor(
    readonly identity: AgentIdentity,
    private readonly target: string,
    private readonly events: AgentEvents,
  ) {}

  get deviceId(): string {
    return this.identity.deviceId;
  }

  /** Opens the stream and sends Hello; resolves with the Welcome, rejects if the stream ends first or `timeoutMs` passes. */
  connect(timeoutMs: number): Promise<Welcome> {
    if (this.state !== 'idle') throw new Error(`agent ${this.identity.deviceName} is ${this.state}`);
    this.state = 'connecting';
    const client = new AgentServiceClient(this.target, credentials.createInsecure(), AGENT_CHANNEL_OPTIONS);
    const md = new Metadata();
    md.set('authorization', `Bearer ${this.identity.credential}`);
    const call = client.connect(md);
    this.client = client;
    this.call = call;

    return new Promise<Welcome>((resolve, reject) => {
      let settled = false;
      const timeout = setTimeout(() => fail(grpcStatus.DEADLINE_EXCEEDED, `no Welcome within ${timeoutMs} ms`), timeoutMs);
      const fail = (code: number, details: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(timeout);
        this.close();
        this.state = 'idle';
        reject(Object.assign(new Error(`${grpcStatus[code] ?? code}: ${details}`), { code }));
      };
      const ended = (code: number, details: string) => {
        if (!settled) return fail(code, details);
        if (this.state !== 'connected') return;
        this.state = 'ended';
        this.endedWith = { code, details };
        this.close();
        this.events.ended(this, code, details);
      };
      call.on('data', (m: ControllerMessage) => {
        if (m.msg?.$case !== 'welcome' || settled) return;
        settled = true;
        clearTimeout(timeout);
        this.state = 'connected';
        resolve(m.msg.value);
      });
      call.on('error', (err: Error & { code?: number; details?: string }) => ended(err.code ?? grpcStatus.UNKNOWN, err.details ?? err.message));
      call.on('status', (s: { code: number; details: string }) => ended(s.code, s.details));
      call.on('end', () => ended(grpcStatus.OK, 'the controller ended the stream'));
      call.write({ msg: { $case: 'hello', value: this.hello() } });
    });
  }

  /** Heartbeats every `intervalMs`, the first after `firstDelayMs` (jitter, so they spread out). */
  startHeartbeats(intervalMs: number, firstDelayMs: number): void {
    let seq = 0;
    const beat = () => {
      if (this.state !== 'connected') return;
      const sentAtMs = Date.now();
      this.call!.write({ msg: { $case: 'heartbeat', value: { seq: ++seq, sentAtMs } } });
      this.heartbeatsSent++;
      this.events.heartbeat(this, sentAtMs);
    };
    this.timer = setTimeout(() => {
      beat();
      this.timer = setInterval(beat, intervalMs);
    }, firstDelayMs);
  }

  stopHeartbeats(): void {
    clearTimeout(this.timer);
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Half-closes the stream and closes the channel. */
  stop(): void {
    this.stopHeartbeats();
    if (this.state === 'connected') this.state = 'ended';
    this.close();
  }

  private close(): void {
    this.stopHeartbeats();
    const call = this.call;
    const client = this.client;
    this.call = undefined;
    this.client = undefined;
    if (call) {
      call.end();
      call.cancel();
    }
    client?.close();
  }

  private hello() {
    return {
      agentVersion: 'bench',
      facts: benchFacts(this.identity.deviceName),
      lastAppliedRevision: 0,
      lastReceivedRevision: 0,
      unfinishedJobs: [],
      bootId: `bench-${this.identity.index}-${Date.now().toString(36)}`,
    };
  }
}

/** Facts of the size a small router reports, so the Hello write is as heavy as a real one. */
export function benchFacts(hostname: string): Facts {
  return {
    hostname,
    osRelease: { id: 'alpine', versionId: '3.20.3', prettyName: 'Alpine Linux v3.20' },
    kernel: '6.6.58-0-lts',
    arch: 'x86_64',
    interfaces: [
      { name: 'lo', mac: '00:00:00:00:00:00', mtu: 65536, up: true, addresses: ['127.0.0.1/8', '::1/128'] },
      { name: 'eth0', mac: '52:54:00:12:34:56', mtu: 1500, up: true, addresses: ['192.0.2.10/24', 'fe80::5054:ff:fe12:3456/64'] },
      { name: 'wlan0', mac: '52:54:00:12:34:57', mtu: 1500, up: false, addresses: [] },
    ],
    filesystems: [
      { device: '/dev/mmcblk0p2', mountpoint: '/', fstype: 'ext4', sizeBytes: 7_516_192_768, usedBytes: 1_288_490_188, readOnly: false },
      { device: 'tmpfs', mountpoint: '/tmp', fstype: 'tmpfs', sizeBytes: 268_435_456, usedBytes: 4096, readOnly: false },
    ],
    agentVersion: 'bench',
    uptimeSeconds: 3600,
    memoryTotalBytes: 1_073_741_824,
    cpuCount: 4,
    collectedAtMs: Date.now(),
    generationsJson: '',
  };
}
