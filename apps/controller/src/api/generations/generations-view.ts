import { generationsInventorySchema, type GenerationsInventory } from '@ibex/spec';
import type { Device, Prisma } from '../../generated/prisma/client.js';
import type { GenerationsSummary, GenerationsView } from './generations.dto.js';

/** The inventory in the device's stored facts; undefined when it reported none (or it no longer parses). */
export function inventoryOf(facts: Prisma.JsonValue): GenerationsInventory | undefined {
  if (!facts || typeof facts !== 'object' || Array.isArray(facts) || !('generations' in facts)) return undefined;
  const r = generationsInventorySchema.safeParse(facts.generations);
  return r.success ? r.data : undefined;
}

const isoOrNull = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export function toGenerationsView(d: Pick<Device, 'id' | 'name' | 'facts'>): GenerationsView {
  const inv = inventoryOf(d.facts);
  if (!inv) return { deviceId: d.id, deviceName: d.name, supported: false, volume: null, current: null, booted: null, lastGood: null, trial: null, generations: [], collectedAt: null };
  return {
    deviceId: d.id,
    deviceName: d.name,
    supported: true,
    volume: inv.volume,
    current: inv.current,
    booted: inv.booted,
    lastGood: inv.lastGood,
    trial: inv.trial ? { id: inv.trial.id, deadlineAt: new Date(inv.trial.deadlineAtMs).toISOString(), bootsLeft: inv.trial.bootsLeft } : null,
    generations: inv.generations.map((g) => ({
      id: g.id,
      createdAt: isoOrNull(g.createdAtMs),
      status: g.status,
      booted: g.booted,
      current: g.current,
      slot: g.slot,
      readOnly: g.readOnly,
      complete: g.complete,
    })),
    collectedAt: new Date(inv.collectedAtMs).toISOString(),
  };
}

export function toGenerationsSummary(facts: Prisma.JsonValue): GenerationsSummary | null {
  const inv = inventoryOf(facts);
  return inv ? { current: inv.current, booted: inv.booted, lastGood: inv.lastGood, trial: inv.trial?.id ?? null, count: inv.generations.length } : null;
}
