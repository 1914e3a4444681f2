import { setTimeout as sleep } from 'node:timers/promises';
import { round } from './stats.js';

export interface FanoutResult {
  agents: number;
  selector: string;
  /** POST /api/v1/rollouts answered, s after it was sent. */
  postS: number;
  /** First and last agent that received the DesiredState (s after the POST was sent); null when not all did. */
  firstReceivedS: number | null;
  allReceivedS: number | null;
  received: number;
  /** Every agent's StateReport for the revision stored (the controller acknowledged it). */
  allReportedS: number | null;
  reported: number;
  /** Every agent's state.apply result stored (acknowledged). */
  allResultsS: number | null;
  results: number;
  /** The rollout's own view: succeeded (its status), s after the POST. */
  rolloutDoneS: number | null;
  rolloutStatus: string;
}

export interface FanoutTracker {
  desired: (id: string, at: number) => void;
  reportAcked: (id: string, at: number) => void;
  resultAcked: (id: string, at: number) => void;
}

/**
 * One desired-state change to every agent: a rollout with a label selector (the labels the
 * enrollment token gave every bench device), waves disabled. The agents report what they got
 * through `hooks` (wired to the workers' reports); timed from the moment the POST was sent.
 */
export async function runFanout(o: {
  api: string;
  token: string;
  selector: string;
  agents: number;
  timeoutS: number;
  hooks: (t: FanoutTracker) => void;
  print: (line: string) => void;
  /** The agents' streams, for the progress lines. */
  streams?: () => string;
}): Promise<FanoutResult> {
  const received = new Map<string, number>();
  const reported = new Map<string, number>();
  const results = new Map<string, number>();
  o.hooks({ desired: (id, at) => received.set(id, at), reportAcked: (id, at) => reported.set(id, at), resultAcked: (id, at) => results.set(id, at) });
  const headers = { authorization: `Bearer ${o.token}`, 'content-type': 'application/json' };
  const t0 = Date.now();
  const res = await fetch(`${o.api}/api/v1/rollouts`, {
    method: 'POST',
    headers,
    body: JSON.stringify({
      name: `bench fan-out ${o.selector}`,
      target: { kind: 'selector', selector: o.selector },
      payload: { kind: 'desired_state', spec: { files: { entries: [{ path: '/etc/ibex-bench', content: `fan-out ${new Date(t0).toISOString()}\n` }] } }, message: 'bench fan-out' },
      strategy: { waves: { kind: 'none' } },
    }),
    signal: AbortSignal.timeout(120_000),
  });
  const text = await res.text();
  if (res.status !== 201) throw new Error(`POST /api/v1/rollouts answered ${res.status}: ${text.slice(0, 500)}`);
  const postS = (Date.now() - t0) / 1000;
  const { id } = JSON.parse(text) as { id: string };
  o.print(`fan-out: rollout ${id} to ${o.selector} created in ${round(postS, 1)} s`);
  const s = (at: number | undefined) => (at === undefined ? null : round((at - t0) / 1000, 2));
  const lastOf = (m: Map<string, number>) => {
    if (m.size < o.agents) return undefined;
    let last = 0;
    for (const v of m.values()) last = Math.max(last, v);
    return last;
  };
  let status = 'running';
  let doneAt: number | undefined;
  const deadline = t0 + o.timeoutS * 1000;
  let lastPrint = 0;
  while (Date.now() < deadline) {
    if (doneAt === undefined) {
      const view = (await fetch(`${o.api}/api/v1/rollouts/${id}`, { headers, signal: AbortSignal.timeout(30_000) })
        .then((r) => r.json())
        .catch(() => undefined)) as { status: string } | undefined;
      if (view) status = view.status;
      if (['succeeded', 'failed', 'aborted', 'rolled_back'].includes(status)) doneAt = Date.now();
    }
    if (Date.now() - lastPrint >= 2000) {
      lastPrint = Date.now();
      o.print(`fan-out: ${round((Date.now() - t0) / 1000, 1)} s: ${received.size} received, ${reported.size} reports stored, ${results.size} results stored of ${o.agents}; rollout ${status}` + (o.streams ? `; ${o.streams()}` : ''));
    }
    if (doneAt !== undefined && received.size >= o.agents && reported.size >= o.agents && results.size >= o.agents) break;
    await sleep(250);
  }
  let first: number | undefined;
  for (const v of received.values()) if (first === undefined || v < first) first = v;
  return {
    agents: o.agents,
    selector: o.selector,
    postS: round(postS, 2),
    firstReceivedS: s(first),
    allReceivedS: s(lastOf(received)),
    received: received.size,
    allReportedS: s(lastOf(reported)),
    reported: reported.size,
    allResultsS: s(lastOf(results)),
    results: results.size,
    rolloutDoneS: s(doneAt),
    rolloutStatus: status,
  };
}
