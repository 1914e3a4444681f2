#!/usr/bin/env node
// `npm run openapi`: writes docs/openapi.json, the controller's OpenAPI document, built from the
// compiled app without Postgres or Redis (apps/controller/src/api/http/openapi-export.ts).
// Keys are sorted, so the file changes only when the API does.
//
//   npm run openapi               build, then write docs/openapi.json
//   npm run openapi -- --check    exit 1 when docs/openapi.json is stale (writes nothing)
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { prepare, repo } from './lib/prepare.mjs';

const args = process.argv.slice(2);
for (const a of args) {
  if (a !== '--check' && a !== '--help' && a !== '-h') {
    console.error(`npm run openapi: unknown option ${a}; use --check or --help`);
    process.exit(2);
  }
}
if (args.includes('--help') || args.includes('-h')) {
  console.log('usage: npm run openapi [-- --check]   writes (or checks) docs/openapi.json');
  process.exit(0);
}
const check = args.includes('--check');

await prepare({ quiet: true });
const mod = await import(pathToFileURL(join(repo, 'apps', 'controller', 'dist', 'api', 'http', 'openapi-export.js')).href);
const text = mod.openApiFileText(await mod.buildOfflineOpenApiDocument());
const file = join(repo, 'docs', 'openapi.json');
const current = existsSync(file) ? readFileSync(file, 'utf8') : null;
const paths = Object.keys(JSON.parse(text).paths).length;
if (check) {
  if (current !== text) {
    console.error('docs/openapi.json is stale: run `npm run openapi` and commit docs/openapi.json');
    process.exit(1);
  }
  console.log(`docs/openapi.json is up to date (${paths} paths)`);
} else if (current === text) {
  console.log(`docs/openapi.json is up to date (${paths} paths)`);
} else {
  writeFileSync(file, text);
  console.log(`wrote docs/openapi.json (${paths} paths)`);
}
// The Nest app is closed, but a lingering socket retry must not keep the script alive.
process.exit(0);
