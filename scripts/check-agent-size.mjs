#!/usr/bin/env node
// Fails when the agent grows by more than 20% over the committed baseline
// (bench/agent-size-baseline.json), so that a new dependency or an eager import that bloats
// every device's agent is a decision, not an accident. Checked, each against its baseline:
//   bundle        dist/agent/ibex-agent.cjs, the JavaScript that goes into the single executable
//   added-<arch>  what the single executable dist/agent/ibex-agent-linux-<arch> adds to the stock
//                 node binary it was made from (.cache/node/<version>-<arch>/node); only when
//                 both files are there (scripts/build-agent.mjs makes them)
// Shrinking never fails (the message suggests recording the smaller size).
//
//   node scripts/check-agent-size.mjs [--baseline FILE] [--dist DIR] [--node-cache DIR] [--max-growth PERCENT] [--update]
//
// --update writes the current sizes as the new baseline. Exit: 0 within the limit, 1 grown too
// much, 2 bad arguments or nothing to measure.
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('..', import.meta.url));
const NODE_VERSION = '24.21.0'; // scripts/build-agent.mjs
const argv = process.argv.slice(2);

function fail(message) {
  console.error(`check-agent-size: ${message}`);
  process.exit(2);
}

function option(name, fallback) {
  const i = argv.indexOf(name);
  if (i < 0) return fallback;
  const value = argv[i + 1];
  if (value === undefined || value.startsWith('--')) fail(`${name} needs a value`);
  return value;
}

const known = new Set(['--baseline', '--dist', '--node-cache', '--max-growth', '--update']);
for (let i = 0; i < argv.length; i++) {
  if (!known.has(argv[i])) fail(`unknown argument "${argv[i]}"; usage: node scripts/check-agent-size.mjs [--baseline FILE] [--dist DIR] [--node-cache DIR] [--max-growth PERCENT] [--update]`);
  if (argv[i] !== '--update') i++;
}
const baselineFile = option('--baseline', join(repo, 'bench', 'agent-size-baseline.json'));
const dist = option('--dist', join(repo, 'dist', 'agent'));
const nodeCache = option('--node-cache', join(repo, '.cache', 'node'));
const maxGrowth = Number(option('--max-growth', '20'));
if (!Number.isFinite(maxGrowth) || maxGrowth < 0) fail('--max-growth must be a percentage >= 0');
const update = argv.includes('--update');

/** The sizes that exist now, in bytes. */
function measure() {
  const sizes = {};
  const bundle = join(dist, 'ibex-agent.cjs');
  if (existsSync(bundle)) sizes.bundle = statSync(bundle).size;
  for (const arch of ['x64', 'arm64']) {
    const bin = join(dist, `ibex-agent-linux-${arch}`);
    const stock = join(nodeCache, `${NODE_VERSION}-${arch}`, 'node');
    if (existsSync(bin) && existsSync(stock)) sizes[`added-${arch}`] = statSync(bin).size - statSync(stock).size;
  }
  return sizes;
}

const show = (p) => relative(process.cwd(), p) || p;
const kib = (n) => `${(n / 1024).toFixed(0)} KiB`;
const sizes = measure();
if (!Object.keys(sizes).length) fail(`nothing to measure in ${show(dist)}: build the agent first (node scripts/build-agent.mjs)`);

if (update) {
  const doc = { note: 'Sizes in bytes checked by scripts/check-agent-size.mjs; update with: node scripts/check-agent-size.mjs --update', nodeVersion: NODE_VERSION, sizes };
  writeFileSync(baselineFile, `${JSON.stringify(doc, null, 2)}\n`);
  console.log(`check-agent-size: wrote ${show(baselineFile)}: ${Object.entries(sizes).map(([k, v]) => `${k} ${kib(v)}`).join(', ')}`);
  process.exit(0);
}

if (!existsSync(baselineFile)) fail(`no baseline ${show(baselineFile)}; create it with: node scripts/check-agent-size.mjs --update`);
let baseline;
try {
  baseline = JSON.parse(readFileSync(baselineFile, 'utf8')).sizes;
} catch (err) {
  fail(`${show(baselineFile)} is not valid JSON (${err.message})`);
}
if (!baseline || typeof baseline !== 'object') fail(`${show(baselineFile)} has no "sizes" object`);

const grown = [];
let compared = 0;
for (const [key, now] of Object.entries(sizes)) {
  const before = baseline[key];
  if (typeof before !== 'number' || before <= 0) {
    console.log(`  ${key}: ${kib(now)} (not in the baseline: not checked)`);
    continue;
  }
  compared++;
  const pct = ((now - before) / before) * 100;
  const verdict = pct > maxGrowth ? `GREW MORE THAN ${maxGrowth}%` : pct < -maxGrowth ? 'much smaller: consider recording it with --update' : 'ok';
  console.log(`  ${key}: ${kib(now)}, baseline ${kib(before)} (${pct >= 0 ? '+' : ''}${pct.toFixed(1)}%) ${verdict}`);
  if (pct > maxGrowth) grown.push(`${key} ${kib(before)} -> ${kib(now)} (+${pct.toFixed(1)}%)`);
}
if (!compared) fail(`none of ${Object.keys(sizes).join(', ')} is in ${show(baselineFile)}; record them with: node scripts/check-agent-size.mjs --update`);
if (grown.length) {
  console.error(
    `check-agent-size: the agent grew by more than ${maxGrowth}% over ${show(baselineFile)}: ${grown.join('; ')}.\n` +
      'Every device downloads and runs this. If the growth is intended, record the new sizes and commit the file:\n' +
      '  node scripts/build-agent.mjs && node scripts/check-agent-size.mjs --update\n' +
      'Otherwise find what came in (a new dependency, an eager import) with esbuild\'s metafile.',
  );
  process.exit(1);
}
console.log(`check-agent-size: within ${maxGrowth}% of ${show(baselineFile)}`);
