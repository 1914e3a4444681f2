// The container deployment, checked without a Docker engine: compose.yaml and the Kubernetes
// manifests parse and wire what the controller needs (services, ports, probes, variables it
// really reads), and the Dockerfile only copies what the build context holds.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { parse, parseAllDocuments } from 'yaml';
import { controllerEnvNames, deployDir, repo } from './support.js';

// Loosely typed views of the parsed YAML: the assertions check the shape.
type Obj = Record<string, any>;

const knownEnv = controllerEnvNames();

describe('deploy/compose.yaml', () => {
  const compose = parse(readFileSync(join(deployDir, 'compose.yaml'), 'utf8')) as Obj;
  const services = compose['services'] as Obj;
  const controller = services['controller'] as Obj;

  it('runs Postgres 15, Redis 7 without persistence, and the controller built from the Dockerfile', () => {
    assert.deepEqual(Object.keys(services).sort(), ['controller', 'postgres', 'redis']);
    assert.match(services['postgres'].image, /^postgres:15(\b|$)/);
    assert.match(services['redis'].image, /^redis:7(\b|$)/);
    const redisCmd: string[] = services['redis'].command;
    assert.deepEqual(redisCmd.slice(redisCmd.indexOf('--save'), redisCmd.indexOf('--save') + 2), ['--save', '']);
    assert.equal(redisCmd[redisCmd.indexOf('--appendonly') + 1], 'no');
    assert.equal(resolve(deployDir, controller['build'].context), repo);
    assert.equal(controller['build'].dockerfile, 'deploy/controller.Dockerfile');
    assert.ok(existsSync(join(repo, controller['build'].dockerfile)));
  });

  it('publishes REST on 8080 and gRPC on 9090, and starts after healthy Postgres and Redis', () => {
    assert.deepEqual([...controller['ports']].sort(), ['8080:8080', '9090:9090']);
    assert.deepEqual(controller['depends_on'], { postgres: { condition: 'service_healthy' }, redis: { condition: 'service_healthy' } });
  });

  it('health-checks all three services', () => {
    const test = (name: string) => ([] as string[]).concat(services[name].healthcheck.test).join(' ');
    assert.match(test('controller'), /127\.0\.0\.1:8080\/healthz/);
    assert.match(test('postgres'), /pg_isready/);
    assert.match(test('redis'), /redis-cli ping/);
  });

  it('takes the secrets from deploy/.env and sets only variables the controller reads', () => {
    const env = controller['environment'] as Obj;
    assert.match(env['IBEX_ADMIN_TOKEN'], /^\$\{IBEX_ADMIN_TOKEN:\?/);
    assert.match(env['DATABASE_URL'], /^postgresql:\/\/ibex:\$\{POSTGRES_PASSWORD\}@postgres:5432\/ibex$/);
    assert.equal(env['REDIS_URL'], 'redis://redis:6379');
    for (const name of Object.keys(env)) assert.ok(knownEnv.has(name), `${name} is not read by the controller (config.ts)`);
    // Every variable compose requires is explained in the example env file.
    const example = readFileSync(join(deployDir, '.env.example'), 'utf8');
    const required = [...readFileSync(join(deployDir, 'compose.yaml'), 'utf8').matchAll(/\$\{([A-Z_]+):\?/g)].map((m) => m[1]!);
    assert.ok(required.length >= 2);
    for (const name of required) assert.match(example, new RegExp(`^${name}=`, 'm'), `.env.example lacks ${name}`);
    const ignored = readFileSync(join(repo, '.gitignore'), 'utf8');
    assert.match(ignored, /^deploy\/\.env$/m);
  });
});

describe('deploy/kubernetes', () => {
  const dir = join(deployDir, 'kubernetes');
  const docs: Obj[] = readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .flatMap((f) =>
      parseAllDocuments(readFileSync(join(dir, f), 'utf8')).map((d) => {
        assert.deepEqual(d.errors, [], `${f} does not parse`);
        return { ...(d.toJS() as Obj), __file: f };
      }),
    );
  const find = (kind: string, name?: string) => docs.filter((d) => d['kind'] === kind && (!name || d['metadata']?.name === name));
  const deployment = find('Deployment', 'ibex-controller')[0]!;
  const pod = deployment['spec'].template.spec as Obj;
  const container = pod['containers'][0] as Obj;

  it('puts everything in the ibex namespace', () => {
    assert.equal(find('Namespace', 'ibex').length, 1);
    for (const d of docs.filter((x) => x['kind'] !== 'Namespace' && x['kind'] !== 'Kustomization')) {
      assert.equal(d['metadata'].namespace, 'ibex', `${d['__file']}: ${d['kind']} ${d['metadata'].name}`);
    }
  });

  it('runs 2 controller replicas with readiness on /readyz, liveness on /healthz and resources', () => {
    assert.equal(deployment['spec'].replicas, 2);
    assert.deepEqual(deployment['spec'].selector.matchLabels, { 'app.kubernetes.io/name': 'ibex-controller' });
    const ports = Object.fromEntries((container['ports'] as Obj[]).map((p) => [p['name'], p['containerPort']]));
    assert.deepEqual(ports, { http: 8080, grpc: 9090 });
    assert.deepEqual(container['readinessProbe'].httpGet, { path: '/readyz', port: 'http' });
    assert.deepEqual(container['livenessProbe'].httpGet, { path: '/healthz', port: 'http' });
    for (const r of ['cpu', 'memory']) assert.ok(container['resources'].requests[r], `requests.${r}`);
    assert.ok(container['resources'].limits.memory, 'limits.memory');
    assert.equal(container['securityContext'].allowPrivilegeEscalation, false);
    assert.equal(pod['securityContext'].runAsNonRoot, true);
  });

  it('annotates the controller pods for Prometheus: /metrics on the http container port', () => {
    const a = deployment['spec'].template.metadata.annotations as Obj;
    assert.equal(a['prometheus.io/scrape'], 'true');
    assert.equal(a['prometheus.io/path'], '/metrics');
    const http = (container['ports'] as Obj[]).find((p) => p['name'] === 'http');
    assert.equal(Number(a['prometheus.io/port']), http?.['containerPort']);
  });

  it('configures the controller only with variables it reads, secrets from the Secret template', () => {
    for (const e of container['env'] as Obj[]) assert.ok(knownEnv.has(e['name']), `${e['name']} is not read by the controller`);
    const secretName = container['envFrom'][0].secretRef.name;
    const secret = find('Secret', secretName)[0];
    assert.ok(secret, `no Secret template named ${secretName}`);
    assert.equal(secret!['__file'], 'secret.example.yaml');
    assert.deepEqual(Object.keys(secret!['stringData']).sort(), ['DATABASE_URL', 'IBEX_ADMIN_TOKEN', 'REDIS_URL']);
    for (const name of Object.keys(secret!['stringData'])) assert.ok(knownEnv.has(name));
    assert.match(readFileSync(join(repo, '.gitignore'), 'utf8'), /^deploy\/kubernetes\/secret\.yaml$/m);
  });

  it('exposes REST and gRPC as Services that select the controller pods, gRPC without affinity', () => {
    const podLabels = deployment['spec'].template.metadata.labels as Obj;
    const services = find('Service');
    const byPort = (port: number) => services.find((s) => (s['spec'].ports as Obj[]).some((p) => p['port'] === port));
    const http = byPort(8080);
    const grpc = byPort(9090);
    assert.ok(http && grpc && http !== grpc, 'one Service for 8080 and another for 9090');
    for (const s of [http, grpc]) {
      for (const [k, v] of Object.entries(s!['spec'].selector as Obj)) assert.equal(podLabels[k], v, `${s!['metadata'].name} selects ${k}=${v}`);
    }
    assert.equal(grpc!['spec'].sessionAffinity ?? 'None', 'None');
    assert.equal(grpc!['spec'].ports[0].targetPort, 'grpc');
  });

  it('lists in kustomization.yaml files that exist, without the Secret template', () => {
    const k = find('Kustomization')[0]!;
    for (const f of k['resources'] as string[]) assert.ok(existsSync(join(dir, f)), `${f} is listed but missing`);
    assert.ok(!(k['resources'] as string[]).includes('secret.example.yaml'));
    assert.ok(existsSync(join(dir, 'README.md')));
  });
});

interface Instruction {
  cmd: string;
  args: string;
  line: number;
}

/** Dockerfile instructions with continuation lines joined and comments dropped. */
function dockerInstructions(text: string): Instruction[] {
  const out: Instruction[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i]!.trim();
    const start = i + 1;
    if (!line || line.startsWith('#')) continue;
    while (line.endsWith('\\') && i + 1 < lines.length) {
      line = line.slice(0, -1);
      const next = lines[++i]!.trim();
      if (!next.startsWith('#')) line += ' ' + next;
    }
    const m = /^(\S+)\s+(.*)$/.exec(line);
    assert.ok(m, `line ${start}: ${line}`);
    out.push({ cmd: m[1]!.toUpperCase(), args: m[2]!.trim(), line: start });
  }
  return out;
}

/** .dockerignore patterns (Go filepath.Match plus **, ! exceptions); true when path is left out. */
function dockerIgnored(patterns: string[], path: string): boolean {
  const toRegex = (p: string) =>
    new RegExp(
      '^' +
        p
          .replace(/^\/+/, '')
          .replace(/[.+^${}()|[\]\\]/g, '\\$&')
          .replace(/\*\*\//g, '\u0000')
          .replace(/\*\*/g, '\u0001')
          .replace(/\*/g, '[^/]*')
          .replace(/\?/g, '[^/]')
          .replace(/\u0000/g, '(?:.*/)?')
          .replace(/\u0001/g, '.*') +
        '$',
    );
  // A path is left out when it or one of its parent folders matches.
  const prefixes = path.split('/').map((_, i, parts) => parts.slice(0, i + 1).join('/'));
  let ignored = false;
  for (const raw of patterns) {
    const negate = raw.startsWith('!');
    const re = toRegex(negate ? raw.slice(1) : raw);
    if (prefixes.some((p) => re.test(p))) ignored = !negate;
  }
  return ignored;
}

describe('deploy/controller.Dockerfile', () => {
  const dockerfile = readFileSync(join(deployDir, 'controller.Dockerfile'), 'utf8');
  const instructions = dockerInstructions(dockerfile);
  const ignore = readFileSync(join(repo, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const stages: string[] = [];
  for (const ins of instructions) {
    if (ins.cmd === 'FROM') {
      const m = /\bAS\s+(\S+)$/i.exec(ins.args);
      stages.push(m ? m[1]! : '');
    }
  }

  it('copies from the build context only files that exist and are not .dockerignored', () => {
    const copies = instructions.filter((i) => (i.cmd === 'COPY' || i.cmd === 'ADD') && !/--from=/.test(i.args));
    assert.ok(copies.length > 0);
    for (const c of copies) {
      const words = c.args.split(/\s+/).filter((w) => !w.startsWith('--'));
      for (const src of words.slice(0, -1)) {
        const path = join(repo, src);
        assert.ok(existsSync(path), `line ${c.line}: COPY source ${src} does not exist`);
        if (src !== '.') assert.ok(!dockerIgnored(ignore, src.replace(/^\.\//, '')), `line ${c.line}: ${src} is excluded by .dockerignore`);
      }
    }
  });

  it('copies between stages only from stages defined before, and only what the build produces', () => {
    let stageIndex = -1;
    for (const ins of instructions) {
      if (ins.cmd === 'FROM') stageIndex++;
      if (ins.cmd !== 'COPY' || !/--from=/.test(ins.args)) continue;
      const from = /--from=(\S+)/.exec(ins.args)![1]!;
      const at = stages.indexOf(from);
      assert.ok(at >= 0 && at < stageIndex, `line ${ins.line}: stage ${from} is not defined before`);
      // The build and prod-deps stages work in /app on a copy of this repository, built: their
      // outputs exist here too once `tsc -b` has run.
      const words = ins.args.split(/\s+/).filter((w) => !w.startsWith('--'));
      for (const src of words.slice(0, -1)) {
        if (!src.startsWith('/app/')) continue;
        const rel = src.slice('/app/'.length).replace(/\/$/, '');
        assert.ok(existsSync(join(repo, rel)), `line ${ins.line}: ${src} does not exist in a built checkout`);
      }
    }
  });

  it('installs, generates, compiles and runs the controller as the Dockerfile promises', () => {
    const froms = instructions.filter((i) => i.cmd === 'FROM').map((i) => i.args);
    const args = Object.fromEntries(
      instructions.filter((i) => i.cmd === 'ARG').map((i) => i.args.split('=') as [string, string]),
    );
    for (const f of froms) {
      const image = f.split(/\s+/)[0]!.replace(/^\$\{(\w+)\}$/, (_, name: string) => args[name] ?? '');
      assert.match(image, /^node:24(-|$)/, `FROM ${f} must be a Node 24 image`);
    }
    const runs = instructions.filter((i) => i.cmd === 'RUN').map((i) => i.args).join('\n');
    // npm install, not npm ci: the lockfile cannot list buf's darwin/win32 packages (prepare.mjs).
    assert.match(runs, /(^|\n)npm install(\n|$)/);
    assert.match(runs, /node scripts\/gen\.mjs/);
    assert.match(runs, /npx tsc -b tsconfig\.build\.json/);
    // The dashboard is built in the image and its static files copied into the runtime stage.
    assert.match(runs, /node scripts\/build-ui\.mjs --force/);
    assert.match(runs, /npm install --omit=dev/);
    const last = instructions.filter((i) => i.cmd === 'CMD').at(-1)!;
    assert.deepEqual(JSON.parse(last.args), ['node', 'apps/controller/dist/main.js']);
    assert.deepEqual(instructions.find((i) => i.cmd === 'EXPOSE')!.args.split(/\s+/).sort(), ['8080', '9090']);
    assert.equal(instructions.filter((i) => i.cmd === 'USER').at(-1)!.args, 'node');
    // Migrations on start need the schema and migrations, and libs/migrate (with the wasm engine).
    const runtimeCopies = instructions.filter((i) => i.cmd === 'COPY' && /--from=/.test(i.args)).map((i) => i.args);
    assert.ok(runtimeCopies.some((a) => /\/app\/prisma\s/.test(a)), 'the runtime image needs prisma/');
    assert.ok(runtimeCopies.some((a) => /\/app\/libs\s/.test(a)), 'the runtime image needs libs/ (libs/migrate)');
    assert.ok(runtimeCopies.some((a) => /\/app\/apps\/dashboard\/dist\s/.test(a)), 'the runtime image serves the dashboard at /ui');
    assert.ok(existsSync(join(repo, 'libs', 'migrate', 'package.json')));
  });

  it('keeps in the build context everything the build reads, and leaves out local builds', () => {
    const workspaces = ['libs', 'apps'].flatMap((d) =>
      readdirSync(join(repo, d))
        .filter((n) => statSync(join(repo, d, n)).isDirectory())
        .map((n) => `${d}/${n}/package.json`),
    );
    const needed = ['package.json', 'package-lock.json', 'tsconfig.base.json', 'tsconfig.build.json', 'buf.gen.yaml', 'buf.yaml', 'scripts/gen.mjs', 'prisma/schema.prisma', 'prisma/migrations', 'proto', 'test/package.json', 'bench/package.json', ...workspaces];
    for (const p of needed) {
      assert.ok(existsSync(join(repo, p)), `${p} is missing from the repository`);
      assert.ok(!dockerIgnored(ignore, p), `${p} is excluded by .dockerignore but the build needs it`);
    }
    for (const p of ['node_modules/x', 'apps/controller/dist/main.js', 'libs/proto/node_modules/y', '.git', 'deploy/.env']) {
      assert.ok(dockerIgnored(ignore, p), `${p} should be excluded by .dockerignore`);
    }
  });
});
