#!/usr/bin/env node
// Generates code from the sources of truth: proto/ -> libs/proto/src/gen (committed) and
// prisma/schema.prisma -> apps/controller/src/generated/prisma (not committed).
// --check: fail when the committed proto output differs from what proto/ generates.
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { repo } from './lib/prepare.mjs';
import { run } from './lib/run.mjs';

const bin = (name) => join(repo, 'node_modules', '.bin', name);

function listFiles(dir) {
  const out = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...listFiles(p));
    else out.push(p);
  }
  return out;
}

async function check() {
  const tmp = mkdtempSync(join(tmpdir(), 'ibex-gen-'));
  try {
    await run(bin('buf'), ['generate', '--output', tmp], { cwd: repo });
    const fresh = join(tmp, 'libs/proto/src/gen');
    const committed = join(repo, 'libs/proto/src/gen');
    const a = listFiles(fresh).map((f) => relative(fresh, f)).sort();
    const b = listFiles(committed).map((f) => relative(committed, f)).sort();
    const stale = [];
    for (const f of new Set([...a, ...b])) {
      const x = a.includes(f) ? readFileSync(join(fresh, f), 'utf8') : null;
      const y = b.includes(f) ? readFileSync(join(committed, f), 'utf8') : null;
      if (x !== y) stale.push(f);
    }
    if (stale.length) {
      console.error(`generated proto code is stale (${stale.join(', ')}): run \`npm run gen\` and commit libs/proto/src/gen`);
      process.exit(1);
    }
    console.log('generated proto code is up to date');
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

async function generate() {
  await run(bin('buf'), ['generate'], { cwd: repo });
  // prisma generate needs no engine binary for the prisma-client generator, but still looks
  // for one first: any existing executable satisfies it (ENVIRONMENT.md).
  const clientDir = join(repo, 'apps/controller/src/generated/prisma/client.ts');
  const schema = join(repo, 'prisma/schema.prisma');
  let fresh = false;
  try {
    fresh = statSync(clientDir).mtimeMs > statSync(schema).mtimeMs;
  } catch {}
  if (!fresh) {
    await run(bin('prisma'), ['generate', '--schema', schema], {
      cwd: repo,
      env: { ...process.env, PRISMA_SCHEMA_ENGINE_BINARY: process.execPath, PRISMA_HIDE_UPDATE_MESSAGE: '1', CHECKPOINT_DISABLE: '1' },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
  }
}

if (process.argv.includes('--check')) await check();
else await generate();
