import type { PrismaService } from '../prisma/prisma.service.js';

/**
 * Columns that change on every authenticated request or heartbeat, not because of what a
 * request asked for: left out so a refused request compares equal.
 */
const VOLATILE_COLUMNS = ['lastUsedAt', 'lastSeenAt'];

/** table -> "rows:md5 of every row" for every table of the database (migrations table aside). */
export type DbFingerprint = Record<string, string>;

/**
 * A fingerprint of the whole database: row count and a checksum of the rows of every table,
 * so a test can prove a refused request changed nothing anywhere.
 */
export async function dbFingerprint(prisma: PrismaService): Promise<DbFingerprint> {
  const tables = await prisma.$queryRawUnsafe<Array<{ t: string }>>(
    `SELECT tablename AS t FROM pg_tables WHERE schemaname = current_schema() AND tablename <> '_prisma_migrations' ORDER BY 1`,
  );
  const volatile = `ARRAY[${VOLATILE_COLUMNS.map((c) => `'${c}'`).join(',')}]`;
  const parts = tables.map(
    ({ t }) =>
      `SELECT '${t}' AS t, count(*)::int AS n, md5(coalesce(string_agg((to_jsonb(x) - ${volatile})::text, '|' ORDER BY (to_jsonb(x) - ${volatile})::text), '')) AS h FROM "${t}" x`,
  );
  const rows = await prisma.$queryRawUnsafe<Array<{ t: string; n: number; h: string }>>(parts.join(' UNION ALL '));
  return Object.fromEntries(rows.map((r) => [r.t, `${r.n}:${r.h}`]));
}

/** The tables whose fingerprint differs (empty: nothing changed). */
export function changedTables(before: DbFingerprint, after: DbFingerprint): string[] {
  return [...new Set([...Object.keys(before), ...Object.keys(after)])].filter((t) => before[t] !== after[t]).sort();
}
