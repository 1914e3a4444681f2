import type { GenerationsInventory } from '@ibex/spec';

export const isoOrDash = (ms: number | null | undefined) => (ms ? new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z') : '-');

/**
 * The inventory as a table for people: one row per generation (newest first) with its status and
 * what points at it, then the trial. `unknown` is a generation the agent has no verdict on
 * (docs/generations.md).
 */
export function inventoryLines(inv: GenerationsInventory): string[] {
  const lines = [`generations on ${inv.volume}: ${inv.generations.length}, current ${inv.current ?? '-'}, booted ${inv.booted ?? '-'}, last good ${inv.lastGood ?? '-'}`];
  const rows = [...inv.generations].reverse().map((g) => {
    const flags = [g.current && 'current', g.booted && 'booted', g.id === inv.lastGood && 'last good', !g.complete && 'incomplete', g.complete && !g.readOnly && 'writable'].filter(Boolean);
    return [g.id, isoOrDash(g.createdAtMs), g.status, g.slot === null ? '-' : String(g.slot), flags.join(', ')];
  });
  const head = ['ID', 'CREATED', 'STATUS', 'SLOT', ''];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  for (const r of [head, ...rows]) lines.push(`  ${r.map((c, i) => c.padEnd(widths[i]!)).join('  ')}`.trimEnd());
  if (inv.trial) {
    lines.push(
      `trial: ${inv.trial.id} until ${isoOrDash(inv.trial.deadlineAtMs)} (${inv.trial.bootsLeft} boot(s) left): good once \`ibex-agent run\` reaches the controller and the checks pass, else the agent switches back`,
    );
  } else {
    lines.push('trial: none');
  }
  return lines;
}
