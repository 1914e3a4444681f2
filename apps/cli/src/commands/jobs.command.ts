import type { Command } from 'commander';
import { MultiBar, Presets } from 'cli-progress';
import { finishedJobStatuses, type IbexClient, type Job, type JobDetail } from '@ibex/client';
import { CliError, EXIT } from '../exit-codes.js';
import { ago, type Column, type Io, printList, printObject } from '../output.js';
import { collect, keyValues, positiveInt } from '../parsers.js';
import { type CommandGroup, formatOf, withOutput } from '../program.js';

const POLL_MS = 500;

export function jobColumns(io: Io): Column<Job>[] {
  const c = io.colors;
  const colour = (s: Job['status']) => (s === 'succeeded' ? c.green(s) : finishedJobStatuses.includes(s) ? c.red(s) : c.yellow(s));
  const now = io.now();
  return [
    { header: 'ID', value: (j) => j.id },
    { header: 'TYPE', value: (j) => j.type },
    { header: 'STATUS', value: (j) => colour(j.status) },
    { header: 'PROGRESS', value: (j) => (j.progress.percent === null ? '-' : `${j.progress.percent}%`) },
    { header: 'ATTEMPT', value: (j) => `${j.attempt}/${j.maxAttempts}` },
    { header: 'CREATED', value: (j) => ago(j.createdAt, now) },
    { header: 'DEVICE', value: (j) => j.deviceId },
  ];
}

export function jobFields(j: JobDetail): Array<[string, string]> {
  return [
    ['ID', j.id],
    ['Type', j.type],
    ['Device', j.deviceId],
    ['Status', j.status],
    ['Attempt', `${j.attempt} of ${j.maxAttempts}`],
    ['Progress', j.progress.percent === null ? '-' : `${j.progress.percent}%${j.progress.message ? ` ${j.progress.message}` : ''}`],
    ['Params', JSON.stringify(j.params)],
    ['Created', j.createdAt],
    ['Finished', j.finishedAt ?? '-'],
    ['Error', j.error ?? '-'],
    ['Logs', j.logs.length ? `\n${j.logs.map((l) => `  ${l.at} ${l.level.padEnd(5)} ${l.text}`).join('\n')}` : '-'],
  ];
}

export interface WatchOptions {
  /** Print nothing while waiting (the caller prints the outcome). */
  quiet?: boolean;
  timeoutSeconds?: number;
}

/**
 * Follows a job until it finishes: its log lines as they arrive and its progress (a bar on a
 * terminal, a line per change otherwise, both on stderr). Returns the finished job.
 */
export async function watchJob(io: Io, api: IbexClient, id: string, opts: WatchOptions = {}): Promise<JobDetail> {
  const until = opts.timeoutSeconds ? Date.now() + opts.timeoutSeconds * 1000 : Infinity;
  const bars = !opts.quiet && io.tty ? new MultiBar({ format: ' {bar} {percentage}% | {status} {message}', hideCursor: true, clearOnComplete: false, stream: process.stderr }, Presets.shades_classic) : undefined;
  const bar = bars?.create(100, 0, { status: 'queued', message: '' });
  let cursor: string | undefined;
  let lastProgress = '';
  try {
    for (;;) {
      const job = await api.getJob(id);
      if (!opts.quiet) {
        // Follow the log: every line once, in order (nextCursor stays put when nothing is new).
        for (let more = true; more; ) {
          const page = await api.jobLogs(id, { cursor, limit: 1000 });
          for (const l of page.lines) {
            const line = `${l.at} ${l.level.padEnd(5)} ${l.text}\n`;
            if (bars) bars.log(line);
            else io.out(line);
          }
          cursor = page.nextCursor ?? cursor;
          more = page.more;
        }
        const progress = `${job.status} ${job.progress.percent ?? 0}% ${job.progress.message ?? ''}`.trim();
        if (bar) bar.update(job.progress.percent ?? 0, { status: job.status, message: job.progress.message ?? '' });
        else if (progress !== lastProgress) io.err(`job ${job.id}: ${progress}\n`);
        lastProgress = progress;
      }
      if (finishedJobStatuses.includes(job.status)) return job;
      if (Date.now() > until) throw new CliError(`job ${id} is still ${job.status} after ${opts.timeoutSeconds} s; follow it with \`ibexctl jobs watch ${id}\``, EXIT.failed);
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  } finally {
    bars?.stop();
  }
}

/** Watches a job and turns its outcome into the exit code: 0 when it succeeded, 1 otherwise. */
async function watchToEnd(io: Io, api: IbexClient, id: string, timeoutSeconds?: number): Promise<void> {
  const job = await watchJob(io, api, id, { timeoutSeconds });
  if (job.status !== 'succeeded') throw new CliError(`job ${job.id} ${job.status}${job.error ? `: ${job.error}` : ''}`, EXIT.failed);
  io.out(`job ${job.id} succeeded (attempt ${job.attempt})\n`);
}

export const jobCommands: CommandGroup = (program, ctx) => {
  const { io } = ctx;
  const jobs = program.command('jobs').description('Jobs: one-off work on a device');

  withOutput(
    jobs
      .command('create <device>')
      .description('Run a job on a device (`ibexctl jobs types` lists the types and their parameters)')
      .requiredOption('-t, --type <type>', 'job type, e.g. facts.collect')
      .option('-p, --param <key=value>', 'a string parameter (repeatable)', collect)
      .option('--params <json>', 'parameters as a JSON object (merged with --param)')
      .option('--timeout <seconds>', 'per attempt', positiveInt('--timeout', 1, 86_400))
      .option('--expires-in <seconds>', 'give up when not delivered by then', positiveInt('--expires-in', 1, 30 * 86_400))
      .option('--max-attempts <n>', 'attempts after transient failures', positiveInt('--max-attempts', 1, 10))
      .option('-w, --watch', 'follow it until it finishes; exit 1 unless it succeeds'),
  ).action(async (ref: string, opts: { type: string; param?: string[]; params?: string; timeout?: number; expiresIn?: number; maxAttempts?: number; watch?: boolean }, cmd: Command) => {
    let params: Record<string, unknown> = {};
    if (opts.params !== undefined) {
      try {
        params = JSON.parse(opts.params) as Record<string, unknown>;
      } catch (err) {
        throw new CliError(`--params is not valid JSON (${(err as Error).message})`, EXIT.usage);
      }
      if (!params || typeof params !== 'object' || Array.isArray(params)) throw new CliError('--params must be a JSON object, e.g. {"to": "20260131-120000"}', EXIT.usage);
    }
    params = { ...params, ...keyValues(opts.param, '--param') };
    const api = ctx.client(cmd);
    const job = await api.createJob(ref, { type: opts.type, params, timeoutSeconds: opts.timeout, expiresInSeconds: opts.expiresIn, maxAttempts: opts.maxAttempts });
    if (formatOf(cmd) !== 'table') printObject(io, formatOf(cmd), job, []);
    else io.out(`job ${job.id} created (${job.type} on ${ref}, ${job.status})\n`);
    if (opts.watch) await watchToEnd(io, api, job.id);
  });

  withOutput(
    jobs
      .command('list')
      .alias('ls')
      .description('List jobs, newest first')
      .option('-d, --device <device>', 'only this device (name or id)')
      .option('--status <statuses>', 'one status or several, comma-separated (queued,running,...)')
      .option('--type <type>', 'only this job type')
      .option('--limit <n>', 'at most this many (default 100)', positiveInt('--limit'), 100),
  ).action(async (opts: { device?: string; status?: string; type?: string; limit: number }, cmd: Command) => {
    const api = ctx.client(cmd);
    const rows = await api.all((cursor) => api.listJobs({ device: opts.device, status: opts.status, type: opts.type, cursor, limit: Math.min(opts.limit, 1000) }), opts.limit);
    printList(io, formatOf(cmd), rows, jobColumns(io), 'no jobs match');
  });

  withOutput(jobs.command('get <id>').description('Show a job with its latest log lines')).action(async (id: string, _o, cmd: Command) => {
    const j = await ctx.client(cmd).getJob(id);
    printObject(io, formatOf(cmd), j, jobFields(j));
  });

  jobs
    .command('watch <id>')
    .description('Follow a job: progress bar and log lines until it finishes; exit 0 when it succeeded, 1 otherwise')
    .option('--timeout <seconds>', 'stop waiting after this long (exit 1)', positiveInt('--timeout'))
    .action(async (id: string, opts: { timeout?: number }, cmd: Command) => watchToEnd(io, ctx.client(cmd), id, opts.timeout));

  withOutput(jobs.command('cancel <id>').description('Cancel a job (a running one when the agent confirms)')).action(async (id: string, _o, cmd: Command) => {
    const j = await ctx.client(cmd).cancelJob(id);
    if (formatOf(cmd) !== 'table') return printObject(io, formatOf(cmd), j, []);
    io.out(j.status === 'cancelled' ? `job ${j.id} cancelled\n` : `job ${j.id}: cancellation requested; the agent is told (it is ${j.status})\n`);
  });

  withOutput(jobs.command('types').description('The job types, with their defaults')).action(async (_o, cmd: Command) => {
    const { items } = await ctx.client(cmd).jobTypes();
    printList(io, formatOf(cmd), items, [
      { header: 'TYPE', value: (t) => t.type },
      { header: 'TIMEOUT', value: (t) => `${t.defaultTimeoutSeconds}s` },
      { header: 'RETRY-SAFE', value: (t) => (t.retrySafe ? 'yes' : 'no') },
      { header: 'DESCRIPTION', value: (t) => t.description },
    ]);
  });
};
