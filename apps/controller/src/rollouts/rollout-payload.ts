import { type GenerationsInventory, generationsInventorySchema, type JobType } from '@ibex/spec';
import type { RolloutPayload } from './rollouts.dto.js';

/**
 * What each payload means for one device: the job it is sent, what a rollback sends, and (for
 * a fleet generation rollback) whether the device can take part at all. Pure.
 */

/** What a rollback returns the device to; stored on the target when it is dispatched. */
export type Previous = { revision: number } | { generation: string | null };

export interface DeviceJob {
  type: JobType;
  params: Record<string, unknown>;
}

export function inventoryOf(facts: unknown): GenerationsInventory | null {
  const g = (facts as { generations?: unknown } | null)?.generations;
  const r = generationsInventorySchema.safeParse(g);
  return r.success ? r.data : null;
}

/**
 * For a generation rollback: the generation the device goes back to, or why it is skipped
 * (the reason is shown per device). Other payloads: every device takes part.
 */
export function rollbackTargetOf(payload: RolloutPayload, facts: unknown): { to: string } | { skip: string } | null {
  if (payload.kind !== 'generation_rollback') return null;
  const inv = inventoryOf(facts);
  if (!inv) return { skip: 'the device reports no generations (no btrfs generations layout, or an agent without the generations capability)' };
  const usable = inv.generations.filter((g) => g.complete && g.status !== 'bad');
  let target: GenerationsInventory['generations'][number] | undefined;
  if (payload.toGeneration !== undefined) {
    target = inv.generations.find((g) => g.id === payload.toGeneration);
    if (!target) return { skip: `the device no longer holds generation "${payload.toGeneration}" (it has: ${inv.generations.map((g) => g.id).join(', ') || 'none'})` };
    if (!target.complete) return { skip: `generation "${target.id}" is incomplete on the device` };
    if (target.status === 'bad') return { skip: `generation "${target.id}" is marked bad on the device` };
  } else {
    const at = new Date(payload.toDate!).getTime();
    target = usable.filter((g) => g.createdAtMs !== null && g.createdAtMs <= at).sort((a, b) => b.createdAtMs! - a.createdAtMs!)[0];
    if (!target) return { skip: `the device holds no complete, not-bad generation created at or before ${payload.toDate} (it has: ${inv.generations.map((g) => g.id).join(', ') || 'none'})` };
  }
  if (target.id === inv.current) return { skip: `generation "${target.id}" is already current; nothing to roll back` };
  return { to: target.id };
}

/** The job a device is sent; `rollbackTo` comes from rollbackTargetOf. */
export function deviceJob(payload: RolloutPayload, rollbackTo: string | null, rolloutName: string): DeviceJob {
  switch (payload.kind) {
    case 'desired_state':
      return { type: 'state.apply', params: {} };
    case 'generation_upgrade':
      return { type: 'generations.upgrade', params: payload.upgrade as Record<string, unknown> };
    case 'generation_rollback':
      return { type: 'generations.rollback', params: { to: rollbackTo!, reason: `rollout ${rolloutName}` } };
  }
}

/** The job that undoes a device's change, or null when there is nothing known to go back to. */
export function undoJob(payload: RolloutPayload, previous: Previous | null, rolloutName: string): DeviceJob | null {
  if (!previous) return null;
  if (payload.kind === 'desired_state') return 'revision' in previous ? { type: 'state.apply', params: {} } : null;
  if (!('generation' in previous) || !previous.generation) return null;
  return { type: 'generations.rollback', params: { to: previous.generation, reason: `rollback of rollout ${rolloutName}` } };
}

/** A finished job's result as the rollout sees it: a state.apply that left a section failed did not succeed. */
export function jobFailure(type: string, status: string, error: string | null, result: unknown): string | null {
  if (status !== 'succeeded') return error ?? `job ${status}`;
  if (type !== 'state.apply') return null;
  const sections = (result as { sections?: { section: string; state: string; error?: string }[] } | null)?.sections ?? [];
  const bad = sections.filter((s) => s.state !== 'in_sync');
  return bad.length ? bad.map((s) => `section ${s.section} ${s.state}${s.error ? `: ${s.error}` : ''}`).join('; ') : null;
}
