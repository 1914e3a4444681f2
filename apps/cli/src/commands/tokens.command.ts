import type { Command } from 'commander';
import type { TokenRole } from '@ibex/client';
import { CliError, EXIT } from '../exit-codes.js';
import { ago, labelsText, printList, printObject } from '../output.js';
import { collect, keyValues, positiveInt } from '../parsers.js';
import { type CommandGroup, formatOf, withOutput } from '../program.js';

const ROLES: TokenRole[] = ['admin', 'operator', 'viewer'];

/** `enrollment-tokens` (devices enroll with them) and `api-tokens` (operators and scripts use them). */
export const tokenCommands: CommandGroup = (program, ctx) => {
  const { io } = ctx;
  const et = program.command('enrollment-tokens').description('Tokens devices enroll with');

  withOutput(
    et
      .command('create')
      .description('Create an enrollment token; prints the secret (shown once) and the enroll command')
      .option('--description <text>', 'what or where it is for', '')
      .option('--max-uses <n>', 'how many devices may enroll with it, or "unlimited" (default 1)', (v: string) => (v === 'unlimited' ? null : positiveInt('--max-uses', 1, 1_000_000)(v)), 1)
      .option('--expires-in-hours <n>', 'hours until it expires (default 24)', positiveInt('--expires-in-hours', 1, 8760), 24)
      .option('-l, --label <key=value>', 'a label every device enrolled with it gets (repeatable)', collect),
  ).action(async (opts: { description: string; maxUses: number | null; expiresInHours: number; label?: string[] }, cmd: Command) => {
    const t = await ctx.client(cmd).createEnrollmentToken({ description: opts.description, maxUses: opts.maxUses, expiresInHours: opts.expiresInHours, labels: keyValues(opts.label, '--label') });
    if (formatOf(cmd) !== 'table') return printObject(io, formatOf(cmd), t, []);
    io.out(`enrollment token ${t.id} created (shown only now):\n  ${t.token}\nOn the device:\n  ${t.enrollCommand}\n`);
  });

  withOutput(et.command('list').alias('ls').description('Enrollment tokens, newest first (never the secrets)')).action(async (_o, cmd: Command) => {
    const api = ctx.client(cmd);
    const rows = await api.all((cursor) => api.listEnrollmentTokens({ cursor, limit: 1000 }));
    printList(io, formatOf(cmd), rows, [
      { header: 'ID', value: (t) => t.id },
      { header: 'PREFIX', value: (t) => t.prefix },
      { header: 'STATUS', value: (t) => t.status },
      { header: 'USES', value: (t) => `${t.uses}/${t.maxUses ?? '∞'}` },
      { header: 'EXPIRES', value: (t) => t.expiresAt },
      { header: 'LABELS', value: (t) => labelsText(t.labels) },
      { header: 'DESCRIPTION', value: (t) => t.description },
    ], 'no enrollment tokens');
  });

  et.command('revoke <id>')
    .description('Revoke an enrollment token (enrolled devices are not affected)')
    .action(async (id: string, _o, cmd: Command) => {
      await ctx.client(cmd).revokeEnrollmentToken(id);
      io.out(`enrollment token ${id} revoked\n`);
    });

  const at = program.command('api-tokens').description('API tokens (admin only)');
  withOutput(
    at
      .command('create')
      .description('Create an API token; prints the secret (shown once)')
      .requiredOption('--name <name>', 'what it is for, e.g. ci-deploy')
      .requiredOption('--role <role>', 'admin, operator or viewer')
      .option('--expires-in-days <n>', 'days until it expires (default: never)', positiveInt('--expires-in-days', 1, 3650)),
  ).action(async (opts: { name: string; role: string; expiresInDays?: number }, cmd: Command) => {
    if (!ROLES.includes(opts.role as TokenRole)) throw new CliError(`--role ${opts.role}: must be admin, operator or viewer`, EXIT.usage);
    const t = await ctx.client(cmd).createApiToken({ name: opts.name, role: opts.role as TokenRole, ...(opts.expiresInDays ? { expiresInDays: opts.expiresInDays } : {}) });
    if (formatOf(cmd) !== 'table') return printObject(io, formatOf(cmd), t, []);
    io.out(`API token ${t.id} (${t.role}) created (shown only now):\n  ${t.token}\n`);
  });

  withOutput(at.command('list').alias('ls').description('API tokens, newest first (never the secrets)')).action(async (_o, cmd: Command) => {
    const api = ctx.client(cmd);
    const rows = await api.all((cursor) => api.listApiTokens({ cursor, limit: 1000 }));
    printList(io, formatOf(cmd), rows, [
      { header: 'ID', value: (t) => t.id },
      { header: 'NAME', value: (t) => t.name },
      { header: 'ROLE', value: (t) => t.role },
      { header: 'STATUS', value: (t) => t.status },
      { header: 'PREFIX', value: (t) => t.prefix },
      { header: 'LAST USED', value: (t) => ago(t.lastUsedAt, io.now()) },
      { header: 'EXPIRES', value: (t) => t.expiresAt ?? 'never' },
    ], 'no API tokens');
  });

  at.command('revoke <id>')
    .description('Revoke an API token (takes effect on its next request)')
    .action(async (id: string, _o, cmd: Command) => {
      await ctx.client(cmd).revokeApiToken(id);
      io.out(`API token ${id} revoked\n`);
    });
};
