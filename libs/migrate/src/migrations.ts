import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dropDatabase, ensureDatabase, uniqueName, withDatabase } from './database.js';
import { openEngine } from './schema-engine.js';

/** The repository's prisma/ folder (libs/migrate/dist -> ../../../prisma). */
export const defaultPrismaDir = resolve(fileURLToPath(new URL('../../../prisma/', import.meta.url)));

export interface PrismaPaths {
  /** Folder holding schema.prisma and migrations/. */
  prismaDir?: string;
}

const noFilters = { externalTables: [], externalEnums: [] };

async function readSchema(prismaDir: string) {
  const path = join(prismaDir, 'schema.prisma');
  return { path, content: await readFile(path, 'utf8') };
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** The migrations folder as the engine wants it: every `<name>/migration.sql`, in name order. */
export async function loadMigrations(prismaDir = defaultPrismaDir) {
  const baseDir = join(prismaDir, 'migrations');
  const entries = (await exists(baseDir)) ? await readdir(baseDir, { withFileTypes: true }) : [];
  const dirs = entries.filter((e) => e.isDirectory()).map((e) => e.name).sort();
  const migrationDirectories = await Promise.all(
    dirs.map(async (name) => {
      const file = join(baseDir, name, 'migration.sql');
      let content: { tag: 'ok'; value: string } | { tag: 'error'; value: string };
      try {
        content = { tag: 'ok', value: await readFile(file, 'utf8') };
      } catch (err) {
        content = { tag: 'error', value: (err as Error).message };
      }
      return { path: name, migrationFile: { path: 'migration.sql', content } };
    }),
  );
  const lockPath = join(baseDir, 'migration_lock.toml');
  const lockfile = { path: 'migration_lock.toml', content: (await exists(lockPath)) ? await readFile(lockPath, 'utf8') : null };
  return { baseDir, lockfile, shadowDbInitScript: '', migrationDirectories };
}

/** A short fingerprint of schema + migrations, used to name migrated template databases. */
export async function migrationsFingerprint(prismaDir = defaultPrismaDir): Promise<string> {
  const list = await loadMigrations(prismaDir);
  const h = createHash('sha256');
  for (const d of list.migrationDirectories) {
    h.update(d.path);
    h.update(d.migrationFile.content.value);
  }
  return h.digest('hex').slice(0, 12);
}

/**
 * `prisma migrate deploy`, offline: creates the database if needed and applies every migration
 * not yet recorded in `_prisma_migrations`. Returns the names it applied.
 */
export async function migrateDeploy(databaseUrl: string, opts: PrismaPaths = {}): Promise<string[]> {
  const prismaDir = opts.prismaDir ?? defaultPrismaDir;
  await ensureDatabase(databaseUrl);
  const schema = await readSchema(prismaDir);
  const handle = await openEngine(databaseUrl, schema);
  try {
    const out = await handle.engine.applyMigrations({ migrationsList: await loadMigrations(prismaDir), filters: noFilters });
    return out.appliedMigrationNames;
  } finally {
    await handle.close();
  }
}

/**
 * SQL that would take a database built from the committed migrations to what schema.prisma
 * describes. Empty when they agree. Uses a throw-away shadow database on the same server.
 */
export async function diffMigrationsToSchema(serverUrl: string, opts: PrismaPaths = {}): Promise<string> {
  const prismaDir = opts.prismaDir ?? defaultPrismaDir;
  const shadowUrl = withDatabase(serverUrl, uniqueName('ibex_shadow'));
  await ensureDatabase(shadowUrl);
  const schema = await readSchema(prismaDir);
  const handle = await openEngine(shadowUrl, schema);
  try {
    const migrations = await loadMigrations(prismaDir);
    const result = await handle.engine.diff({
      from: migrations.migrationDirectories.length ? { tag: 'migrations', ...migrations } : { tag: 'empty' },
      to: { tag: 'schemaDatamodel', files: [schema] },
      script: true,
      exitCode: null,
      filters: noFilters,
    });
    const sql = result.stdout ?? '';
    return isEmptyScript(sql) ? '' : sql;
  } finally {
    await handle.close();
    await dropDatabase(shadowUrl);
  }
}

function isEmptyScript(sql: string): boolean {
  return sql
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('--'))
    .every((l) => /^CREATE SCHEMA IF NOT EXISTS "public";$/.test(l));
}

/** Writes `prisma/migrations/<timestamp>_<name>/migration.sql` for the schema change, if any. */
export async function createMigration(
  serverUrl: string,
  name: string,
  opts: PrismaPaths & { now?: Date } = {},
): Promise<{ dir: string; sql: string } | null> {
  if (!/^[a-z0-9_]+$/.test(name)) {
    throw new Error(`migration name "${name}" must be snake_case letters, digits and underscores, e.g. add_device_notes`);
  }
  const prismaDir = opts.prismaDir ?? defaultPrismaDir;
  const sql = await diffMigrationsToSchema(serverUrl, { prismaDir });
  if (!sql) return null;
  const now = opts.now ?? new Date();
  const stamp = now.toISOString().replace(/[-:T]/g, '').slice(0, 14);
  const baseDir = join(prismaDir, 'migrations');
  const dir = join(baseDir, `${stamp}_${name}`);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'migration.sql'), sql);
  const lock = join(baseDir, 'migration_lock.toml');
  if (!(await exists(lock))) {
    await writeFile(lock, '# Please do not edit this file manually\n# It should be added in your version-control system (e.g., Git)\nprovider = "postgresql"\n');
  }
  return { dir, sql };
}
