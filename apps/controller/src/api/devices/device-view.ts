import { factsSchema } from '@ibex/spec';
import type { Device, Prisma } from '../../generated/prisma/client.js';
import { toGenerationsSummary } from '../generations/generations-view.js';
import { iso } from '../http/schemas.js';
import type { DeviceStatus, DeviceSync, DeviceView } from './devices.dto.js';

/** Labels as stored (JSON) to a plain string map; anything else stored there is ignored. */
export function labelsOf(json: Prisma.JsonValue): Record<string, string> {
  if (!json || typeof json !== 'object' || Array.isArray(json)) return {};
  return Object.fromEntries(Object.entries(json).filter((e): e is [string, string] => typeof e[1] === 'string'));
}

/** docs/protocol.md: online = stream open (connectedAt) and seen within offlineAfterMs. */
export function deviceStatus(d: Pick<Device, 'revokedAt' | 'connectedAt' | 'lastSeenAt'>, now: Date, offlineAfterMs: number): DeviceStatus {
  if (d.revokedAt) return 'revoked';
  if (d.connectedAt && d.lastSeenAt && now.getTime() - d.lastSeenAt.getTime() < offlineAfterMs) return 'online';
  return 'offline';
}

// Lists of devices stay small: the inventory (up to 256 generations) is only summarised here.
function withoutGenerations<F extends { generations?: unknown }>(f: F): Omit<F, 'generations'> {
  const { generations: _inventory, ...rest } = f;
  return rest;
}

export function toDeviceView(d: Device, sync: DeviceSync, now: Date, offlineAfterMs: number): DeviceView {
  const facts = d.facts === null ? undefined : factsSchema.safeParse(d.facts);
  return {
    id: d.id,
    name: d.name,
    labels: labelsOf(d.labels),
    status: deviceStatus(d, now, offlineAfterMs),
    sync,
    lastSeenAt: iso(d.lastSeenAt),
    connectedAt: iso(d.connectedAt),
    enrolledAt: iso(d.enrolledAt),
    revokedAt: iso(d.revokedAt),
    agentVersion: d.agentVersion,
    facts: facts?.success ? withoutGenerations(facts.data) : null,
    generations: toGenerationsSummary(d.facts),
    desiredRevision: d.desiredRevision,
    receivedRevision: d.receivedRevision,
    appliedRevision: d.appliedRevision,
  };
}
