#!/usr/bin/env node
// Builds the web dashboard (apps/dashboard) into apps/dashboard/dist, which the controller serves
// at /ui: a type check (tsc --noEmit), then Vite. Skipped when dist/ is newer than every
// source (the dashboard's files and @ibex/client's build), unless --force.
//
//   node scripts/build-ui.mjs [--force]
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { repo } from './lib/prepare.mjs';
import { run, step } from './lib/run.mjs';

const app = join(repo, 'apps', 'dashboard');
const out = join(app, 'dist', 'index.html');
const force = process.argv.includes('--force');

function newest(path) {
  if (!existsSync(path)) return 0;
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  let t = 0;
  for (const e of readdirSync(path, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) t = Math.max(t, statSync(join(e.parentPath, e.name)).mtimeMs);
  }
  return t;
}

const inputs = ['src', 'index.html', 'vite.config.ts', 'tsconfig.json', 'package.json'].map((p) => join(app, p));
inputs.push(join(repo, 'libs', 'client', 'dist'));
if (!force && existsSync(out) && Math.max(...inputs.map(newest)) <= statSync(out).mtimeMs) process.exit(0);

step('building the dashboard (apps/dashboard: tsc, vite)');
try {
  await run(process.execPath, [join(repo, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(app, 'tsconfig.json')], { cwd: repo });
  const { build } = await import('vite');
  await build({ root: app, configFile: join(app, 'vite.config.ts'), logLevel: 'warn' });
} catch (err) {
  console.error(`build-ui: the dashboard did not build (${err.message}); the errors are above`);
  process.exit(1);
}
