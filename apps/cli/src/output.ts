import Table from 'cli-table3';
import { stringify } from 'yaml';
import type pc from 'picocolors';

export type Colors = ReturnType<typeof pc.createColors>;
import { CliError, EXIT } from './exit-codes.js';

export const outputFormats = ['table', 'json', 'yaml'] as const;
export type OutputFormat = (typeof outputFormats)[number];

/** What a command writes to; tests and the program give their own. */
export interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
  /** stdout is a terminal (progress bars, colours). */
  tty: boolean;
  colors: Colors;
  env: Record<string, string | undefined>;
  /** Reads all of stdin (for `-f -`). */
  stdin: () => Promise<string>;
  now: () => Date;
}

export interface Column<T> {
  header: string;
  value: (row: T) => string;
}

/** A list in the chosen format: a borderless table (like kubectl), JSON or YAML of the API objects. */
export function printList<T>(io: Io, format: OutputFormat, rows: T[], columns: Column<T>[], empty = 'nothing found'): void {
  if (format !== 'table') return printData(io, format, rows);
  if (!rows.length) {
    io.err(`${empty}\n`);
    return;
  }
  io.out(`${table(io, columns.map((c) => c.header), rows.map((r) => columns.map((c) => c.value(r))))}\n`);
}

/** One object: JSON or YAML as the API returned it; `table` shows the given key/value lines. */
export function printObject(io: Io, format: OutputFormat, data: unknown, fields: Array<[string, string]>): void {
  if (format !== 'table') return printData(io, format, data);
  const width = Math.max(...fields.map(([k]) => k.length));
  io.out(fields.map(([k, v]) => `${io.colors.bold(`${k}:`.padEnd(width + 1))} ${v}`).join('\n') + '\n');
}

export function printData(io: Io, format: 'json' | 'yaml', data: unknown): void {
  io.out(format === 'json' ? `${JSON.stringify(data, null, 2)}\n` : stringify(data, { lineWidth: 0 }));
}

export function table(io: Io, head: string[], rows: string[][]): string {
  const t = new Table({
    head: head.map((h) => io.colors.bold(h)),
    chars: { top: '', 'top-mid': '', 'top-left': '', 'top-right': '', bottom: '', 'bottom-mid': '', 'bottom-left': '', 'bottom-right': '', left: '', 'left-mid': '', mid: '', 'mid-mid': '', right: '', 'right-mid': '', middle: '   ' },
    style: { head: [], border: [], 'padding-left': 0, 'padding-right': 0 },
  });
  t.push(...rows);
  return t.toString().split('\n').map((l) => l.trimEnd()).join('\n');
}

export function parseFormat(value: string): OutputFormat {
  if ((outputFormats as readonly string[]).includes(value)) return value as OutputFormat;
  throw new CliError(`-o ${value}: must be table, json or yaml`, EXIT.usage);
}

/** "3m ago", "2h ago", "5d ago"; "-" for never. */
export function ago(iso: string | null | undefined, now: Date): string {
  if (!iso) return '-';
  const s = Math.max(0, Math.round((now.getTime() - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86_400)}d ago`;
}

export function labelsText(labels: Record<string, string>): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}=${v}`);
  return parts.length ? parts.join(',') : '-';
}
