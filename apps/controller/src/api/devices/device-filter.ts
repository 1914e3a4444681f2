import type { SelectorTerm } from '@ibex/spec';
import { Prisma } from '../../generated/prisma/client.js';
import type { DeviceStatus } from './devices.dto.js';

export interface DeviceFilter {
  terms: SelectorTerm[];
  status?: DeviceStatus | undefined;
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

function statusSql(status: DeviceStatus, onlineSince: Date): Prisma.Sql {
  const online = Prisma.sql`("connectedAt" IS NOT NULL AND "lastSeenAt" IS NOT NULL AND "lastSeenAt" > ${ts(onlineSince)})`;
  switch (status) {
    case 'revoked':
      return Prisma.sql`"revokedAt" IS NOT NULL`;
    case 'online':
      return Prisma.sql`"revokedAt" IS NULL AND ${online}`;
    case 'offline':
      return Prisma.sql`"revokedAt" IS NULL AND NOT ${online}`;
  }
}

/** The ids of one page of devices matching a label selector and status, by name. */
export function deviceIdsQuery(f: DeviceFilter, limit: number): Prisma.Sql {
  const conds = f.terms.map(termSql);
  if (f.status) conds.push(statusSql(f.status, f.onlineSince));
  if (f.afterName !== undefined) conds.push(Prisma.sql`name > ${f.afterName}`);
  const where = conds.length ? Prisma.sql`WHERE ${Prisma.join(conds, ' AND ')}` : Prisma.empty;
  return Prisma.sql`SELECT id FROM device ${where} ORDER BY name ASC LIMIT ${limit}`;
}
