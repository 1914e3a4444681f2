import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { desiredStateSchema, describeIssues, fieldIssues } from '@ibex/spec';
import { UsageError, errorMessage } from '../common/errors.js';
import { agentRegistry } from '../agent/registry.js';
import { processAlive, readStatusFile } from '../agent/status-file.js';
import { GenerationsRoot } from '../capabilities/generations/generations-root.js';
import { createLogger } from '../common/log.js';
import { Engine } from '../engine/engine.js';
import type { SectionResult } from '../engine/section-result.js';
import { DataDir } from '../journal/data-dir.js';
import { NodeSystemAdapter } from '../system/node-system-adapter.js';
import { AGENT_VERSION } from '../version.js';
import { type FlagSpec, parseFlags } from './args.js';
import { type CliEnv, commonFlags, configFrom } from './common-flags.js';

export const specFlags: FlagSpec[] = [
  { name: 'spec', kind: 'value', arg: 'FILE', help: 'desired state JSON: an object keyed by section name', required: true },
  { name: 'json', kind: 'switch', help: 'machine-readable output' },
  ...commonFlags,
];

export const applyFlags: FlagSpec[] = [
  ...specFlags,
  {
    name: 'confirm-timeout',
    kind: 'value',
    arg: 'SEC',
    help: 'keep a change that can cut the device off (network) only if "yes" is typed on stdin within SEC seconds, else revert it (default: confirm at once)',
  },
];

/** Signals that end the wait as a no: a cut SSH session (SIGHUP), Ctrl-C, a stop. */
const NO_SIGNALS = ['SIGHUP', 'SIGINT', 'SIGTERM'] as const;

/**
 * Waits for one line on stdin: true only for "yes". End of input, another answer, the
 * deadline or a signal is a no (like `netplan try`: if the operator's session is cut, nobody
 * answers). Without the signal handlers a hang-up would kill the process and leave the change
 * applied until the next agent start reverted it.
 */
function answeredYes(stdin: NodeJS.ReadableStream, timeoutMs: number, ask: () => void): Promise<boolean> {
  return new Promise((resolve) => {
    let buf = '';
    // A signal or a read error is a no.
    const onSignal = () => finish(false);
    const finish = (yes: boolean) => {
      clearTimeout(timer);
      stdin.off('data', onData);
      stdin.off('end', onEnd);
      stdin.off('error', onSignal);
      stdin.pause();
      for (const sig of NO_SIGNALS) process.off(sig, onSignal);
      resolve(yes);
    };
    const onData = (d: Buffer | string) => {
      buf += d.toString();
      const nl = buf.indexOf('\n');
      if (nl >= 0) finish(buf.slice(0, nl).trim().toLowerCase() === 'yes');
    };
    const onEnd = () => finish(buf.trim().toLowerCase() === 'yes');
    const timer = setTimeout(() => finish(false), timeoutMs);
    for (const sig of NO_SIGNALS) process.once(sig, onSignal);
    // Asked only now: a hang-up right after the question must find the handlers in place.
    ask();
    stdin.on('data', onData);
    stdin.once('end', onEnd);
    // A terminal that went away may fail the read (EIO) instead of ending it.
    stdin.once('error', onSignal);
    stdin.resume();
  });
}

/** Reads and validates a spec file; every problem names the file (and the field). */
export function readSpecFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError(`spec file ${path} cannot be read (${errorMessage(err)})`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`spec file ${path} is not valid JSON (${errorMessage(err)})`);
  }
  const r = desiredStateSchema.safeParse(raw);
  if (!r.success) throw new UsageError(`spec file ${path} is not a valid desired state: ${describeIssues(fieldIssues(r.error))}`);
  return r.data as Record<string, unknown>;
}

function printResults(results: SectionResult[], verb: 'plan' | 'apply', out: (s: string) => void): void {
  if (!results.length) out('the spec has no sections: nothing to do\n');
  for (const r of results) {
    let head: string;
    if (r.state === 'pending') head = `${r.steps.length} step(s) to run`;
    else if (r.state === 'in_sync' && verb === 'apply' && r.steps.length) head = `in sync (${r.steps.length} step(s) applied)`;
    else if (r.state === 'in_sync') head = 'in sync, nothing to do';
    else head = r.state;
    out(`${r.section}: ${head}${r.error ? `: ${r.error}` : ''}${r.detail ? ` (${r.detail})` : ''}\n`);
    for (const s of r.steps) {
      out(`  - ${s.text}\n`);
      // Dry-run details (docs/network.md): the commands a step runs and the diff of a file it writes.
      if (Array.isArray(s.commands)) for (const c of s.commands as string[][]) out(`      $ ${c.map(shellQuote).join(' ')}\n`);
      if (typeof s.diff === 'string' && s.diff) out(s.diff.replace(/^/gm, '      ').replace(/ +$/gm, ''));
    }
  }
}

/** For display only (nothing is run through a shell): quotes an argument a reader would misread. */
function shellQuote(a: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`;
}

async function specCommand(verb: 'plan' | 'apply', argv: string[], io: CliEnv): Promise<number> {
  const flags = parseFlags(verb, argv, verb === 'apply' ? applyFlags : specFlags);
  let confirmSec: number | undefined;
  if (flags['confirm-timeout'] !== undefined) {
    confirmSec = Number(flags['confirm-timeout']);
    if (!Number.isInteger(confirmSec) || confirmSec < 1 || confirmSec > 3600) throw new UsageError(`--confirm-timeout must be a whole number of seconds from 1 to 3600, not "${String(flags['confirm-timeout'])}"`);
  }
  const cfg = configFrom(flags, io);
  const specPath = isAbsolute(flags.spec as string) ? (flags.spec as string) : resolve(io.cwd, flags.spec as string);
  const spec = readSpecFile(specPath);
  const dataDir = new DataDir(cfg.dataDir);
  const st = verb === 'apply' ? readStatusFile(dataDir.status) : undefined;
  if (st?.running && processAlive(st.pid)) {
    // Two engines on one data dir would share intents and backups.
    io.err(`ibex-agent apply: an agent (pid ${st.pid}) is running with data dir ${cfg.dataDir}; stop it first, or have the controller run a state.apply job\n`);
    return 1;
  }
  const log = createLogger({ level: cfg.logLevel, format: cfg.logFormat });
  const sys = new NodeSystemAdapter();
  const generations = new GenerationsRoot({ root: cfg.root, sys, log });
  const engine = new Engine({ registry: agentRegistry({ generations }), sys, log, root: cfg.root, dataDir, agentVersion: AGENT_VERSION });
  let results: SectionResult[];
  if (verb === 'plan') {
    results = await engine.plan(spec);
  } else {
    await engine.recover();
    results = await engine.apply(spec);
    // A local apply has no controller to prove the device is still reachable. By default the
    // change is confirmed at once (the operator is at the device); with --confirm-timeout the
    // operator must answer "yes" in time, so a session the change cut off reverts it. Under
    // `ibex-agent run` the controller's Ack confirms it (docs/network.md).
    const awaiting = results.filter((r) => r.awaitingConfirmationUntilMs !== undefined);
    let yes = true;
    if (awaiting.length && confirmSec !== undefined) {
      const ask = () => io.err(`ibex-agent apply: ${awaiting.map((r) => r.section).join(', ')} applied; type "yes" and Enter within ${confirmSec} s to keep it, or it is reverted\n`);
      if (io.stdin) ask();
      yes = await (io.stdin ? io.stdin(confirmSec * 1000) : answeredYes(process.stdin, confirmSec * 1000, ask));
    }
    const settled = await engine.confirmations.settle(
      awaiting,
      yes
        ? { confirmed: true, detail: confirmSec === undefined ? 'confirmed at once: a local apply has no controller to reach' : 'confirmed on the terminal' }
        : { confirmed: false, reason: `not confirmed: nobody answered "yes" within ${confirmSec} s after the change` },
    );
    results = results.map((r) => settled.get(r.section) ?? r);
  }
  if (flags.json === true) io.out(JSON.stringify({ root: cfg.root, sections: results }, null, 2) + '\n');
  else printResults(results, verb, io.out);
  return results.some((r) => r.state === 'failed' || r.state === 'reverted') ? 1 : 0;
}

export const planCommand = (argv: string[], io: CliEnv) => specCommand('plan', argv, io);
export const applyCommand = (argv: string[], io: CliEnv) => specCommand('apply', argv, io);
