import type { Command } from 'commander';
import { CliError, EXIT } from '../exit-codes.js';
import { printList } from '../output.js';
import { type CommandGroup, formatOf, withOutput } from '../program.js';
import { watchJob } from './jobs.command.js';

export const generationCommands: CommandGroup = (program, ctx) => {
  const { io } = ctx;
  const gens = program.command('generations').description('btrfs generations of a device: list, roll back');

  withOutput(gens.command('list <device>').alias('ls').description('The generations the device last reported, newest first')).action(async (ref: string, _o, cmd: Command) => {
    const g = await ctx.client(cmd).getGenerations(ref);
    if (formatOf(cmd) !== 'table') return printList(io, formatOf(cmd), [g], []);
    if (!g.supported) throw new CliError(`device ${g.deviceName} reports no generations (no btrfs generations layout, or its agent lacks the capability)`, EXIT.notFound);
    const mark = (id: string) => [id === g.current ? 'current' : '', id === g.booted ? 'booted' : '', id === g.lastGood ? 'last-good' : '', id === g.trial?.id ? 'trial' : ''].filter(Boolean).join(',');
    printList(io, 'table', g.generations, [
      { header: 'ID', value: (x) => x.id },
      { header: 'STATUS', value: (x) => x.status },
      { header: 'ROLE', value: (x) => mark(x.id) || '-' },
      { header: 'SLOT', value: (x) => (x.slot === null ? '-' : String(x.slot)) },
      { header: 'CREATED', value: (x) => x.createdAt ?? '-' },
      { header: 'COMPLETE', value: (x) => (x.complete ? 'yes' : 'no') },
    ]);
  });

  withOutput(
    gens
      .command('rollback <device>')
      .description('Switch the device back to the previous generation (or --to one); follows the job with --watch')
      .option('--to <generation>', 'generation id to switch to (default: the previous one)')
      .option('--reason <text>', 'why, kept in the job and the audit log')
      .option('-w, --watch', 'follow the rollback job until it finishes; exit 1 unless it succeeds'),
  ).action(async (ref: string, opts: { to?: string; reason?: string; watch?: boolean }, cmd: Command) => {
    const api = ctx.client(cmd);
    const job = await api.rollback(ref, { ...(opts.to ? { to: opts.to } : {}), ...(opts.reason ? { reason: opts.reason } : {}) });
    if (formatOf(cmd) !== 'table') printList(io, formatOf(cmd), [job], []);
    else io.out(`rollback job ${job.id} created for ${ref}\n`);
    if (!opts.watch) return;
    const done = await watchJob(io, api, job.id);
    if (done.status !== 'succeeded') throw new CliError(`rollback job ${done.id} ${done.status}${done.error ? `: ${done.error}` : ''}`, EXIT.failed);
    io.out(`rolled back; the device now boots ${(done.result as { current?: string } | null)?.current ?? 'the previous generation'}\n`);
  });
};
