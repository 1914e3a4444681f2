#!/usr/bin/env node
// `npm run migrate` / `npm run migrate:new -- <name>`: a thin wrapper around libs/migrate's
// CLI (offline Prisma migrations through the WebAssembly schema engine). Builds that library
// first when its compiled output is missing or older than its sources; every argument after
// the command is passed through. DATABASE_URL names the database.
//
//   npm run migrate                       apply pending migrations (creates the database)
//   npm run migrate:new -- add_notes      write prisma/migrations/<timestamp>_add_notes/
//   node scripts/migrate.mjs check        exit 1 when schema.prisma and the migrations differ
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { checkNode, installIfNeeded, repo } from './lib/prepare.mjs';
import { run } from './lib/run.mjs';

const help = `usage: npm run migrate [-- --help]
       npm run migrate:new -- <name>
       node scripts/migrate.mjs deploy | new <name> | check

  deploy        apply every pending migration in prisma/migrations to DATABASE_URL
                (creates the database when it does not exist); what \`npm run migrate\` runs
  new <name>    write prisma/migrations/<timestamp>_<name>/migration.sql for the changes made
                to prisma/schema.prisma since the last migration (needs a reachable Postgres:
                the diff is computed against a scratch database); \`npm run migrate:new\`
  check         exit 1 when prisma/schema.prisma and the migrations disagree

  DATABASE_URL  default postgresql://postgres@127.0.0.1:5432/ibex`;

const args = process.argv.slice(2);
if (args.length === 0 || args.includes('--help') || args.includes('-h')) {
  console.log(help);
  process.exit(args.length === 0 ? 2 : 0);
}

checkNode();
await installIfNeeded();
const lib = join(repo, 'libs', 'migrate');
const cli = join(lib, 'dist', 'cli.js');
const srcDir = join(lib, 'src');
const stale = !existsSync(cli) || readdirSync(srcDir).some((f) => statSync(join(srcDir, f)).mtimeMs > statSync(cli).mtimeMs);
if (stale) {
  // -b also builds what libs/migrate references; quiet when there is nothing to do.
  await run(process.execPath, [join(repo, 'node_modules', 'typescript', 'bin', 'tsc'), '-b', lib], { cwd: repo });
}
// The CLI says what went wrong itself; its exit code (2 for usage) becomes ours.
const child = spawn(process.execPath, [cli, ...args], { cwd: repo, stdio: 'inherit' });
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
