import type { Command } from 'commander';
import type { Device } from '@ibex/client';
import { CliError, EXIT } from '../exit-codes.js';
import { ago, type Column, type Io, labelsText, printList, printObject } from '../output.js';
import { collect, positiveInt } from '../parsers.js';
import { type CommandGroup, formatOf, withOutput } from '../program.js';


export function deviceColumns(io: Io): Column<Device>[] {
  const c = io.colors;
  const status = { online: c.green, offline: c.yellow, revoked: c.red } as const;
  const sync = { in_sync: c.green, pending: c.yellow, drifted: c.magenta, failed: c.red, unsupported: c.magenta, none: c.dim } as const;
  const now = io.now();
  return [
    { header: 'NAME', value: (d) => d.name },
    { header: 'STATUS', value: (d) => status[d.status](d.status) },
    { header: 'SYNC', value: (d) => sync[d.sync](d.sync) },
    { header: 'REVISION', value: (d) => `${d.appliedRevision}/${d.desiredRevision}` },
    { header: 'LAST SEEN', value: (d) => ago(d.lastSeenAt, now) },
    { header: 'AGENT', value: (d) => d.agentVersion ?? '-' },
    { header: 'LABELS', value: (d) => labelsText(d.labels) },
  ];
}

/** `key=value` sets, `key-` removes (as kubectl label). */
export function parseLabelArgs(args: string[]): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  for (const a of args) {
    const eq = a.indexOf('=');
    if (eq > 0) out[a.slice(0, eq)] = a.slice(eq + 1);
    else if (a.endsWith('-') && a.length > 1) out[a.slice(0, -1)] = null;
    else throw new CliError(`label "${a}": give key=value to set a label or key- to remove one`, EXIT.usage);
  }
  return out;
}

export const deviceCommands: CommandGroup = (program, ctx) => {
  const { io } = ctx;
  const devices = program.command('devices').description('Devices: list, inspect, label, revoke');

  withOutput(
    devices
      .command('list')
      .alias('ls')
      .description('List devices by name')
      .option('-l, --selector <selector>', 'label selector: key=value, key!=value, key, !key (repeatable; all must match)', collect)
      .option('--status <status>', 'online, offline or revoked')
      .option('--sync <sync>', 'none, in_sync, pending, drifted, failed or unsupported')
      .option('--limit <n>', 'at most this many (default: all)', positiveInt('--limit')),
  ).action(async (opts: { selector?: string[]; status?: string; sync?: string; limit?: number }, cmd: Command) => {
    const api = ctx.client(cmd);
    const q = { selector: opts.selector?.join(','), status: opts.status, sync: opts.sync };
    const rows = await api.all((cursor) => api.listDevices({ ...q, cursor, limit: Math.min(opts.limit ?? 500, 500) }), opts.limit);
    printList(io, formatOf(cmd), rows, deviceColumns(io), 'no devices match');
  });

  withOutput(devices.command('get <device>').description('Show one device (by name or id)')).action(async (ref: string, _o, cmd: Command) => {
    const d = await ctx.client(cmd).getDevice(ref);
    const f = d.facts;
    printObject(io, formatOf(cmd), d, [
      ['Name', d.name],
      ['ID', d.id],
      ['Status', d.status],
      ['Sync', d.sync],
      ['Revision', `desired ${d.desiredRevision}, received ${d.receivedRevision}, applied ${d.appliedRevision}`],
      ['Labels', labelsText(d.labels)],
      ['Last seen', `${ago(d.lastSeenAt, io.now())}${d.lastSeenAt ? ` (${d.lastSeenAt})` : ''}`],
      ['Enrolled', d.enrolledAt],
      ['Agent', d.agentVersion ?? '-'],
      ['Host', f ? `${f.hostname ?? '?'}, ${f.osRelease?.prettyName ?? 'unknown OS'}, kernel ${f.kernel ?? '?'} (${f.arch ?? '?'})` : 'no facts reported yet'],
      ['Generations', d.generations ? `current ${d.generations.current ?? '-'}, booted ${d.generations.booted ?? '-'}, ${d.generations.count} in all` : '-'],
    ]);
  });

  withOutput(
    devices
      .command('label <device> <labels...>')
      .description('Set (key=value) or remove (key-) labels of a device; other labels stay'),
  ).action(async (ref: string, labels: string[], _o, cmd: Command) => {
    const d = await ctx.client(cmd).labelDevice(ref, parseLabelArgs(labels));
    if (formatOf(cmd) === 'table') io.out(`device ${d.name} labelled: ${labelsText(d.labels)}\n`);
    else printObject(io, formatOf(cmd), d, []);
  });

  withOutput(devices.command('revoke <device>').description('Revoke a device: its credential stops working and its stream is closed at once')).action(
    async (ref: string, _o, cmd: Command) => {
      const d = await ctx.client(cmd).revokeDevice(ref);
      if (formatOf(cmd) === 'table') io.out(`device ${d.name} revoked; it must enroll again to come back\n`);
      else printObject(io, formatOf(cmd), d, []);
    },
  );

  withOutput(devices.command('identity <device>').description("A device's credentials and certificates (newest first), to revoke one")).action(async (ref: string, _o, cmd: Command) => {
    const id = await ctx.client(cmd).deviceIdentity(ref);
    if (formatOf(cmd) !== 'table') return printObject(io, formatOf(cmd), id, []);
    const state = (r: { revokedAt: string | null }, notAfter?: string) => (r.revokedAt ? io.colors.red('revoked') : notAfter && Date.parse(notAfter) <= io.now().getTime() ? io.colors.yellow('expired') : io.colors.green('valid'));
    io.out('Credentials\n');
    printList(io, 'table', id.credentials, [
      { header: 'ID', value: (c) => c.id },
      { header: 'STATUS', value: (c) => state(c) },
      { header: 'CREATED', value: (c) => c.createdAt },
    ], 'none');
    io.out('Certificates\n');
    printList(io, 'table', id.certificates, [
      { header: 'SERIAL', value: (c) => c.serial },
      { header: 'STATUS', value: (c) => state(c, c.notAfter) },
      { header: 'NOT AFTER', value: (c) => c.notAfter },
      { header: 'ID', value: (c) => c.id },
    ], 'none');
  });

  withOutput(devices.command('revoke-credential <device> <credential-id>').description('Revoke one device credential; a stream it let in is closed at once')).action(
    async (ref: string, credential: string, _o, cmd: Command) => {
      const c = await ctx.client(cmd).revokeDeviceCredential(ref, credential);
      if (formatOf(cmd) === 'table') io.out(`credential ${c.id} of device ${ref} revoked\n`);
      else printObject(io, formatOf(cmd), c, []);
    },
  );

  withOutput(devices.command('revoke-certificate <device> <certificate>').description('Revoke one device certificate (its id or serial); a stream it let in is closed at once')).action(
    async (ref: string, certificate: string, _o, cmd: Command) => {
      const c = await ctx.client(cmd).revokeDeviceCertificate(ref, certificate);
      if (formatOf(cmd) === 'table') io.out(`certificate ${c.serial} of device ${ref} revoked\n`);
      else printObject(io, formatOf(cmd), c, []);
    },
  );

  withOutput(devices.command('summary').description('The fleet at a glance: devices by status and sync, unfinished jobs')).action(async (_o, cmd: Command) => {
    const s = await ctx.client(cmd).fleetSummary();
    printObject(io, formatOf(cmd), s, [
      ['Devices', `${s.devices.total} (${s.devices.online} online, ${s.devices.offline} offline, ${s.devices.revoked} revoked)`],
      ['Sync', Object.entries(s.sync).map(([k, v]) => `${k} ${v}`).join(', ')],
      ['Jobs', `${s.jobs.queued} queued, ${s.jobs.delivered} delivered, ${s.jobs.running} running`],
    ]);
  });
};
