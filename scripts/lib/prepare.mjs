// Shared by `npm start` and `npm test`: make a fresh checkout ready (install, generate, build,
// the dashboard).
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run, step } from './run.mjs';

export const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export function checkNode() {
  const major = Number(process.versions.node.split('.')[0]);
  if (major !== 24) {
    console.error(
      `Ibex needs Node 24 LTS; this is Node ${process.versions.node}.\n` +
        `Install it without root: npm i --prefix "$HOME/.node24" node@24 && export PATH="$HOME/.node24/node_modules/node/bin:$PATH"`,
    );
    process.exit(1);
  }
}

function newer(a, b) {
  return existsSync(a) && (!existsSync(b) || statSync(a).mtimeMs > statSync(b).mtimeMs);
}

/** `npm install` when node_modules is missing or older than the lock file. */
export async function installIfNeeded() {
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const marker = join(repo, 'node_modules', '.package-lock.json');
  if (!existsSync(marker) || newer(join(repo, 'package-lock.json'), marker)) {
    // Not `npm ci`: the registry mirror here lacks buf's darwin/win32 optional packages, so the
    // lock file cannot list them and `npm ci` refuses it as out of sync; install honours it.
    step('installing npm packages');
    await run(npm, ['install', '--no-audit', '--no-fund'], { cwd: repo });
  }
}

export async function prepare({ quiet = false } = {}) {
  checkNode();
  await installIfNeeded();
  if (!quiet) step('generating code (proto, Prisma client) and compiling TypeScript');
  await run(process.execPath, [join(repo, 'scripts', 'gen.mjs')], { cwd: repo });
  await run(process.execPath, [join(repo, 'node_modules', 'typescript', 'bin', 'tsc'), '-b', 'tsconfig.build.json'], { cwd: repo });
  // The dashboard the controller serves at /ui (skipped when its build is up to date).
  await run(process.execPath, [join(repo, 'scripts', 'build-ui.mjs')], { cwd: repo });
}

export function packageVersion() {
  return JSON.parse(readFileSync(join(repo, 'apps', 'agent', 'package.json'), 'utf8')).version;
}
