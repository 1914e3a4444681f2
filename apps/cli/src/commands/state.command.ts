import type { Command } from 'commander';
import type { DeviceState, IbexClient } from '@ibex/client';
import { renderPlan } from '../diff.js';
import { CliError, EXIT } from '../exit-codes.js';
import { printList, printObject } from '../output.js';
import { positiveInt } from '../parsers.js';
import { type CommandGroup, formatOf, withOutput } from '../program.js';
import { readSpecFile } from '../spec-file.js';
import { watchJob } from './jobs.command.js';

const POLL_MS = 500;

export const stateCommands: CommandGroup = (program, ctx) => {
  const { io } = ctx;
  const state = program.command('state').description('Desired and reported state of a device');

  withOutput(state.command('get <device>').description("A device's revisions and what the agent reported per section")).action(async (ref: string, _o, cmd: Command) => {
    const s = await ctx.client(cmd).getState(ref);
    if (formatOf(cmd) !== 'table') return printObject(io, formatOf(cmd), s, []);
    printObject(io, 'table', s, [
      ['Device', s.deviceName],
      ['Revision', `desired ${s.desiredRevision}, received ${s.receivedRevision}, applied ${s.appliedRevision}`],
      ['In sync', s.inSync ? io.colors.green('yes') : io.colors.yellow('no')],
    ]);
    io.out('\n');
    printList(io, 'table', s.sections, [
      { header: 'SECTION', value: (x) => x.section },
      { header: 'STATE', value: (x) => x.state },
      { header: 'REVISION', value: (x) => String(x.revision) },
      { header: 'OBSERVED', value: (x) => x.observedAt },
      { header: 'ERROR', value: (x) => x.error ?? '' },
    ], 'no sections reported yet');
  });

  withOutput(
    state
      .command('apply <device>')
      .description('Set the desired state from a YAML or JSON file; --dry-run shows what would change (diffs) and changes nothing')
      .requiredOption('-f, --file <file>', 'spec file, YAML or JSON (- for standard input)')
      .option('-m, --message <text>', 'why, for the revision history')
      .option('--dry-run', 'plan only: ask the device what would change, print the diff, change nothing')
      .option('--wait', 'after applying, wait until the device reports the revision in sync (exit 1 when a section fails)')
      .option('--timeout <seconds>', 'how long --dry-run / --wait wait for the device (default 60)', positiveInt('--timeout', 1, 3600), 60),
  ).action(async (ref: string, opts: { file: string; message?: string; dryRun?: boolean; wait?: boolean; timeout: number }, cmd: Command) => {
    const spec = await readSpecFile(io, opts.file);
    const api = ctx.client(cmd);
    const format = formatOf(cmd);
    if (opts.dryRun) {
      const job = await api.plan(ref, { spec }, Math.min(opts.timeout, 120));
      const done = job.result ? job : await watchJob(io, api, job.id, { quiet: true, timeoutSeconds: opts.timeout });
      if (done.status !== 'succeeded' || !done.result) throw new CliError(`the dry run ended ${done.status}${done.error ? `: ${done.error}` : ''}`, EXIT.failed);
      if (format !== 'table') return printObject(io, format, done.result, []);
      io.out(renderPlan(done.result as NonNullable<typeof job.result>, io.colors));
      return;
    }
    const rev = await api.putDesiredState(ref, { spec, ...(opts.message ? { message: opts.message } : {}) });
    if (format !== 'table') {
      if (!opts.wait) return printObject(io, format, rev, []);
    } else io.out(`device ${ref}: desired revision ${rev.revision} stored${opts.wait ? '; waiting for the device' : ''}\n`);
    if (!opts.wait) return;
    const s = await waitInSync(api, ref, rev.revision, opts.timeout);
    if (format !== 'table') printObject(io, format, s, []);
    const failed = s.sections.filter((x) => x.revision === rev.revision && ['failed', 'reverted', 'unsupported'].includes(x.state));
    if (failed.length) throw new CliError(`revision ${rev.revision} did not apply cleanly`, EXIT.failed, failed.map((x) => `${x.section}: ${x.state}${x.error ? ` (${x.error})` : ''}`));
    if (format === 'table') io.out(`device ${s.deviceName}: revision ${rev.revision} applied, every section in sync\n`);
  });
};

/** Polls the reported state until `revision` is applied (or a section of it failed), or the time is up. */
async function waitInSync(api: IbexClient, ref: string, revision: number, timeoutSeconds: number): Promise<DeviceState> {
  const until = Date.now() + timeoutSeconds * 1000;
  for (;;) {
    const s = await api.getState(ref);
    const settled = s.sections.length > 0 && s.sections.every((x) => x.revision >= revision && x.state !== 'pending' && x.state !== 'applying');
    if ((s.appliedRevision >= revision && s.inSync) || settled) return s;
    if (Date.now() > until) {
      throw new CliError(`device ${s.deviceName} has not applied revision ${revision} after ${timeoutSeconds} s (applied: ${s.appliedRevision}); is it online? (ibexctl devices get ${ref})`, EXIT.failed);
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}
