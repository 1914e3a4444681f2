#!/usr/bin/env node
// ibex-migrate deploy | new <name> | check   (DATABASE_URL names the database)
import { redact } from './database.js';
import { createMigration, diffMigrationsToSchema, migrateDeploy } from './migrations.js';

const usage = `usage: ibex-migrate <command>
  deploy          apply every pending migration in prisma/migrations to DATABASE_URL
                  (creates the database when it does not exist)
  new <name>      write prisma/migrations/<timestamp>_<name>/migration.sql for the changes
                  made to prisma/schema.prisma since the last migration
  check           exit 1 when prisma/schema.prisma and the migrations disagree`;

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  const url = process.env['DATABASE_URL'] ?? 'postgresql://postgres@127.0.0.1:5432/ibex';
  switch (cmd) {
    case 'deploy': {
      const applied = await migrateDeploy(url);
      console.log(applied.length ? `applied ${applied.length} migration(s) to ${redact(url)}: ${applied.join(', ')}` : `${redact(url)} is up to date`);
      return 0;
    }
    case 'new': {
      const name = rest[0];
      if (!name) {
        console.error('ibex-migrate new: give the migration a name, e.g. `npm run migrate:new -- add_device_notes`');
        return 2;
      }
      const made = await createMigration(url, name);
      console.log(made ? `wrote ${made.dir}/migration.sql` : 'schema.prisma matches the migrations: nothing to write');
      return 0;
    }
    case 'check': {
      const sql = await diffMigrationsToSchema(url);
      if (!sql) {
        console.log('schema.prisma and prisma/migrations agree');
        return 0;
      }
      console.error(`schema.prisma differs from prisma/migrations; run \`npm run migrate:new -- <name>\`. Missing SQL:\n${sql}`);
      return 1;
    }
    default:
      console.error(usage);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`ibex-migrate: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
