#!/usr/bin/env node
// The whole test suite, from a fresh checkout: Debian packages (scripts/setup-system.sh),
// npm install, generate, compile, build the agent binaries, then run every compiled *.test.js
// with Node's test runner against the real Postgres, Redis and system tools. Ends with one line: "N passed, N failed, N skipped".
//
//   npm test                      everything
//   npm test -- controller agent  only test files whose path contains one of the words
//   IBEX_TEST_CONCURRENCY=4       test files run in parallel (default 3)
//   IBEX_TEST_BUDGET_MIN=30       the whole run is stopped after this many minutes
import { spawn } from 'node:child_process';
import { existsSync, globSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { checkNode, prepare, repo } from './lib/prepare.mjs';
import { run, step } from './lib/run.mjs';

const filters = process.argv.slice(2).filter((a) => !a.startsWith('-'));
checkNode();

// The Debian packages the tests drive for real. As root the script installs what is missing;
// otherwise it names the apt-get command, and the run stops here rather than failing later.
step('checking the Debian packages the tests need (scripts/setup-system.sh)');
try {
  await run('bash', [join(repo, 'scripts', 'setup-system.sh')], { cwd: repo });
} catch {
  console.error('npm test: scripts/setup-system.sh failed (see above); install the packages it names (as root) and run npm test again');
  console.log('0 passed, 1 failed, 0 skipped');
  process.exit(1);
}
await prepare();

// Databases of earlier runs that were killed before their cleanup (tests drop their own).
try {
  const { dropStaleTestDatabases } = await import(join(repo, 'libs', 'migrate', 'dist', 'index.js'));
  const dropped = await dropStaleTestDatabases(6 * 3600_000);
  if (dropped.length) step(`dropped ${dropped.length} test database(s) left by interrupted runs`);
} catch (err) {
  console.error(`could not look for stale test databases (${err.message}); is PostgreSQL running on 127.0.0.1:5432?`);
}

step('building the agent single executables');
await run(process.execPath, [join(repo, 'scripts', 'build-agent.mjs'), '--no-xz'], { cwd: repo });

const patterns = ['libs/*/dist/**/*.test.js', 'apps/*/dist/**/*.test.js', 'test/dist/**/*.test.js', 'bench/dist/**/*.test.js'];
let files = patterns.flatMap((p) => globSync(p, { cwd: repo })).sort();
if (filters.length) files = files.filter((f) => filters.some((w) => f.includes(w)));
if (!files.length) {
  console.error(`no test files matched ${filters.join(' ') || '(all)'}`);
  console.log('0 passed, 0 failed');
  process.exit(1);
}

step(`running ${files.length} test files`);
const tmp = mkdtempSync(join(tmpdir(), 'ibex-test-'));
const countsFile = join(tmp, 'counts.json');
const concurrency = process.env.IBEX_TEST_CONCURRENCY ?? '3';
const args = [
  '--test',
  `--test-concurrency=${concurrency}`,
  '--test-timeout=600000',
  '--test-reporter=spec',
  '--test-reporter-destination=stdout',
  `--test-reporter=${join(repo, 'scripts', 'lib', 'count-reporter.mjs')}`,
  `--test-reporter-destination=${countsFile}`,
  ...files,
];
// The runner and every test file process share one process group, so a test file that never
// exits (a handle left open) cannot outlive the run: the watchdog ends the whole group.
const budgetMin = Number(process.env.IBEX_TEST_BUDGET_MIN ?? 30);
const code = await new Promise((resolve) => {
  const child = spawn(process.execPath, args, { cwd: repo, stdio: 'inherit', detached: true, env: { ...process.env, IBEX_REPO: repo } });
  const killGroup = () => {
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {}
  };
  const watchdog = setTimeout(() => {
    console.error(`\ntest run exceeded ${budgetMin} minutes (IBEX_TEST_BUDGET_MIN): stopping every test process`);
    killGroup();
  }, budgetMin * 60_000);
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => (killGroup(), process.exit(130)));
  child.on('exit', (c, s) => {
    clearTimeout(watchdog);
    killGroup(); // stragglers: file processes that outlived the runner
    resolve(c ?? (s ? 1 : 0));
  });
});
let counts = { passed: 0, failed: 0, skipped: 0, failures: [] };
if (existsSync(countsFile)) {
  try {
    counts = JSON.parse(readFileSync(countsFile, 'utf8'));
  } catch {}
}
rmSync(tmp, { recursive: true, force: true });
if (counts.failures?.length) {
  console.log('\nfailed tests:');
  for (const f of counts.failures) console.log(`  ✖ ${relative(repo, f.file ?? '')} › ${f.name}`);
}
// A runner that died before reporting still fails the run.
if (code !== 0 && counts.failed === 0) counts.failed = 1;
console.log(`${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped`);
process.exit(counts.failed ? 1 : 0);
