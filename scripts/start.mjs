#!/usr/bin/env node
// `npm start`: from a fresh checkout, set up and run the controller with a local demo agent.
// Installs and builds as needed, migrates the database (the controller does it on start),
// keeps one admin token across restarts in .ibex/admin-token, enrolls a demo agent whose
// managed root is .ibex/demo-agent/root, and prints where everything is.
//
//   npm start                 controller + demo agent
//   npm start -- --no-agent   controller only
// Environment: DATABASE_URL, REDIS_URL, IBEX_HTTP_PORT, IBEX_GRPC_PORT and every other
// controller setting (README "Configuration").
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { prepare, repo } from './lib/prepare.mjs';
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
  console.log('usage: npm start [-- --no-agent]   (see README "Quick start")');
  process.exit(0);
}
const withAgent = !args.includes('--no-agent');

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
const httpPort = process.env.IBEX_HTTP_PORT ?? '8080';
const grpcPort = process.env.IBEX_GRPC_PORT ?? '9090';
const base = `http://127.0.0.1:${httpPort}`;

const agentBin = join(repo, 'dist', 'agent', 'ibex-agent-linux-x64');
if (withAgent) {
  const bundleSrc = join(repo, 'apps', 'agent', 'dist', 'main.js');
  if (!existsSync(agentBin) || statSync(bundleSrc).mtimeMs > statSync(agentBin).mtimeMs) {
    step('building the agent binary');
    await run(process.execPath, [join(repo, 'scripts', 'build-agent.mjs'), '--no-xz', '--arch', 'x64'], { cwd: repo });
  }
}

const children = [];
function stopAll(code) {
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  setTimeout(() => process.exit(code), 300).unref();
}
process.on('SIGINT', () => stopAll(0));
process.on('SIGTERM', () => stopAll(0));

step('starting the controller');
const controller = spawn(process.execPath, [join(repo, 'apps', 'controller', 'dist', 'main.js')], {
  cwd: repo,
  stdio: 'inherit',
  env: { ...process.env, IBEX_ADMIN_TOKEN: adminToken, IBEX_HTTP_PORT: httpPort, IBEX_GRPC_PORT: grpcPort },
});
children.push(controller);
controller.on('exit', (code) => {
  console.error(`controller exited (${code}); see the messages above`);
  stopAll(code ?? 1);
});

async function waitReady() {
  const until = Date.now() + 60_000;
  let last = '';
  while (Date.now() < until) {
    try {
      const r = await fetch(`${base}/readyz`);
      if (r.ok) return;
      last = await r.text();
    } catch (err) {
      last = err.message;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`the controller did not become ready at ${base}/readyz within 60 s (${last})`);
}

async function api(method, path, body) {
  const r = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  const json = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(`${method} ${path} failed (${r.status}): ${json?.error?.message ?? JSON.stringify(json)}`);
  return json;
}

try {
  await waitReady();
  let demo = '';
  if (withAgent) {
    const agentRoot = join(state, 'demo-agent', 'root');
    mkdirSync(agentRoot, { recursive: true });
    const credential = join(agentRoot, 'var', 'lib', 'ibex-agent', 'credential.json');
    if (!existsSync(credential)) {
      step('enrolling the demo agent');
      const tok = await api('POST', '/api/v1/enrollment-tokens', { description: 'npm start demo agent', maxUses: 1, expiresInHours: 1, labels: { demo: 'true' } });
      await run(agentBin, ['enroll', '--controller', `grpc://127.0.0.1:${grpcPort}`, '--token', tok.token, '--name', 'demo-agent', '--root', agentRoot]);
    }
    step('starting the demo agent');
    const agent = spawn(agentBin, ['run', '--root', agentRoot], { stdio: 'inherit' });
    children.push(agent);
    agent.on('exit', (code) => console.error(`demo agent exited (${code})`));
    demo = `
  Demo device  "demo-agent", managing files under ${agentRoot}
               curl -H "Authorization: Bearer $TOKEN" ${base}/api/v1/devices/demo-agent`;
  }
  console.log(`
\x1b[1mIbex is running.\x1b[0m
  REST API     ${base}/api/v1
  API docs     ${base}/api/docs   (OpenAPI JSON: ${base}/api/docs-json)
  gRPC         127.0.0.1:${grpcPort}  (agents: ibex-agent enroll --controller grpc://HOST:${grpcPort} --token ...)
  Admin token  ${adminToken}
               (kept in .ibex/admin-token; export TOKEN=$(cat .ibex/admin-token))${demo}
  Stop with Ctrl-C.
`);
} catch (err) {
  console.error(`npm start: ${err.message}`);
  stopAll(1);
}
