// A worker process of the load harness (child_process.fork): runs its share of simulated agents,
// or the REST load, and reports to the harness over IPC. Not run by hand.
import { credentials, type ChannelCredentials } from '@grpc/grpc-js';
import { setTimeout as sleep } from 'node:timers/promises';
import { Backoff } from './backoff.js';
import { connectAll } from './fleet.js';
import { FixedRateLoad } from './rest-load.js';
import type { AgentEvents, SimulatedAgent } from './simulated-agent.js';
import type { FromWorker, ToWorker } from './worker-protocol.js';

const send = (m: FromWorker) => process.send?.(m);
if (!process.send) {
  process.stderr.write('agent-worker: run by the load harness (bench:agents), not by hand\n');
  process.exit(2);
}

let agents: SimulatedAgent[] = [];
let stopping = false;
let record = true;
let connected = 0;
let welcomes = 0;
let failedAttempts = 0;
let heartbeatMs = 5000;
let creds: ChannelCredentials = credentials.createInsecure();
let heartbeats: number[] = [];
let desired: number[] = [];
let reportAcked: number[] = [];
let resultAcked: number[] = [];
let ended: string[] = [];
let newErrors: string[] = [];
let errorsSent = 0;
const desiredSeen = new Set<number>();
const reportAckSeen = new Set<number>();
const resultAckSeen = new Set<number>();
let rest: FixedRateLoad | undefined;

function onError(message: string): void {
  failedAttempts++;
  if (errorsSent < 20) {
    errorsSent++;
    newErrors.push(message);
  }
}

/**
 * As the real agent: after any end, jittered exponential backoff, reset once welcomed; the first
 * try after a welcomed stream broke is spread over the Welcome's reconnect window.
 */
async function reconnect(agent: SimulatedAgent, backoff: Backoff): Promise<void> {
  let windowMs = agent.reconnectWindowMs;
  while (!stopping) {
    await sleep(backoff.next(windowMs));
    windowMs = 0;
    if (stopping) return;
    try {
      await agent.connect(30_000);
      backoff.reset();
      welcomed(agent);
      return;
    } catch (err) {
      onError((err as Error).message);
    }
  }
}

const backoffs = new Map<SimulatedAgent, Backoff>();

function welcomed(agent: SimulatedAgent): void {
  connected++;
  welcomes++;
  agent.startHeartbeats(heartbeatMs, Math.random() * heartbeatMs);
}

const events: AgentEvents = {
  heartbeat: (agent, at) => {
    if (record) heartbeats.push(agent.identity.index, at);
  },
  ended: (agent, code, details) => {
    connected--;
    ended.push(`${agent.identity.deviceName}: code ${code} ${details}`);
    if (stopping) return;
    let b = backoffs.get(agent);
    if (!b) backoffs.set(agent, (b = new Backoff()));
    b.reset(); // the stream had been welcomed
    void reconnect(agent, b);
  },
  desired: (agent, d) => {
    if (d.revision >= 1 && !desiredSeen.has(agent.identity.index)) {
      desiredSeen.add(agent.identity.index);
      desired.push(agent.identity.index, Date.now());
    }
  },
  acked: (agent, ids) => {
    const i = agent.identity.index;
    for (const id of ids) {
      if (id.includes(':state:') && !reportAckSeen.has(i)) {
        reportAckSeen.add(i);
        reportAcked.push(i, Date.now());
      } else if (id.endsWith(':result:0') && !resultAckSeen.has(i)) {
        resultAckSeen.add(i);
        resultAcked.push(i, Date.now());
      }
    }
  },
};

const startCpu = process.cpuUsage();
const ticker = setInterval(() => {
  const cpu = process.cpuUsage(startCpu);
  send({ t: 'tick', connected, welcomes, failedAttempts, heartbeats, desired, reportAcked, resultAcked, ended, newErrors, rssMb: process.memoryUsage.rss() / 2 ** 20, cpuS: (cpu.user + cpu.system) / 1e6 });
  heartbeats = [];
  desired = [];
  reportAcked = [];
  resultAcked = [];
  ended = [];
  newErrors = [];
}, 200);

async function runAgents(m: Extract<ToWorker, { t: 'agents' }>): Promise<void> {
  heartbeatMs = m.heartbeatMs;
  if (m.caPem) creds = credentials.createSsl(Buffer.from(m.caPem));
  const result = await connectAll({
    identities: m.identities,
    target: m.target,
    events,
    concurrency: m.concurrency,
    deadline: m.deadlineMs,
    credentials: creds,
    onConnected: (agent) => welcomed(agent),
    onFailedAttempt: (_agent, err) => onError(err.message),
  });
  agents = result.agents;
  for (const a of agents) {
    a.resendEveryMs = 0; // as the real agent: unacknowledged updates go again after a Welcome only
    // A state.apply job is answered at once with the revision this agent holds (applied on receipt).
    a.behaviour = (job, agent) => (job.type === 'state.apply' ? { outcome: 'succeed', output: { revision: agent.revision, sections: [] } } : { outcome: 'ignore' });
  }
  send({ t: 'connected', failed: result.failed.map((f) => ({ index: f.agent.identity.index, error: f.error })) });
}

process.on('message', (m: ToWorker) => {
  switch (m.t) {
    case 'agents':
      runAgents(m).catch((err: Error) => send({ t: 'fatal', message: err.stack ?? err.message }));
      return;
    case 'record':
      record = m.on;
      return;
    case 'rest':
      rest = new FixedRateLoad(new URL(m.url), { authorization: `Bearer ${m.token}` }, m.rate);
      rest.start();
      return;
    case 'rest-stop':
      void rest?.stop().then((result) => send({ t: 'rest-done', result }));
      return;
    case 'stop':
      stopping = true;
      for (const a of agents) a.stop();
      clearInterval(ticker);
      setTimeout(() => process.exit(0), 500);
      return;
  }
});
// The harness went away (killed): do not linger with thousands of open streams.
process.on('disconnect', () => process.exit(0));
