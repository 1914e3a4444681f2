// The commands the README gives a user exist and work: every `npm run X` it names is a
// package.json script, every script's file exists, and `npm run migrate` (scripts/migrate.mjs)
// migrates a real, fresh database.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { defaultServerUrl, dropDatabase, uniqueName, withDatabase } from '@ibex/migrate';
import { repo } from '../e2e/helpers/repo.js';

const readme = readFileSync(join(repo, 'README.md'), 'utf8');
const scripts = (JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;

function node(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: repo, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out }));
  });
}

describe('README commands', () => {
  it('gives exactly `npm start` and `npm test` in the quick start', () => {
    const quick = readme.slice(readme.indexOf('## Quick start'), readme.indexOf('\n## ', readme.indexOf('## Quick start') + 5));
    const block = /```sh\n([\s\S]*?)```/.exec(quick)?.[1] ?? '';
    const commands = block.split('\n').map((l) => l.replace(/#.*/, '').trim()).filter(Boolean);
    assert.deepEqual(commands, ['npm start', 'npm test']);
  });

  it('names only npm scripts that exist', () => {
    const named = [...readme.matchAll(/npm run ([a-z:-]+)/g)].map((m) => m[1]!);
    assert.ok(named.length >= 5, `found ${named.length}`);
    const missing = [...new Set(named)].filter((n) => !(n in scripts));
    assert.deepEqual(missing, [], `README names npm scripts package.json lacks: ${missing.join(', ')}`);
    for (const s of ['start', 'test']) assert.ok(scripts[s], `package.json has a "${s}" script`);
  });

  it('every package.json script that runs a file points at one that exists', () => {
    for (const [name, cmd] of Object.entries(scripts)) {
      const file = /^node (\S+)/.exec(cmd)?.[1];
      if (file) assert.ok(existsSync(join(repo, file)), `npm run ${name}: ${file} does not exist`);
    }
  });
});

describe('npm run migrate (scripts/migrate.mjs)', () => {
  it('applies every migration to a fresh database, then finds it up to date', async (t) => {
    const url = withDatabase(defaultServerUrl, uniqueName('ibex_mig'));
    t.after(() => dropDatabase(url));
    const first = await node(['scripts/migrate.mjs', 'deploy'], { DATABASE_URL: url });
    assert.equal(first.code, 0, first.out);
    const migrations = readdirSync(join(repo, 'prisma', 'migrations'), { withFileTypes: true }).filter((e) => e.isDirectory());
    assert.match(first.out, new RegExp(`applied ${migrations.length} migration\\(s\\)`));
    const second = await node(['scripts/migrate.mjs', 'deploy'], { DATABASE_URL: url });
    assert.equal(second.code, 0, second.out);
    assert.match(second.out, /is up to date/);
  });

  it('--help explains the commands and writes no migration', async () => {
    const before = readdirSync(join(repo, 'prisma', 'migrations')).sort();
    const r = await node(['scripts/migrate.mjs', 'new', '--help']);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /npm run migrate:new -- <name>/);
    assert.deepEqual(readdirSync(join(repo, 'prisma', 'migrations')).sort(), before);
  });

  it('refuses a missing migration name with exit code 2', async () => {
    const r = await node(['scripts/migrate.mjs', 'new']);
    assert.equal(r.code, 2, r.out);
    assert.match(r.out, /give the migration a name/);
  });
});
