import pg from 'pg';
import { dropDatabase, ensureDatabase, splitDatabaseUrl, uniqueName, withDatabase } from './database.js';
import { migrateDeploy, migrationsFingerprint, type PrismaPaths } from './migrations.js';

export const defaultServerUrl = process.env['IBEX_TEST_DATABASE_URL'] ?? 'postgresql://postgres@127.0.0.1:5432/postgres';

export interface TestDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

/**
 * A fresh, fully migrated database with a unique name, for one test file. Migrations run once
 * per fingerprint into a template database; each test database is a cheap copy of it.
 */
export async function createTestDatabase(opts: PrismaPaths & { serverUrl?: string } = {}): Promise<TestDatabase> {
  const serverUrl = opts.serverUrl ?? defaultServerUrl;
  const template = `ibex_tpl_${await migrationsFingerprint(opts.prismaDir)}`;
  const templateUrl = withDatabase(serverUrl, template);
  const admin = new pg.Client({ connectionString: splitDatabaseUrl(serverUrl).adminUrl });
  await admin.connect();
  try {
    // Parallel test processes: one builds the template, the others wait for it.
    await admin.query('SELECT pg_advisory_lock(4242001)');
    const found = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [template]);
    if (!found.rowCount) {
      const building = withDatabase(serverUrl, `${template}_build`);
      await dropDatabase(building);
      await migrateDeploy(building, opts);
      await admin.query(`ALTER DATABASE "${template}_build" RENAME TO "${template}"`);
    }
    const name = uniqueName('ibex_test');
    const url = withDatabase(serverUrl, name);
    await ensureDatabase(url, template);
    return { url, name, drop: () => dropDatabase(url) };
  } finally {
    await admin.query('SELECT pg_advisory_unlock(4242001)').catch(() => {});
    await admin.end();
  }
}
