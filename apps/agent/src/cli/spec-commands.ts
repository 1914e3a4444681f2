import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { desiredStateSchema, describeIssues, fieldIssues } from '@ibex/spec';
import { UsageError, errorMessage } from '../common/errors.js';
import { processAlive, readStatusFile } from '../agent/status-file.js';
import { createLogger } from '../common/log.js';
import { Engine } from '../engine/engine.js';
import { defaultRegistry } from '../engine/registry.js';
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
  const flags = parseFlags(verb, argv, specFlags);
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
  const engine = new Engine({ registry: defaultRegistry(), sys: new NodeSystemAdapter(), log, root: cfg.root, dataDir, agentVersion: AGENT_VERSION });
  let results: SectionResult[];
  if (verb === 'plan') {
    results = await engine.plan(spec);
  } else {
    await engine.recover();
    results = await engine.apply(spec);
    // A local apply has no controller to prove the device is still reachable: the operator who
    // runs it is at the device (or on the connection it would cut), so the change is confirmed
    // at once. Under `ibex-agent run` the controller's Ack confirms it (docs/network.md).
    results = results.map((r) => {
      if (r.awaitingConfirmationUntilMs === undefined) return r;
      engine.confirm(r.section);
      return { ...r, state: 'in_sync' as const, detail: 'confirmed at once: a local apply has no controller to reach', awaitingConfirmationUntilMs: undefined };
    });
  }
  if (flags.json === true) io.out(JSON.stringify({ root: cfg.root, sections: results }, null, 2) + '\n');
  else printResults(results, verb, io.out);
  return results.some((r) => r.state === 'failed' || r.state === 'reverted') ? 1 : 0;
}

export const planCommand = (argv: string[], io: CliEnv) => specCommand('plan', argv, io);
export const applyCommand = (argv: string[], io: CliEnv) => specCommand('apply', argv, io);
