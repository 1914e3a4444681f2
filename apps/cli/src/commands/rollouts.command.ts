import type { Command } from 'commander';
import { MultiBar, Presets } from 'cli-progress';
import { finishedRolloutStatuses, type IbexClient, type Rollout, type RolloutPreview, type RolloutWave, type Schedule } from '@ibex/client';
import { CliError, EXIT } from '../exit-codes.js';
import { ago, type Column, type Io, printList, printObject, table } from '../output.js';
import { positiveInt } from '../parsers.js';
import { type CommandGroup, formatOf, withOutput } from '../program.js';
import { readObjectFile } from '../spec-file.js';

const POLL_MS = 1000;

const done = (w: Pick<RolloutWave, 'counts'>) => w.counts.succeeded + w.counts.failed + w.counts.rolled_back + w.counts.skipped;

function statusText(io: Io, s: Rollout['status']): string {
  const c = io.colors;
  return s === 'succeeded' ? c.green(s) : s === 'failed' || s === 'aborted' || s === 'rolling_back' ? c.red(s) : s === 'waiting_approval' || s === 'paused' ? c.yellow(s) : s;
}

function rolloutColumns(io: Io): Column<Rollout>[] {
  const now = io.now();
  return [
    { header: 'ID', value: (r) => r.id },
    { header: 'NAME', value: (r) => r.name },
    { header: 'STATUS', value: (r) => statusText(io, r.status) },
    { header: 'DONE', value: (r) => `${done(r)}/${r.total}` },
    { header: 'FAILED', value: (r) => String(r.counts.failed) },
    { header: 'WAVE', value: (r) => r.waves.filter((w) => w.startedAt).at(-1)?.name ?? '-' },
    { header: 'PAYLOAD', value: (r) => r.payload.kind },
    { header: 'CREATED', value: (r) => ago(r.createdAt, now) },
  ];
}

function waveTable(io: Io, r: Rollout): string {
  return table(
    io,
    ['WAVE', 'DEVICES', 'PENDING', 'IN PROGRESS', 'SUCCEEDED', 'FAILED', 'ROLLED BACK', 'SKIPPED', 'STATE'],
    r.waves.map((w) => [
      w.name,
      String(w.total),
      String(w.counts.pending),
      String(w.counts.in_progress),
      String(w.counts.succeeded),
      String(w.counts.failed),
      String(w.counts.rolled_back),
      String(w.counts.skipped),
      w.finishedAt ? 'passed' : w.startedAt ? 'running' : w.requiresApproval ? 'needs approval' : 'waiting',
    ]),
  );
}

function printRollout(io: Io, cmd: Command, r: Rollout): void {
  if (formatOf(cmd) !== 'table') return printObject(io, formatOf(cmd), r, []);
  printObject(io, 'table', r, [
    ['ID', r.id],
    ['Name', r.name],
    ['Status', statusText(io, r.status)],
    ['Reason', r.reason ?? '-'],
    ['Target', r.target.kind === 'selector' ? r.target.selector : r.target.kind === 'devices' ? `${r.target.devices.length} device(s)` : 'all devices'],
    ['Payload', r.payload.kind],
    ['Start', r.start.kind],
    ['Devices', `${r.total}: ${Object.entries(r.counts).filter(([, n]) => n).map(([k, n]) => `${n} ${k}`).join(', ') || 'none'}`],
    ['Created', r.createdAt],
    ['Finished', r.finishedAt ?? '-'],
  ]);
  io.out(`\n${waveTable(io, r)}\n`);
}

function printPreview(io: Io, cmd: Command, p: RolloutPreview): void {
  if (formatOf(cmd) !== 'table') return printObject(io, formatOf(cmd), p, []);
  io.out(`dry run: ${p.total} device(s) in ${p.waves.length} wave(s), ${p.skipped} skipped; nothing was changed\n\n`);
  const rows = p.waves.flatMap((w) =>
    w.devices.map((d) => [
      `${w.name}${w.requiresApproval ? ' (approval)' : ''}`,
      d.deviceName,
      d.outcome,
      d.changes.length ? d.changes.map((c) => `${c.section}: ${c.state}${c.steps.length ? ` (${c.steps.join('; ')})` : ''}`).join(' | ') : '-',
      d.reason ?? '-',
    ]),
  );
  io.out(`${table(io, ['WAVE', 'DEVICE', 'PLAN', 'CHANGES', 'REASON'], rows)}\n`);
}

/** Follows a rollout: one progress bar per wave on a terminal, a line per change otherwise; exit 0 when it succeeded. */
async function watchRollout(io: Io, api: IbexClient, ref: string, timeoutSeconds?: number): Promise<void> {
  const until = timeoutSeconds ? Date.now() + timeoutSeconds * 1000 : Infinity;
  let r = await api.getRollout(ref);
  const bars = io.tty ? new MultiBar({ format: ' {wave} {bar} {value}/{total} | {detail}', hideCursor: true, clearOnComplete: false, stream: process.stderr }, Presets.shades_classic) : undefined;
  const perWave = new Map<number, ReturnType<MultiBar['create']>>();
  let last = '';
  try {
    for (;;) {
      const status = `${r.name}: ${r.status}${r.reason ? ` (${r.reason})` : ''}`;
      for (const w of r.waves) {
        const detail = `${w.counts.succeeded} ok, ${w.counts.failed} failed, ${w.counts.in_progress} running, ${w.counts.skipped} skipped${w.counts.rolled_back ? `, ${w.counts.rolled_back} rolled back` : ''}`;
        if (bars) {
          const bar = perWave.get(w.index) ?? bars.create(Math.max(1, w.total), 0, { wave: w.name.padEnd(8), detail });
          perWave.set(w.index, bar);
          bar.update(done(w), { wave: w.name.padEnd(8), detail });
        }
      }
      const line = `${status} | ${r.waves.map((w) => `${w.name} ${done(w)}/${w.total}`).join(', ')}`;
      if (line !== last) {
        if (bars) bars.log(`${status}\n`);
        else io.err(`${line}\n`);
        last = line;
      }
      if (finishedRolloutStatuses.includes(r.status)) break;
      if (Date.now() > until) throw new CliError(`rollout ${r.name} is still ${r.status} after ${timeoutSeconds} s; follow it with \`ibexctl rollouts watch ${r.id}\``, EXIT.failed);
      await new Promise((res) => setTimeout(res, POLL_MS));
      r = await api.getRollout(r.id);
    }
  } finally {
    bars?.stop();
  }
  if (r.status !== 'succeeded') throw new CliError(`rollout ${r.name} ${r.status}${r.reason ? `: ${r.reason}` : ''}; see \`ibexctl rollouts get ${r.id}\``, EXIT.failed);
  io.out(`rollout ${r.name} succeeded: ${r.counts.succeeded} device(s)${r.counts.skipped ? `, ${r.counts.skipped} skipped` : ''}\n`);
}

function scheduleColumns(io: Io): Column<Schedule>[] {
  const now = io.now();
  return [
    { header: 'NAME', value: (s) => s.name },
    { header: 'CRON', value: (s) => s.cron },
    { header: 'TIME ZONE', value: (s) => s.timeZone },
    { header: 'STATE', value: (s) => (s.paused ? io.colors.yellow('paused') : 'active') },
    { header: 'NEXT', value: (s) => s.nextRunAt ?? '-' },
    { header: 'LAST', value: (s) => ago(s.lastRunAt, now) },
  ];
}

export const rolloutCommands: CommandGroup = (program, ctx) => {
  const { io } = ctx;
  const rollouts = program.command('rollouts').description('Rollouts: staged changes across the fleet (canary, waves, thresholds, rollback)');

  withOutput(
    rollouts
      .command('create')
      .description('Create a rollout from a YAML/JSON file (docs/rollouts.md); --dry-run shows the waves and each online device\'s plan and changes nothing')
      .requiredOption('-f, --file <file>', 'the rollout (`-` reads stdin)')
      .option('--dry-run', 'plan only: the waves, their devices and what each would do')
      .option('--wait <seconds>', 'dry run: how long the devices may take to answer their plan', positiveInt('--wait', 0, 120), 30)
      .option('-w, --watch', 'follow it until it finishes; exit 1 unless it succeeds'),
  ).action(async (opts: { file: string; dryRun?: boolean; wait: number; watch?: boolean }, cmd: Command) => {
    const body = await readObjectFile(io, opts.file, 'a rollout object (name:, target:, payload: ...; see docs/rollouts.md)');
    const api = ctx.client(cmd);
    const r = await api.createRollout(body, { dryRun: opts.dryRun, wait: opts.wait });
    if ('dryRun' in r) return printPreview(io, cmd, r);
    if (formatOf(cmd) !== 'table') printObject(io, formatOf(cmd), r, []);
    else io.out(`rollout ${r.name} created (${r.id}): ${r.total} device(s) in ${r.waves.length} wave(s), ${r.status}\n`);
    if (opts.watch) await watchRollout(io, api, r.id);
  });

  withOutput(
    rollouts
      .command('list')
      .alias('ls')
      .description('List rollouts, newest first')
      .option('--limit <n>', 'at most this many', positiveInt('--limit'), 50),
  ).action(async (opts: { limit: number }, cmd: Command) => {
    const api = ctx.client(cmd);
    const rows = await api.all((cursor) => api.listRollouts({ cursor, limit: Math.min(opts.limit, 200) }), opts.limit);
    printList(io, formatOf(cmd), rows, rolloutColumns(io), 'no rollouts yet; create one with `ibexctl rollouts create -f rollout.yaml`');
  });

  withOutput(rollouts.command('get <rollout>').description('Show a rollout with per-wave progress (--devices: each device with its outcome and reason)').option('--devices', 'also list the devices')).action(
    async (ref: string, opts: { devices?: boolean }, cmd: Command) => {
      const api = ctx.client(cmd);
      const r = await api.getRollout(ref);
      printRollout(io, cmd, r);
      if (opts.devices && formatOf(cmd) === 'table') {
        const devices = await api.all((cursor) => api.rolloutDevices(r.id, { cursor, limit: 1000 }));
        io.out(`\n${table(io, ['DEVICE', 'WAVE', 'STATE', 'REASON'], devices.map((d) => [d.deviceName, r.waves[d.wave]?.name ?? String(d.wave), d.state, d.reason ?? '-']))}\n`);
      }
    },
  );

  rollouts
    .command('watch <rollout>')
    .description('Follow a rollout with a progress bar per wave until it finishes; exit 0 when it succeeded, 1 otherwise')
    .option('--timeout <seconds>', 'stop waiting after this long (exit 1)', positiveInt('--timeout'))
    .action(async (ref: string, opts: { timeout?: number }, cmd: Command) => watchRollout(io, ctx.client(cmd), ref, opts.timeout));

  const control = (name: 'pause' | 'resume' | 'approve' | 'retry', description: string) =>
    withOutput(rollouts.command(`${name} <rollout>`).description(description)).action(async (ref: string, _o, cmd: Command) => {
      const r = await ctx.client(cmd).rolloutAction(ref, name);
      if (formatOf(cmd) !== 'table') return printObject(io, formatOf(cmd), r, []);
      io.out(`rollout ${r.name}: ${r.status}${r.reason ? ` (${r.reason})` : ''}\n`);
    });
  control('pause', 'Pause: no device gets a new job (results of jobs under way are still recorded)');
  control('resume', 'Resume a paused rollout');
  control('approve', 'Let the wave that waits for approval start');
  control('retry', 'Send the failed devices their job again');
  withOutput(
    rollouts
      .command('abort <rollout>')
      .description('Abort: pending devices are skipped; with --rollback the devices already changed go back')
      .option('--rollback', 'roll the changed devices back (default: the rollout\'s autoRollback)')
      .option('--no-rollback', 'do not roll back, whatever autoRollback says'),
  ).action(async (ref: string, opts: { rollback?: boolean }, cmd: Command) => {
    const raw = cmd.getOptionValueSource('rollback') === 'cli' ? { rollback: opts.rollback } : {};
    const r = await ctx.client(cmd).rolloutAction(ref, 'abort', raw);
    if (formatOf(cmd) !== 'table') return printObject(io, formatOf(cmd), r, []);
    io.out(`rollout ${r.name}: ${r.status} (${r.reason ?? 'aborted'})\n`);
  });

  const schedules = program.command('schedules').description('Schedules: recurring rollouts (cron + time zone)');
  withOutput(schedules.command('create').description('Create a schedule from a YAML/JSON file (name, cron, timeZone, rollout)').requiredOption('-f, --file <file>', 'the schedule (`-` reads stdin)')).action(
    async (opts: { file: string }, cmd: Command) => {
      const s = await ctx.client(cmd).createSchedule(await readObjectFile(io, opts.file, 'a schedule object (name:, cron:, timeZone:, rollout:)'));
      if (formatOf(cmd) !== 'table') return printObject(io, formatOf(cmd), s, []);
      io.out(`schedule ${s.name} created: ${s.cron} (${s.timeZone}), next ${s.nextRunAt ?? 'never'}\n`);
    },
  );
  withOutput(schedules.command('list').alias('ls').description('List schedules with their next occurrence')).action(async (_o, cmd: Command) => {
    printList(io, formatOf(cmd), (await ctx.client(cmd).listSchedules()).items, scheduleColumns(io), 'no schedules');
  });
  withOutput(schedules.command('get <schedule>').description('Show a schedule')).action(async (ref: string, _o, cmd: Command) => {
    const s = await ctx.client(cmd).getSchedule(ref);
    printObject(io, formatOf(cmd), s, [
      ['ID', s.id],
      ['Name', s.name],
      ['Cron', `${s.cron} (${s.timeZone})`],
      ['State', s.paused ? 'paused' : 'active'],
      ['Next', s.nextRunAt ?? '-'],
      ['Last', s.lastRunAt ?? '-'],
      ['Rollout', JSON.stringify(s.rollout)],
    ]);
  });
  for (const action of ['pause', 'resume'] as const) {
    schedules
      .command(`${action} <schedule>`)
      .description(action === 'pause' ? 'Pause: no rollout starts until resumed' : 'Resume a paused schedule')
      .action(async (ref: string, _o, cmd: Command) => {
        const s = await ctx.client(cmd).scheduleAction(ref, action);
        io.out(`schedule ${s.name}: ${s.paused ? 'paused' : `active, next ${s.nextRunAt ?? 'never'}`}\n`);
      });
  }
  schedules
    .command('delete <schedule>')
    .description('Delete a schedule (the rollouts it started stay)')
    .action(async (ref: string, _o, cmd: Command) => {
      await ctx.client(cmd).deleteSchedule(ref);
      io.out(`schedule ${ref} deleted\n`);
    });
};
