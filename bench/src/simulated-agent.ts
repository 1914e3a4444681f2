import { type ChannelCredentials, type ClientDuplexStream, type ClientOptions, credentials, Metadata, status as grpcStatus } from '@grpc/grpc-js';
import { type AgentMessage, AgentServiceClient, type ControllerMessage, type DesiredState, type Facts, type JobAssignment, JobOutcome, SectionState, type Welcome } from '@ibex/proto';

/**
 * What a simulated device does with a job it is assigned (programmable per device, for rollout
 * tests and the rollout benchmark): succeed with an output, fail with an error, either after
 * `delayMs` (a slow device), or never answer. An offline device is one the harness does not
 * connect (or stops).
 */
export type JobReaction = { outcome: 'succeed'; output?: unknown; delayMs?: number } | { outcome: 'fail'; error: string; delayMs?: number } | { outcome: 'ignore' };
export type JobBehaviour = (job: JobAssignment, agent: SimulatedAgent) => JobReaction;

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
  /** A job assignment arrived (also one sent again after a reconnect). */
  assigned?(agent: SimulatedAgent, job: JobAssignment, firstTime: boolean): void;
  /** A DesiredState arrived; the agent has already answered it with a StateReport (applied at once). */
  desired?(agent: SimulatedAgent, desired: DesiredState): void;
  /** The controller acknowledged (stored) these update / report ids of this agent. */
  acked?(agent: SimulatedAgent, ids: readonly string[]): void;
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
  /** What this device does with its jobs; by default it answers none. */
  behaviour?: JobBehaviour;
  /**
   * jobId -> times this device executed it. As the real agent's journal does, a job id is
   * executed once; an assignment sent again (after a reconnect) is answered with the same result.
   * Kept across reconnects, so a harness can prove "exactly once".
   */
  readonly executed = new Map<string, number>();
  private readonly reactions = new Map<string, JobReaction>();
  /** Job updates not acknowledged yet, re-sent until they are (as the real agent's journal does). */
  private readonly unacked = new Map<string, AgentMessage>();
  private resendTimer?: NodeJS.Timeout;
  /**
   * Unacknowledged updates are re-sent after every Welcome and, unless 0, every this many ms
   * while connected. The real agent re-sends only after a Welcome (apps/agent/src/agent/agent.ts
   * resendUnacked); with thousands of agents a periodic re-send to a controller that is behind
   * multiplies its work, so bench:agents sets 0.
   */
  resendEveryMs = 5000;
  private client?: AgentServiceClient;
  private call?: ClientDuplexStream<AgentMessage, ControllerMessage>;
  private timer?: NodeJS.Timeout;
  /** The last Welcome's reconnect window (how widely to spread the first reconnect after a break). */
  reconnectWindowMs = 0;
  /** Highest desired-state revision received (and, since a simulated agent applies at once, applied). */
  revision = 0;

  constructor(
    readonly identity: AgentIdentity,
    private readonly target: string,
    private readonly events: AgentEvents,
    /** TLS toward the controller (server certificate checked against a CA); plaintext without. */
    private readonly channelCredentials: ChannelCredentials = credentials.createInsecure(),
  ) {}

  get deviceId(): string {
    return this.identity.deviceId;
  }

  /** Opens the stream and sends Hello; resolves with the Welcome, rejects if the stream ends first or `timeoutMs` passes. */
  connect(timeoutMs: number): Promise<Welcome> {
    if (this.state === 'ended') this.state = 'idle'; // reconnecting after the stream ended
    if (this.state !== 'idle') throw new Error(`agent ${this.identity.deviceName} is ${this.state}`);
    this.state = 'connecting';
    const client = new AgentServiceClient(this.target, this.channelCredentials, AGENT_CHANNEL_OPTIONS);
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
        if (m.msg?.$case === 'assign') return this.onAssign(m.msg.value);
        if (m.msg?.$case === 'ack') {
          for (const id of m.msg.value.ids) this.unacked.delete(id);
          this.events.acked?.(this, m.msg.value.ids);
          return;
        }
        if (m.msg?.$case === 'desired') return this.onDesired(m.msg.value);
        if (m.msg?.$case !== 'welcome' || settled) return;
        settled = true;
        clearTimeout(timeout);
        this.state = 'connected';
        this.reconnectWindowMs = m.msg.value.reconnectWindowMs;
        for (const msg of this.unacked.values()) call.write(msg);
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

  /** Applies a desired state at once: a StateReport of its revision with every section in sync. */
  private onDesired(d: DesiredState): void {
    const revision = Number(d.revision);
    if (revision > this.revision) this.revision = revision;
    let sections: string[] = [];
    try {
      sections = Object.keys(JSON.parse(d.specJson || '{}') as Record<string, unknown>);
    } catch {
      // an unparsable spec is reported with no sections
    }
    const now = Date.now();
    this.sendUpdate({
      msg: {
        $case: 'stateReport',
        value: { reportId: `${this.identity.deviceId}:state:${revision}`, revision, sections: sections.map((section) => ({ section, state: SectionState.SECTION_STATE_IN_SYNC, error: '', detailJson: '', observedAtMs: now })) },
      },
    });
    this.events.desired?.(this, d);
  }

  private onAssign(job: JobAssignment): void {
    let r = this.reactions.get(job.jobId);
    const first = !r;
    if (!r) {
      r = this.behaviour ? this.behaviour(job, this) : { outcome: 'ignore' };
      this.reactions.set(job.jobId, r);
      if (r.outcome !== 'ignore') this.executed.set(job.jobId, (this.executed.get(job.jobId) ?? 0) + 1);
    }
    this.events.assigned?.(this, job, first);
    const reaction = r;
    if (reaction.outcome === 'ignore') return;
    const answer = () => {
      const call = this.call;
      if (!call || this.state !== 'connected') return; // offline now: the job is re-sent on reconnect
      const base = { jobId: job.jobId, attempt: job.attempt };
      this.sendUpdate({ msg: { $case: 'jobUpdate', value: { ...base, updateId: `${job.jobId}:${job.attempt}:started:0`, update: { $case: 'started', value: { startedAtMs: Date.now() } } } } });
      const result =
        reaction.outcome === 'succeed'
          ? { outcome: JobOutcome.JOB_OUTCOME_SUCCEEDED, outputJson: reaction.output === undefined ? '' : JSON.stringify(reaction.output), error: '', retryable: false, finishedAtMs: Date.now() }
          : { outcome: JobOutcome.JOB_OUTCOME_FAILED, outputJson: '', error: reaction.error, retryable: false, finishedAtMs: Date.now() };
      this.sendUpdate({ msg: { $case: 'jobUpdate', value: { ...base, updateId: `${job.jobId}:${job.attempt}:result:0`, update: { $case: 'result', value: result } } } });
    };
    if (reaction.delayMs) setTimeout(answer, reaction.delayMs).unref();
    else answer();
  }

  /** Writes a job update or state report and keeps it until acknowledged; unacknowledged ones go again after a reconnect (and every resendEveryMs). */
  private sendUpdate(m: AgentMessage): void {
    if (m.msg?.$case === 'jobUpdate') this.unacked.set(m.msg.value.updateId, m);
    if (m.msg?.$case === 'stateReport') this.unacked.set(m.msg.value.reportId, m);
    this.call?.write(m);
    if (this.resendEveryMs <= 0) return;
    this.resendTimer ??= setInterval(() => {
      if (this.state !== 'connected') return;
      for (const msg of this.unacked.values()) this.call?.write(msg);
      if (!this.unacked.size) {
        clearInterval(this.resendTimer);
        this.resendTimer = undefined;
      }
    }, this.resendEveryMs);
    this.resendTimer.unref();
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
      lastAppliedRevision: this.revision,
      lastReceivedRevision: this.revision,
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

/** A generations inventory after switching to `current` (valid for the job outputs that carry one). */
function inventory(current: string, previous: string) {
  const gen = (id: string, slot: number, extra: Record<string, unknown>) => ({ id, createdAtMs: Date.now() - slot * 86_400_000, status: 'good', booted: false, current: false, slot, readOnly: true, complete: true, ...extra });
  return {
    volume: '/vol/root',
    current,
    booted: previous,
    lastGood: previous,
    trial: null,
    generations: [gen(current, 0, { current: true }), gen(previous, 1, { booted: true })],
    collectedAtMs: Date.now(),
  };
}

/** An output the controller accepts for the job's type (each type's output schema), so a simulated success counts as one. */
export function simulatedOutput(job: JobAssignment): unknown {
  switch (job.type) {
    case 'state.apply':
      return { revision: 1, sections: [] };
    case 'generations.upgrade':
      return { id: `g-${job.jobId.slice(0, 8)}`, from: 'g1', inventory: inventory(`g-${job.jobId.slice(0, 8)}`, 'g1') };
    case 'generations.rollback': {
      const to = (JSON.parse(job.paramsJson || '{}') as { to?: string }).to ?? 'g0';
      return inventory(to, 'g1');
    }
    default:
      return undefined;
  }
}
