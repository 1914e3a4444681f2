import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** The database name in a postgres URL, and a URL to the same server's `postgres` database. */
export function splitDatabaseUrl(url: string): { name: string; adminUrl: string } {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error(`DATABASE_URL is not a valid URL: ${redact(url)}. Expected postgresql://USER@HOST:5432/DBNAME`);
  }
  if (parsed.protocol !== 'postgresql:' && parsed.protocol !== 'postgres:') {
    throw new Error(`DATABASE_URL must start with postgresql://, got ${parsed.protocol}//`);
  }
  const name = decodeURIComponent(parsed.pathname.replace(/^\//, ''));
  if (!name) throw new Error(`DATABASE_URL names no database: ${redact(url)}. Add one, e.g. postgresql://postgres@127.0.0.1:5432/ibex`);
  const admin = new URL(parsed.href);
  admin.pathname = '/postgres';
  return { name, adminUrl: admin.href };
}

export function redact(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');
}

export function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.href;
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

async function withAdmin<T>(url: string, fn: (client: pg.Client, name: string) => Promise<T>): Promise<T> {
  const { name, adminUrl } = splitDatabaseUrl(url);
  const client = new pg.Client({ connectionString: adminUrl });
  try {
    await client.connect();
  } catch (err) {
    throw new Error(`PostgreSQL at ${redact(adminUrl)} refused the connection (${(err as Error).message}); start PostgreSQL or set DATABASE_URL`);
  }
  try {
    return await fn(client, name);
  } finally {
    await client.end();
  }
}

/** Creates the database named in the URL when it does not exist yet. Returns true if created. */
export async function ensureDatabase(url: string, template?: string): Promise<boolean> {
  return withAdmin(url, async (client, name) => {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (found.rowCount) return false;
    try {
      await client.query(`CREATE DATABASE ${quoteIdent(name)}${template ? ` TEMPLATE ${quoteIdent(template)}` : ''}`);
    } catch (err) {
      // Another process created it between the check and the create.
      if ((err as { code?: string }).code === '42P04') return false;
      throw err;
    }
    return true;
  });
}

export async function dropDatabase(url: string): Promise<void> {
  await withAdmin(url, async (client, name) => {
    await client.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`);
  });
}

export function uniqueName(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
}
