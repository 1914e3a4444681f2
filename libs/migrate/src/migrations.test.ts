import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { createMigration, defaultPrismaDir, diffMigrationsToSchema, migrateDeploy } from './migrations.js';
import { createTestDatabase, defaultServerUrl, dropStaleTestDatabases } from './test-database.js';
import { dropDatabase, ensureDatabase, uniqueName, withDatabase } from './database.js';

async function databaseNames(): Promise<string[]> {
  const client = new pg.Client({ connectionString: defaultServerUrl });
  await client.connect();
  try {
    const r = await client.query<{ datname: string }>('SELECT datname FROM pg_database');
    return r.rows.map((row) => row.datname);
  } finally {
    await client.end();
  }
}

describe('migrations (offline WASM schema engine, real Postgres)', () => {
  it('schema.prisma and the committed migrations agree', async () => {
    const sql = await diffMigrationsToSchema(defaultServerUrl);
    assert.equal(sql, '', `schema.prisma has changes no migration covers; run \`npm run migrate:new -- <name>\`:\n${sql}`);
  });

  describe('on a copy of prisma/', () => {
    let dir: string;
    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'ibex-prisma-'));
      await cp(defaultPrismaDir, dir, { recursive: true });
    });
    after(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it('detects a schema change, writes a migration for it, and then agrees again', async () => {
      const schemaPath = join(dir, 'schema.prisma');
      const schema = await readFile(schemaPath, 'utf8');
      await writeFile(schemaPath, schema.replace('  bootId            String?\n', '  bootId            String?\n  notes             String?\n'));
      const drift = await diffMigrationsToSchema(defaultServerUrl, { prismaDir: dir });
      assert.match(drift, /ALTER TABLE "device" ADD COLUMN\s+"notes" TEXT/);
      const made = await createMigration(defaultServerUrl, 'add_device_notes', { prismaDir: dir, now: new Date('2030-01-02T03:04:05Z') });
      assert.ok(made?.dir.endsWith('20300102030405_add_device_notes'));
      assert.equal(await diffMigrationsToSchema(defaultServerUrl, { prismaDir: dir }), '');
    });
  });

  it('deploy applies migrations once and records them in _prisma_migrations', async () => {
    const url = withDatabase(defaultServerUrl, uniqueName('ibex_mig'));
    try {
      const first = await migrateDeploy(url);
      assert.ok(first.length >= 1);
      assert.deepEqual(await migrateDeploy(url), []);
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      const rows = await c.query('SELECT migration_name FROM _prisma_migrations WHERE finished_at IS NOT NULL ORDER BY 1');
      await c.end();
      assert.deepEqual(rows.rows.map((r) => r.migration_name), first);
    } finally {
      await dropDatabase(url);
    }
  });

  it('test databases are migrated copies with unique names', async () => {
    const [a, b] = await Promise.all([createTestDatabase(), createTestDatabase()]);
    try {
      assert.notEqual(a.name, b.name);
      const c = new pg.Client({ connectionString: a.url });
      await c.connect();
      const r = await c.query('SELECT count(*)::int AS n FROM device');
      await c.end();
      assert.equal(r.rows[0].n, 0);
    } finally {
      await a.drop();
      await b.drop();
    }
  });

  it('drops only test databases older than the given age', async () => {
    const old = withDatabase(defaultServerUrl, `ibex_test_${(Date.now() - 10 * 3600_000).toString(36)}_0badc0de`);
    const fresh = withDatabase(defaultServerUrl, uniqueName('ibex_test'));
    await ensureDatabase(old);
    await ensureDatabase(fresh);
    try {
      const dropped = await dropStaleTestDatabases(6 * 3600_000);
      // Judged by what exists afterwards, not only by the returned list: another test run on
      // the same server (scripts/test.mjs drops stale databases when it starts) may drop the
      // old one first.
      const names = await databaseNames();
      assert.ok(!names.includes(new URL(old).pathname.slice(1)), `the stale database is still there (dropped: ${dropped.join() || 'none'})`);
      assert.ok(names.includes(new URL(fresh).pathname.slice(1)), 'the fresh database was dropped');
      assert.ok(!dropped.includes(new URL(fresh).pathname.slice(1)));
    } finally {
      await dropDatabase(old);
      await dropDatabase(fresh);
    }
  });

  it('refuses a bad migration name', async () => {
    await assert.rejects(createMigration(defaultServerUrl, 'Add Notes'), /snake_case/);
  });
});
