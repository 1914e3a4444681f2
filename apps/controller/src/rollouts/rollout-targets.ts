import { parseSelector } from '@ibex/spec';
import { ValidationFailed } from '../common/errors.js';
import { Prisma } from '../generated/prisma/client.js';
import { deviceIdsQuery } from '../api/devices/device-filter.js';
import { isUuid } from '../api/http/schemas.js';
import type { z } from 'zod';
import type { rolloutTarget } from './rollouts.dto.js';

export type RolloutTargetSpec = z.output<typeof rolloutTarget>;
export interface TargetDevice {
  id: string;
  name: string;
  facts: unknown;
}

type Db = Pick<Prisma.TransactionClient, '$queryRaw' | 'device'>;

/** Parses a selector; a bad term is a 400 naming `target.selector`. */
export function selectorTerms(selector: string) {
  try {
    return parseSelector(selector);
  } catch (err) {
    const issue = { path: 'target.selector', message: (err as Error).message };
    throw new ValidationFailed(`invalid target.selector: ${issue.message}`, [issue]);
  }
}

/**
 * The devices a rollout targets, by name (the order waves are cut in): not revoked; with
 * `excludeRollout`, only those not already in that rollout (devices that joined the selector).
 */
export async function resolveTargets(db: Db, target: RolloutTargetSpec, opts: { excludeRollout?: string } = {}): Promise<TargetDevice[]> {
  let ids: string[] | undefined;
  if (target.kind === 'selector') {
    const rows = await db.$queryRaw<{ id: string }[]>(deviceIdsQuery({ terms: selectorTerms(target.selector), onlineSince: new Date(0) }, 1_000_000));
    ids = rows.map((r) => r.id);
  } else if (target.kind === 'devices') {
    const refs = target.devices;
    const found = await db.device.findMany({ where: { OR: [{ id: { in: refs.filter(isUuid) } }, { name: { in: refs } }] }, select: { id: true, name: true } });
    const known = new Set(found.flatMap((d) => [d.id, d.name]));
    const missing = refs.map((ref, i) => ({ ref, i })).filter((x) => !known.has(x.ref));
    if (missing.length) {
      const issues = missing.slice(0, 20).map((m) => ({ path: `target.devices.${m.i}`, message: `no device "${m.ref}" (list devices with GET /api/v1/devices)` }));
      throw new ValidationFailed(`invalid target.devices: ${missing.length} unknown device(s): ${missing.slice(0, 5).map((m) => m.ref).join(', ')}`, issues);
    }
    ids = found.map((d) => d.id);
  }
  const exclude = opts.excludeRollout ? Prisma.sql`AND NOT EXISTS (SELECT 1 FROM rollout_target t WHERE t."rolloutId" = ${opts.excludeRollout}::uuid AND t."deviceId" = device.id)` : Prisma.empty;
  const only = ids ? (ids.length ? Prisma.sql`AND id IN (${Prisma.join(ids.map((i) => Prisma.sql`${i}::uuid`))})` : Prisma.sql`AND false`) : Prisma.empty;
  return db.$queryRaw<TargetDevice[]>`SELECT id, name, facts FROM device WHERE "revokedAt" IS NULL ${only} ${exclude} ORDER BY name ASC`;
}
