import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import { JobOutcome, type JobResult } from '@ibex/proto';
import { type GenerationsInventory, generationsInventorySchema, jobTypeNames, jobTypes, isJobType } from '@ibex/spec';
import { DeviceServices } from '../agent/device-services.js';
import { UsageError, errorMessage } from '../common/errors.js';
import { createLogger } from '../common/log.js';
import { readCredential } from '../journal/credential.js';
import { DataDir } from '../journal/data-dir.js';
import { DataDirLock, lockRefusal } from '../journal/data-dir-lock.js';
import { parseJob } from '../jobs/job-runner.js';
import { AGENT_VERSION } from '../version.js';
import { type FlagSpec, type ParsedFlags, parseFlags } from './args.js';
import { type CliEnv, commonFlags, configFrom } from './common-flags.js';
import { inventoryLines, isoOrDash } from './generations-text.js';
import { JobProgress } from './job-progress.js';

/** What every command that runs a job at the console takes. */
export const localJobFlags: FlagSpec[] = [
  { name: 'json', kind: 'switch', help: 'JSON lines on stdout: one event per update as it happens, then the result' },
  { name: 'timeout', kind: 'value', arg: 'SEC', help: "stop the job after SEC seconds (default: the job type's timeout; 0: no limit)" },
  ...commonFlags,
];

export const paramsFlag: FlagSpec = { name: 'params', kind: 'value', arg: 'FILE|-', help: 'the job params as a JSON object: a file, or - to read stdin (default {})' };

export const jobFlags: FlagSpec[] = [paramsFlag, ...localJobFlags];

const EXIT_CODES = `exit codes: 0 the job succeeded, 1 it failed or was cancelled (Ctrl-C) or another process holds
the data dir, 2 usage error or invalid params (nothing was run or journaled)`;

export const jobHelp = `Runs one job the controller could send, on this device, now: the same validation, journal,
handlers and crash safety (a job cut short by a crash is finished as "interrupted" at the next
start; what it was changing is finished or undone). Progress goes to stderr (a bar on a terminal),
or JSON lines to stdout with --json. The result is kept in the journal and reported to the
controller as a local change when \`ibex-agent run\` next connects (audit: device.local_job).
Refused while \`ibex-agent run\` uses the same data dir: stop it, or have the controller run the job.

job types:
${jobTypeNames.map((t) => `  ${t.padEnd(24)} ${jobTypes[t].description}`).join('\n')}

${EXIT_CODES}
`;

/** `--params FILE|-`: a JSON object (default {}); every problem names where it came from. */
export function readParams(flags: ParsedFlags, io: CliEnv): Record<string, unknown> {
  const arg = flags.params;
  if (typeof arg !== 'string') return {};
  const where = arg === '-' ? 'params on stdin' : `params file ${arg}`;
  let text: string;
  try {
    text = arg === '-' ? readFileSync(0, 'utf8') : readFileSync(isAbsolute(arg) ? arg : resolve(io.cwd, arg), 'utf8');
  } catch (err) {
    throw new UsageError(`${where} cannot be read (${errorMessage(err)})`);
  }
  let v: unknown;
  try {
    v = text.trim() === '' ? {} : JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${where} is not valid JSON (${errorMessage(err)})`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new UsageError(`${where} must be a JSON object of params`);
  return v as Record<string, unknown>;
}

/** Who is at the console, for the audit log on the controller. */
function consoleUser(env: NodeJS.ProcessEnv): string {
  try {
    return env.SUDO_USER || env.USER || userInfo().username;
  } catch {
    return '';
  }
}

export async function jobCommand(argv: string[], io: CliEnv): Promise<number> {
  const [type, ...rest] = argv;
  if (!type || type.startsWith('-')) throw new UsageError(`ibex-agent job: name the job type: ibex-agent job TYPE [--params FILE|-]; types: ${jobTypeNames.join(', ')}`);
  const flags = parseFlags('job', rest, jobFlags);
  return runLocalJob(`job ${type}`, type, readParams(flags, io), flags, io);
}

/**
 * Runs `type` with `params` at the console (JobRunner.runLocal) and prints its progress and
 * result. Bad params are a UsageError naming the field, before anything is journaled.
 */
export async function runLocalJob(command: string, type: string, params: Record<string, unknown>, flags: ParsedFlags, io: CliEnv): Promise<number> {
  const cfg = configFrom(flags, io);
  const user = consoleUser(io.env);
  if (type === 'generations.rollback' && params.reason === undefined) params = { ...params, reason: `requested at the console${user ? ` by ${user}` : ''}` };
  const paramsJson = JSON.stringify(params);
  const checked = parseJob(type, paramsJson, AGENT_VERSION);
  if (!checked.ok) throw new UsageError(`ibex-agent ${command}: ${checked.error}`);
  let timeoutMs = isJobType(type) ? jobTypes[type].defaultTimeoutMs : 0;
  if (flags.timeout !== undefined) {
    const sec = Number(flags.timeout);
    if (!Number.isInteger(sec) || sec < 0 || sec > 7 * 24 * 3600) throw new UsageError(`ibex-agent ${command}: --timeout must be a whole number of seconds from 0 (no limit) to 604800, not "${String(flags.timeout)}"`);
    timeoutMs = sec * 1000;
  }
  const lock = DataDirLock.acquire(cfg.dataDir, command);
  if (!(lock instanceof DataDirLock)) {
    io.err(lockRefusal(command, cfg.dataDir, lock) + '\n');
    return 1;
  }
  const json = flags.json === true;
  const progress = new JobProgress({ json, out: io.out, err: io.err, terminal: io.terminal });
  const jobId = randomUUID();
  // Cut off (Ctrl-C, a closed session, a stop): the job is cancelled, and undoes what it had begun.
  // A second signal is not caught: the process dies, and the next start recovers.
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  let device: DeviceServices | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    for (const s of signals) process.off(s, onSignal);
    device?.runner.cancel({ jobId, reason: `interrupted at the console (${sig})` });
  };
  try {
    // The agent's log lines go to stderr as for every command, above the progress bar.
    const log = createLogger({ level: cfg.logLevel, format: cfg.logFormat, write: (line) => progress.logLine(line) });
    device = new DeviceServices({ cfg, log, bootId: randomUUID(), send: () => false, onLocalUpdate: (u) => progress.update(u), confirmAtOnce: true });
    await device.recover();
    for (const s of signals) process.once(s, onSignal);
    const result = await device.runner.runLocal({ jobId, type, paramsJson, timeoutMs, user });
    progress.done();
    printResult(type, jobId, result, json, io, !!readCredential(new DataDir(cfg.dataDir).credential));
    return result.outcome === JobOutcome.JOB_OUTCOME_SUCCEEDED ? 0 : result.outcome === JobOutcome.JOB_OUTCOME_REJECTED ? 2 : 1;
  } finally {
    for (const s of signals) process.off(s, onSignal);
    progress.done();
    await device?.trial.stop();
    lock.release();
  }
}

const outcomeName = (o: JobOutcome) => JobOutcome[o].replace('JOB_OUTCOME_', '').toLowerCase();

function parsedOutput(r: JobResult): unknown {
  try {
    return r.outputJson ? JSON.parse(r.outputJson) : undefined;
  } catch {
    return r.outputJson;
  }
}

function printResult(type: string, jobId: string, r: JobResult, json: boolean, io: CliEnv, enrolled: boolean): void {
  const output = parsedOutput(r);
  const report = enrolled ? 'reported to the controller when ibex-agent run next connects' : 'kept in the journal (this device is not enrolled; it is reported once it is and ibex-agent run connects)';
  if (json) {
    io.out(JSON.stringify({ event: 'result', jobId, type, outcome: outcomeName(r.outcome), ...(r.error ? { error: r.error } : {}), ...(output !== undefined ? { output } : {}), finishedAtMs: r.finishedAtMs, report }) + '\n');
    return;
  }
  const name = outcomeName(r.outcome);
  // A cancelled job's error already says so ("cancelled: interrupted at the console (SIGINT)").
  const lines = [`${type}: ${r.error ? (r.error.startsWith(name) ? r.error : `${name}: ${r.error}`) : name}`];
  if (output !== undefined) lines.push(...outputLines(output));
  (r.outcome === JobOutcome.JOB_OUTCOME_SUCCEEDED ? io.out : io.err)(lines.join('\n') + '\n');
  io.err(`local change ${jobId}: ${report}\n`);
}

/** A job's output for people: inventories as a table, the rest as JSON. */
function outputLines(output: unknown): string[] {
  const inv = (v: unknown): GenerationsInventory | undefined => {
    const p = generationsInventorySchema.safeParse(v);
    return p.success ? p.data : undefined;
  };
  const o = output as Record<string, unknown>;
  const whole = inv(output);
  if (whole) return inventoryLines(whole);
  const inner = inv(o?.inventory);
  if (!inner) return [JSON.stringify(output, null, 2)];
  const head: string[] = [];
  if (typeof o.id === 'string') head.push(`new generation ${o.id} (from ${String(o.from)})`);
  if (Array.isArray(o.deleted)) head.push(`deleted: ${o.deleted.length ? o.deleted.join(', ') : 'nothing'}`);
  if (Array.isArray(o.kept)) for (const k of o.kept as { id: string; why: string[] }[]) head.push(`kept ${k.id}: ${k.why.join(', ')}`);
  if (inner.trial) head.push(`${inner.trial.id} is on trial until ${isoOrDash(inner.trial.deadlineAtMs)}: ibex-agent run must reach the controller by then (and the checks pass) or it switches back; "trial": false keeps a generation without a controller`);
  return [...head, ...inventoryLines(inner)];
}
