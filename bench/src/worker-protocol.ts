// Messages between the harness and its worker processes (child_process IPC, JSON).
import type { RestLoadResult } from './rest-load.js';
import type { AgentIdentity } from './simulated-agent.js';

export type ToWorker =
  | {
      t: 'agents';
      identities: AgentIdentity[];
      target: string;
      /** PEM of the CA the controller's certificate is checked against; plaintext when absent. */
      caPem?: string;
      heartbeatMs: number;
      concurrency: number;
      deadlineMs: number;
    }
  /** Whether heartbeats are reported to the harness (for the last-seen lag). */
  | { t: 'record'; on: boolean }
  | { t: 'rest'; url: string; token: string; rate: number }
  | { t: 'rest-stop' }
  | { t: 'stop' };

export type FromWorker =
  /** Every ~200 ms: counters so far and what happened since the last tick (index = identity.index). */
  | {
      t: 'tick';
      /** Streams welcomed and open now. */
      connected: number;
      /** Welcomes so far, first connects and reconnects. */
      welcomes: number;
      failedAttempts: number;
      /** [index, sentAtMs, index, sentAtMs, ...] */
      heartbeats: number[];
      /** [index, atMs, ...]: first DesiredState of revision >= 1 per agent. */
      desired: number[];
      /** [index, atMs, ...]: the controller acknowledged that agent's StateReport for it. */
      reportAcked: number[];
      /** [index, atMs, ...]: the controller acknowledged that agent's state.apply job result. */
      resultAcked: number[];
      /** New stream ends: "name: code details". */
      ended: string[];
      newErrors: string[];
      rssMb: number;
      cpuS: number;
    }
  /** The first connect of every agent of this worker is over. */
  | { t: 'connected'; failed: { index: number; error: string }[] }
  | { t: 'rest-done'; result: RestLoadResult }
  | { t: 'fatal'; message: string };
