#!/usr/bin/env node
// `npm start`: from a fresh checkout, set up and run the controller with a local demo agent.
// Checks that Postgres and Redis answer and that the ports are free, installs and builds as
// needed, and starts the controller, which applies the database migrations itself
// (IBEX_MIGRATE_ON_START). Keeps one admin token across restarts in .ibex/admin-token, enrolls
// a demo agent whose managed root is .ibex/demo-agent/root (again when the database no longer
// knows it), and prints where everything is. Ctrl-C stops the controller and the agent.
//
//   npm start                 controller + demo agent
//   npm start -- --no-agent   controller only
// Environment: DATABASE_URL, REDIS_URL, IBEX_HTTP_PORT, IBEX_GRPC_PORT and every other
// controller setting (docs/configuration.md).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { checkNode, prepare, repo } from './lib/prepare.mjs';
import { run, step } from './lib/run.mjs';

const args = process.argv.slice(2);
const known = new Set(['--no-agent', '--help', '-h']);
for (const a of args) {
  if (!known.has(a)) {
    console.error(`npm start: unknown option ${a}; use --no-agent or --help`);
    process.exit(2);
  }
}
if (args.includes('--help') || args.includes('-h')) {
  console.log('usage: npm start [-- --no-agent]   (see README "Quick start"; settings: docs/configuration.md)');
  process.exit(0);
}
const withAgent = !args.includes('--no-agent');
checkNode();

function fail(message) {
  console.error(`npm start: ${message}`);
  process.exit(1);
}

// The controller's own defaults (apps/controller/src/config/config.ts).
const databaseUrl = process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/ibex';
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const httpHost = process.env.IBEX_HTTP_HOST ?? '0.0.0.0';
const grpcHost = process.env.IBEX_GRPC_HOST ?? '0.0.0.0';
const httpPort = process.env.IBEX_HTTP_PORT ?? '8080';
const grpcPort = process.env.IBEX_GRPC_PORT ?? '9090';
const base = `http://127.0.0.1:${httpPort}`;

/** Resolves with an error message when nothing accepts a TCP connection at host:port. */
function unreachable(host, port) {
  return new Promise((resolve) => {
    const s = connect({ host, port, timeout: 3000 });
    s.once('connect', () => (s.destroy(), resolve(null)));
    s.once('timeout', () => (s.destroy(), resolve('timed out')));
    s.once('error', (err) => resolve(err.code ?? err.message));
  });
}

/** Resolves with an error code when host:port cannot be listened on (EADDRINUSE: taken). */
function unavailable(host, port) {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', (err) => resolve(err.code ?? err.message));
    srv.listen({ host, port, exclusive: true }, () => srv.close(() => resolve(null)));
  });
}

function hostPort(url, defaultPort, name) {
  try {
    const u = new URL(url);
    return { host: u.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1', port: Number(u.port || defaultPort) };
  } catch {
    fail(`${name}=${url} is not a URL`);
  }
}

// Before the (slow) build: say at once what is missing, and how to fix it.
const pg = hostPort(databaseUrl, 5432, 'DATABASE_URL');
const redis = hostPort(redisUrl, 6379, 'REDIS_URL');
const problems = [];
const pgErr = await unreachable(pg.host, pg.port);
if (pgErr) problems.push(`PostgreSQL at ${pg.host}:${pg.port} is not reachable (${pgErr}); start PostgreSQL or set DATABASE_URL (now ${databaseUrl.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@')})`);
const redisErr = await unreachable(redis.host, redis.port);
if (redisErr) problems.push(`Redis at ${redis.host}:${redis.port} is not reachable (${redisErr}); start Redis or set REDIS_URL (now ${redisUrl.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@')})`);
for (const [host, port, name] of [
  [httpHost, httpPort, 'IBEX_HTTP_PORT'],
  [grpcHost, grpcPort, 'IBEX_GRPC_PORT'],
]) {
  if (port === '0') continue;
  const err = await unavailable(host, Number(port));
  if (err === 'EADDRINUSE') problems.push(`port ${port} (${name}) is already in use, perhaps by another \`npm start\`; stop that program or set ${name} to a free port`);
  else if (err) problems.push(`cannot listen on ${host}:${port} (${name}): ${err}`);
}
if (problems.length) fail(problems.join('\n  '));

await prepare();

const state = join(repo, '.ibex');
mkdirSync(state, { recursive: true, mode: 0o700 });
const tokenFile = join(state, 'admin-token');
if (!existsSync(tokenFile)) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  const token = `ibx_${[...randomBytes(40)].map((b) => alphabet[b % 62]).join('')}`;
  writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
}
const adminToken = process.env.IBEX_ADMIN_TOKEN ?? readFileSync(tokenFile, 'utf8').trim();

/** Newest modification time of the files under dir (0 when it does not exist). */
function newest(dir) {
  if (!existsSync(dir)) return 0;
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) t = Math.max(t, statSync(join(e.parentPath, e.name)).mtimeMs);
  }
  return t;
}

const agentBin = join(repo, 'dist', 'agent', 'ibex-agent-linux-x64');
if (withAgent) {
  // The binary bundles apps/agent and the libraries it imports: rebuild when any is newer.
  const inputs = [join(repo, 'apps', 'agent', 'dist'), ...readdirSync(join(repo, 'libs')).map((l) => join(repo, 'libs', l, 'dist'))];
  if (!existsSync(agentBin) || Math.max(...inputs.map(newest)) > statSync(agentBin).mtimeMs) {
    step('building the agent binary');
    await run(process.execPath, [join(repo, 'scripts', 'build-agent.mjs'), '--no-xz', '--arch', 'x64'], { cwd: repo });
  }
}

// Stopping: SIGTERM to each child, wait for all to exit (SIGKILL after 10 s), then exit.
const children = [];
let stopping = false;
async function stopAll(code) {
  if (stopping) return;
  stopping = true;
  const running = children.filter((c) => c.exitCode === null && c.signalCode === null);
  const exited = running.map((c) => new Promise((r) => c.once('exit', r)));
  for (const c of running) c.kill('SIGTERM');
  const killer = setTimeout(() => {
    for (const c of running) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }, 10_000);
  await Promise.all(exited);
  clearTimeout(killer);
  process.exit(code);
}
process.on('SIGINT', () => void stopAll(0));
process.on('SIGTERM', () => void stopAll(0));

step('starting the controller (it applies pending database migrations first)');
const controller = spawn(process.execPath, [join(repo, 'apps', 'controller', 'dist', 'main.js')], {
  cwd: repo,
  stdio: 'inherit',
  env: { ...process.env, IBEX_ADMIN_TOKEN: adminToken, IBEX_HTTP_PORT: httpPort, IBEX_GRPC_PORT: grpcPort },
});
children.push(controller);
controller.on('exit', (code, signal) => {
  if (stopping) return;
  console.error(`npm start: the controller exited (${signal ?? `exit ${code}`}); see its messages above`);
  void stopAll(code || 1);
});

async function waitReady() {
  const until = Date.now() + 120_000;
  let last = '';
  while (Date.now() < until && !stopping) {
    try {
      const r = await fetch(`${base}/readyz`);
      if (r.ok) return;
      last = await r.text();
    } catch (err) {
      last = err.cause?.code ?? err.message;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  if (stopping) await new Promise(() => {}); // the exit handler is ending the process
  throw new Error(`the controller did not become ready at ${base}/readyz within 120 s (${last})`);
}

async function api(method, path, body) {
  const r = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${adminToken}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  const json = r.status === 204 ? {} : await r.json().catch(() => ({}));
  return { status: r.status, json };
}

async function apiOk(method, path, body) {
  const { status, json } = await api(method, path, body);
  if (status >= 300) throw new Error(`${method} ${path} failed (${status}): ${json?.error?.message ?? JSON.stringify(json)}`);
  return json;
}

const DEMO = 'demo-agent';

/**
 * Whether the demo agent needs (re-)enrolling: no credential yet, or the controller no longer
 * knows its device (database reset, device deleted or revoked). A device named demo-agent that
 * the credential does not belong to is the leftover of an earlier demo: it is deleted so the
 * name is free again.
 */
async function needsEnrollment(credentialFile) {
  let deviceId;
  if (existsSync(credentialFile)) {
    try {
      deviceId = JSON.parse(readFileSync(credentialFile, 'utf8')).deviceId;
    } catch {}
  }
  if (deviceId) {
    const { status, json } = await api('GET', `/api/v1/devices/${encodeURIComponent(deviceId)}`);
    if (status === 200 && json.status !== 'revoked') return false;
    if (status !== 200 && status !== 404) throw new Error(`GET /api/v1/devices/${deviceId} failed (${status})`);
    console.log(`npm start: the demo agent's credential is not valid for this controller any more (${status === 404 ? 'unknown device' : 'revoked'}); enrolling it again`);
  }
  const { status, json } = await api('GET', `/api/v1/devices/${DEMO}`);
  if (status === 200) {
    if (json.labels?.demo !== 'true') throw new Error(`a device named ${DEMO} exists that npm start did not create; rename or delete it (DELETE /api/v1/devices/${DEMO})`);
    await apiOk('DELETE', `/api/v1/devices/${json.id}`);
  }
  return true;
}

try {
  await waitReady();
  let demo = '';
  if (withAgent) {
    const agentRoot = join(state, 'demo-agent', 'root');
    mkdirSync(agentRoot, { recursive: true });
    const credential = join(agentRoot, 'var', 'lib', 'ibex-agent', 'credential.json');
    const controllerUrl = `grpc://127.0.0.1:${grpcPort}`;
    if (await needsEnrollment(credential)) {
      step('enrolling the demo agent');
      const tok = await apiOk('POST', '/api/v1/enrollment-tokens', { description: 'npm start demo agent', maxUses: 1, expiresInHours: 1, labels: { demo: 'true' } });
      await run(agentBin, ['enroll', '--controller', controllerUrl, '--token', tok.token, '--name', DEMO, '--root', agentRoot, '--force']);
    }
    step('starting the demo agent');
    // --controller: the gRPC port may differ from the one it enrolled with.
    const agent = spawn(agentBin, ['run', '--root', agentRoot, '--controller', controllerUrl], { stdio: 'inherit' });
    children.push(agent);
    agent.on('exit', (code, signal) => {
      if (!stopping) console.error(`npm start: the demo agent exited (${signal ?? `exit ${code}`}); the controller keeps running`);
    });
    demo = `
  Demo device  "${DEMO}", managing files under ${agentRoot}
               curl -H "Authorization: Bearer $TOKEN" ${base}/api/v1/devices/${DEMO}`;
  }
  console.log(`
\x1b[1mIbex is running.\x1b[0m
  Dashboard    ${base}/ui/   (sign in with the admin token below)
  REST API     ${base}/api/v1
  API docs     ${base}/api/docs   (OpenAPI JSON: ${base}/api/docs-json)
  Metrics      ${base}/metrics   (Prometheus; Grafana dashboard: deploy/grafana/ibex-controller.json)
  gRPC         127.0.0.1:${grpcPort}  (agents: ibex-agent enroll --controller grpc://HOST:${grpcPort} --token ...)
  Admin token  ${adminToken}
               (kept in .ibex/admin-token; export TOKEN=$(cat .ibex/admin-token))
  ibexctl      node apps/cli/dist/main.js login --server ${base} --token $(cat .ibex/admin-token)${demo}
  Stop with Ctrl-C.
`);
} catch (err) {
  console.error(`npm start: ${err.message}`);
  void stopAll(1);
}
