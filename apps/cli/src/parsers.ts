import { CliError, EXIT } from './exit-codes.js';

/** A repeatable option: every value, in order. */
export const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

/** A commander value parser for a whole number from `min` to `max`, naming the flag when it is not. */
export function positiveInt(flag: string, min = 1, max = Number.MAX_SAFE_INTEGER) {
  return (v: string): number => {
    const n = Number(v);
    if (!/^\d+$/.test(v) || n < min || n > max) throw new CliError(`${flag} ${v}: must be a whole number from ${min} to ${max}`, EXIT.usage);
    return n;
  };
}

/** `key=value` pairs (repeatable `-l`/`--param`) into an object; `what` names the flag in errors. */
export function keyValues(pairs: string[] | undefined, what: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of pairs ?? []) {
    const eq = p.indexOf('=');
    if (eq < 1) throw new CliError(`${what} "${p}": must be key=value`, EXIT.usage);
    out[p.slice(0, eq)] = p.slice(eq + 1);
  }
  return out;
}
