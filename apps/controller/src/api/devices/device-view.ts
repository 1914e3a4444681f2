import type { Prisma } from '../../generated/prisma/client.js';
import { Prisma as P } from '../../generated/prisma/client.js';
import { toGenerationsSummary } from '../generations/generations-view.js';
import { deviceStatusSql } from './device-filter.js';

/** Labels as stored (JSON) to a plain string map; anything else stored there is ignored. */
export function labelsOf(json: Prisma.JsonValue): Record<string, string> {
  if (!json || typeof json !== 'object' || Array.isArray(json)) return {};
  return Object.fromEntries(Object.entries(json).filter((e): e is [string, string] => typeof e[1] === 'string'));
}

/** A `timestamp(3)` column holding UTC as the API's ISO 8601 text (what Date#toISOString gives). */
const isoSql = (col: string) => P.raw(`to_char(d."${col}", 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`);

/**
 * The API's view of a device (devices.dto.ts `deviceView`, properties in its order) as JSON text
 * built by Postgres, from a relation `d` of device rows with a `sync` column. The list of devices
 * is the API's busiest read: built here it costs the controller's one thread no row decoding, no
 * object per field and no JSON.stringify (at 200 pages of 100 devices a second those took most
 * of a core, bench/README.md "REST"). Facts are stored as the gateway parsed them (factsSchema),
 * so they are not parsed again; labels keep their string values only, as labelsOf. The
 * generations summary is left null here and filled in by withGenerations, for the devices whose
 * facts carry an inventory (`inventory` column).
 */
export function deviceViewSql(onlineSince: Date): Prisma.Sql {
  return P.sql`json_build_object(
    'id', d.id,
    'name', d.name,
    'labels', CASE WHEN jsonb_typeof(d.labels) = 'object'
      THEN (SELECT COALESCE(jsonb_object_agg(l.key, l.value), '{}'::jsonb) FROM jsonb_each(d.labels) l WHERE jsonb_typeof(l.value) = 'string')
      ELSE '{}'::jsonb END,
    'status', ${deviceStatusSql(onlineSince)},
    'sync', d.sync,
    'lastSeenAt', ${isoSql('lastSeenAt')},
    'connectedAt', ${isoSql('connectedAt')},
    'enrolledAt', ${isoSql('enrolledAt')},
    'revokedAt', ${isoSql('revokedAt')},
    'agentVersion', d."agentVersion",
    'facts', CASE WHEN jsonb_typeof(d.facts) = 'object' THEN d.facts - 'generations' END,
    'generations', NULL,
    'desiredRevision', d."desiredRevision",
    'receivedRevision', d."receivedRevision",
    'appliedRevision', d."appliedRevision")::text AS item,
    CASE WHEN jsonb_typeof(d.facts) = 'object' THEN d.facts -> 'generations' END AS inventory`;
}

/** A row of deviceViewSql: the view's JSON text, and the stored inventory when there is one. */
export interface DeviceViewRow {
  item: string;
  inventory: Prisma.JsonValue | null;
}

/** The row's JSON text with its generations summary filled in (parsed again only when it has one). */
export function withGenerations(row: DeviceViewRow): string {
  if (row.inventory === null) return row.item;
  const summary = toGenerationsSummary({ generations: row.inventory });
  if (!summary) return row.item;
  const view = JSON.parse(row.item) as { generations: unknown };
  view.generations = summary;
  return JSON.stringify(view);
}
