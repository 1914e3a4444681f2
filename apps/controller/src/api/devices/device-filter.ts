import type { SelectorTerm } from '@ibex/spec';
import { Prisma } from '../../generated/prisma/client.js';
import type { DeviceStatus, DeviceSync } from './devices.dto.js';

export interface DeviceFilter {
  terms: SelectorTerm[];
  status?: DeviceStatus | undefined;
  sync?: DeviceSync | undefined;
  /** Devices seen after this are online (now - offlineAfterMs). */
  onlineSince: Date;
  /** Keyset pagination: names after this one. */
  afterName?: string | undefined;
}

// Columns are `timestamp(3)` holding UTC; comparing against an ISO text cast to `timestamp`
// avoids depending on the session's time zone.
const ts = (d: Date) => Prisma.sql`${d.toISOString()}::timestamp`;

function termSql(t: SelectorTerm): Prisma.Sql {
  switch (t.op) {
    case 'eq':
      return Prisma.sql`labels @> jsonb_build_object(${t.key}::text, ${t.value}::text)`;
    case 'neq':
      // A device without the label matches key!=value, as in Kubernetes.
      return Prisma.sql`(labels ->> ${t.key}::text) IS DISTINCT FROM ${t.value}::text`;
    case 'exists':
      return Prisma.sql`(labels -> ${t.key}::text) IS NOT NULL`;
    case 'notexists':
      return Prisma.sql`(labels -> ${t.key}::text) IS NULL`;
  }
}

const onlineSql = (onlineSince: Date) => Prisma.sql`("connectedAt" IS NOT NULL AND "lastSeenAt" IS NOT NULL AND "lastSeenAt" > ${ts(onlineSince)})`;

function statusSql(status: DeviceStatus, onlineSince: Date): Prisma.Sql {
  const online = onlineSql(onlineSince);
  switch (status) {
    case 'revoked':
      return Prisma.sql`"revokedAt" IS NOT NULL`;
    case 'online':
      return Prisma.sql`"revokedAt" IS NULL AND ${online}`;
    case 'offline':
      return Prisma.sql`"revokedAt" IS NULL AND NOT ${online}`;
  }
}

const sectionIn = (states: string) =>
  Prisma.raw(`EXISTS (SELECT 1 FROM device_section_state s WHERE s."deviceId" = device.id AND s.state::text IN (${states}))`);

/**
 * How far a device is from its desired state, worst first (devices.dto.ts `sync`): one SQL
 * expression, so the list filter, the counts of the fleet summary and each view agree.
 */
export const deviceSyncSql = Prisma.sql`CASE
  WHEN device."desiredRevision" = 0 THEN 'none'
  WHEN ${sectionIn("'failed', 'reverted'")} THEN 'failed'
  WHEN ${sectionIn("'drifted'")} THEN 'drifted'
  WHEN ${sectionIn("'unsupported'")} THEN 'unsupported'
  WHEN device."appliedRevision" < device."desiredRevision" OR ${sectionIn("'pending', 'applying'")} THEN 'pending'
  ELSE 'in_sync' END`;

/** Whether a device is online, as SQL (devices.dto.ts `status`; device-view.ts deviceViewSql shows it). */
export function deviceStatusSql(onlineSince: Date): Prisma.Sql {
  return Prisma.sql`CASE WHEN "revokedAt" IS NOT NULL THEN 'revoked' WHEN ${onlineSql(onlineSince)} THEN 'online' ELSE 'offline' END`;
}

function whereSql(f: DeviceFilter): Prisma.Sql {
  const conds = f.terms.map(termSql);
  if (f.status) conds.push(statusSql(f.status, f.onlineSince));
  if (f.sync) conds.push(Prisma.sql`(${deviceSyncSql}) = ${f.sync}::text`);
  if (f.afterName !== undefined) conds.push(Prisma.sql`name > ${f.afterName}`);
  return conds.length ? Prisma.sql`WHERE ${Prisma.join(conds, ' AND ')}` : Prisma.empty;
}

/** The ids of one page of devices matching a label selector and status, by name. */
export function deviceIdsQuery(f: DeviceFilter, limit: number): Prisma.Sql {
  return Prisma.sql`SELECT id, ${deviceSyncSql} AS sync FROM device ${whereSql(f)} ORDER BY name ASC LIMIT ${limit}`;
}

/**
 * One page of matching devices, by name, as rows with their `name` and the columns of
 * `columns` (a select list over a relation `d` of device rows with their `sync`).
 */
export function devicePageQuery(f: DeviceFilter, limit: number, columns: Prisma.Sql): Prisma.Sql {
  return Prisma.sql`SELECT d.name, ${columns}
    FROM (SELECT device.*, ${deviceSyncSql} AS sync FROM device ${whereSql(f)} ORDER BY name ASC LIMIT ${limit}) d
    ORDER BY d.name ASC`;
}

/** The device with this id as a relation `d` with its `sync`, for the select list `columns`. */
export function deviceByIdQuery(id: string, columns: Prisma.Sql): Prisma.Sql {
  return Prisma.sql`SELECT ${columns} FROM (SELECT device.*, ${deviceSyncSql} AS sync FROM device WHERE id = ${id}::uuid) d`;
}
