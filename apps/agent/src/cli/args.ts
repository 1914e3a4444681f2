import { UsageError } from '../common/errors.js';

export interface FlagSpec {
  /** Without the leading dashes. */
  name: string;
  /** `switch` takes no value (also `--no-name` and `--name=false`); `value` needs one. */
  kind: 'switch' | 'value';
  /** What to put after the flag in help, e.g. FILE. */
  arg?: string;
  help: string;
  required?: boolean;
}

export type ParsedFlags = Record<string, string | boolean>;

/**
 * Parses `--name value`, `--name=value`, `--switch`, `--no-switch`. Anything else is refused with
 * the flag named and the command's flags listed: a typo must not be silently ignored.
 */
export function parseFlags(command: string, argv: readonly string[], specs: readonly FlagSpec[]): ParsedFlags {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const known = () => specs.map((s) => `--${s.name}`).join(', ') || 'none';
  const out: ParsedFlags = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--') || arg === '--') {
      throw new UsageError(`ibex-agent ${command}: unexpected argument "${arg}"; flags are: ${known()}`);
    }
    const eq = arg.indexOf('=');
    let name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
    let inline: string | undefined = eq < 0 ? undefined : arg.slice(eq + 1);
    let spec = byName.get(name);
    if (!spec && name.startsWith('no-') && byName.get(name.slice(3))?.kind === 'switch' && inline === undefined) {
      name = name.slice(3);
      spec = byName.get(name);
      inline = 'false';
    }
    if (!spec) throw new UsageError(`ibex-agent ${command}: unknown flag --${name}; flags are: ${known()}`);
    if (Object.hasOwn(out, name)) throw new UsageError(`ibex-agent ${command}: --${name} given twice`);
    if (spec.kind === 'switch') {
      if (inline === undefined) out[name] = true;
      else if (inline === 'true') out[name] = true;
      else if (inline === 'false') out[name] = false;
      else throw new UsageError(`ibex-agent ${command}: --${name} is a switch; use --${name}, --no-${name} or --${name}=true|false`);
      continue;
    }
    if (inline === undefined) {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('--')) throw new UsageError(`ibex-agent ${command}: --${name} needs a value (${spec.arg ?? 'VALUE'})`);
      inline = next;
      i++;
    }
    if (inline === '') throw new UsageError(`ibex-agent ${command}: --${name} needs a non-empty value (${spec.arg ?? 'VALUE'})`);
    out[name] = inline;
  }
  for (const s of specs) {
    if (s.required && !Object.hasOwn(out, s.name)) throw new UsageError(`ibex-agent ${command}: --${s.name} ${s.arg ?? 'VALUE'} is required`);
  }
  return out;
}

export function flagHelp(specs: readonly FlagSpec[]): string {
  const rows = specs.map((s) => [`--${s.name}${s.kind === 'value' ? ` ${s.arg ?? 'VALUE'}` : ''}`, s.help + (s.required ? ' (required)' : '')] as const);
  const w = Math.max(0, ...rows.map((r) => r[0].length));
  return rows.map(([f, h]) => `  ${f.padEnd(w)}  ${h}`).join('\n');
}
