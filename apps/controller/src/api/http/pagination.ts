import { z } from 'zod';
import { ValidationFailed } from '../../common/errors.js';

/** `limit` and `cursor`, shared by every list endpoint (spread into its query schema). */
export const pageQueryShape = {
  limit: z.coerce
    .number({ message: 'must be a number' })
    .int('must be a whole number')
    .min(1, 'must be 1-1000')
    .max(1000, 'must be 1-1000')
    .default(100)
    .describe('Page size (1-1000, default 100).'),
  cursor: z.string().max(1024).optional().describe('`nextCursor` of the previous page; omit for the first page.'),
};

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

/** The response schema of a paginated list: `{ items, nextCursor }`. */
export function pageSchema<T extends z.ZodType>(item: T, id: string) {
  return z
    .object({
      items: z.array(item),
      nextCursor: z.string().nullable().describe('Pass as `cursor` to get the next page; null on the last page.'),
    })
    .meta({ id });
}

/**
 * Cursors are opaque to clients: base64url JSON of the sort key of the last item. Each endpoint
 * decodes with its own schema, so a cursor from another endpoint is a 400, not a wrong page.
 */
export function encodeCursor(key: unknown): string {
  return Buffer.from(JSON.stringify(key), 'utf8').toString('base64url');
}

export function decodeCursor<S extends z.ZodType>(schema: S, cursor: string): z.output<S> {
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    raw = undefined;
  }
  const r = schema.safeParse(raw);
  if (!r.success) {
    const issue = { path: 'cursor', message: 'is not a cursor from this list; pass the nextCursor of the previous page unchanged' };
    throw new ValidationFailed(`invalid query parameters: cursor ${issue.message}`, [issue]);
  }
  return r.data;
}

/** Rows were fetched with `limit + 1`: the extra one only says whether there is a next page. */
export function toPage<R, T>(rows: R[], limit: number, cursorOf: (row: R) => unknown, view: (row: R) => T): Page<T> {
  const items = rows.slice(0, limit);
  const last = items[items.length - 1];
  return { items: items.map(view), nextCursor: rows.length > limit && last !== undefined ? encodeCursor(cursorOf(last)) : null };
}

/** Lists ordered newest first by (createdAt, id): the cursor is that pair of the last item. */
export const newestFirstCursor = z.object({ t: z.iso.datetime(), id: z.uuid() });
export type NewestFirstCursor = z.output<typeof newestFirstCursor>;
export const newestFirstOrder = [{ createdAt: 'desc' as const }, { id: 'desc' as const }];

export function newestFirstKey(row: { createdAt: Date; id: string }): NewestFirstCursor {
  return { t: row.createdAt.toISOString(), id: row.id };
}

/** Prisma `where` for the rows after `cursor` in newest-first order (empty without a cursor). */
export function olderThan(cursor: string | undefined): { OR?: Array<{ createdAt: { lt: Date } } | { createdAt: Date; id: { lt: string } }> } {
  if (!cursor) return {};
  const c = decodeCursor(newestFirstCursor, cursor);
  const t = new Date(c.t);
  return { OR: [{ createdAt: { lt: t } }, { createdAt: t, id: { lt: c.id } }] };
}
