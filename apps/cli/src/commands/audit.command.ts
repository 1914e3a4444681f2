import type { Command } from 'commander';
import { printList } from '../output.js';
import { positiveInt } from '../parsers.js';
import { type CommandGroup, formatOf, withOutput } from '../program.js';

export const auditCommands: CommandGroup = (program, ctx) => {
  const { io } = ctx;
  const audit = program.command('audit').description('The audit log: every change, who made it, when');
  withOutput(
    audit
      .command('list')
      .alias('ls')
      .description('Audit events, newest first')
      .option('--action <action>', 'an action (device.revoke) or a prefix (device.*)')
      .option('--target-type <type>', 'device, job, api_token, ...')
      .option('--target-id <id>', 'events about this target')
      .option('--since <time>', 'at or after this ISO 8601 time')
      .option('--until <time>', 'before this ISO 8601 time')
      .option('--limit <n>', 'at most this many (default 50)', positiveInt('--limit'), 50),
  ).action(async (opts: { action?: string; targetType?: string; targetId?: string; since?: string; until?: string; limit: number }, cmd: Command) => {
    const api = ctx.client(cmd);
    const { limit, action, targetType, targetId, since, until } = opts;
    const filter = { action, targetType, targetId, since, until };
    const rows = await api.all((cursor) => api.listAudit({ ...filter, cursor, limit: Math.min(limit, 1000) }), limit);
    printList(io, formatOf(cmd), rows, [
      { header: 'TIME', value: (e) => e.at },
      { header: 'ACTION', value: (e) => e.action },
      { header: 'ACTOR', value: (e) => `${e.actor.type}:${e.actor.name ?? e.actor.id ?? '-'}` },
      { header: 'TARGET', value: (e) => (e.target ? `${e.target.type}:${e.target.id}` : '-') },
    ], 'no audit events match');
  });
};
