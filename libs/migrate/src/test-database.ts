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

/**
 * Drops databases that test runs create (`ibex_test_*`, `ibex_shadow_*`, `ibex_mig_*`) once
 * they are older than `maxAgeMs`: leftovers of runs that were killed before their cleanup ran.
 * The age is read from the name (uniqueName puts a base-36 timestamp after the prefix).
 */
export async function dropStaleTestDatabases(maxAgeMs: number, serverUrl = defaultServerUrl, now = Date.now()): Promise<string[]> {
  const admin = new pg.Client({ connectionString: splitDatabaseUrl(serverUrl).adminUrl });
  await admin.connect();
  const dropped: string[] = [];
  try {
    const rows = await admin.query<{ datname: string }>("SELECT datname FROM pg_database WHERE datname ~ '^ibex_(test|shadow|mig)_[0-9a-z]+_[0-9a-f]+$'");
    for (const { datname } of rows.rows) {
      const stamp = parseInt(datname.split('_')[2] ?? '', 36);
      if (!Number.isFinite(stamp) || now - stamp < maxAgeMs) continue;
      await admin.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
      dropped.push(datname);
    }
  } finally {
    await admin.end();
  }
  return dropped;
}
