// Command-line flags of the load harness: parsed strictly (a typo is an error, not a default)
// and validated into one typed object. Pure: no I/O.

export class UsageError extends Error {}

export interface ExternalController {
  /** host:port of the controller's gRPC listener. */
  grpc: string;
  /** Base URL of its REST API, e.g. http://127.0.0.1:8080 */
  api: string;
  /** An API token allowed to create enrollment tokens. */
  token: string;
  /** The controller's database: last-seen times are read from it. */
  databaseUrl: string;
  /** Its process id on this machine: RSS and CPU are read from /proc (optional). */
  pid?: number;
}

export interface BenchOptions {
  agents: number;
  heartbeatMs: number;
  durationS: number;
  maxRssMb: number;
  maxLagMs: number;
  enrollConcurrency: number;
  connectConcurrency: number;
  connectTimeoutS: number;
  sampleMs: number;
  reportS: number;
  json: boolean;
  help: boolean;
  /** Postgres server on which a fresh database is created for the spawned controller. */
  databaseServer: string;
  redisUrl: string;
  /** Extra node arguments for the spawned controller (default: none, as deploy/ runs it). */
  controllerNodeArgs?: string[];
  controllerLog?: string;
  external?: ExternalController;
  /** Processes the simulated agents run in (the harness itself runs none). */
  agentProcs: number;
  /** TLS on the agents' gRPC connections (spawned: a self-signed certificate; external: --ca). */
  tls: boolean;
  /** File of the CA that signed an external controller's certificate (turns TLS on). */
  caFile?: string;
  /** GET /api/v1/devices?limit=100 per second during the steady phase (0: none). */
  restRate: number;
  /** After the steady phase: SIGKILL the controller, restart it, time until all agents are back. */
  storm: boolean;
  /** After the steady phase: one desired-state change to every agent through a label-selector rollout. */
  fanout: boolean;
}

type Kind = 'int' | 'string' | 'switch';
interface FlagSpec {
  name: string;
  kind: Kind;
  arg?: string;
  help: string;
  min?: number;
  max?: number;
  /** Its value may itself start with -- (node options). */
  dashValue?: boolean;
}

export const flagSpecs: readonly FlagSpec[] = [
  { name: 'agents', kind: 'int', arg: 'N', min: 1, max: 20_000, help: 'simulated agents, each with its own TCP connection (default 2000)' },
  { name: 'heartbeat-ms', kind: 'int', arg: 'MS', min: 100, max: 600_000, help: 'heartbeat interval of every agent; first beat at a random point in it (default 5000)' },
  { name: 'duration-s', kind: 'int', arg: 'S', min: 1, max: 86_400, help: 'how long to run after every agent connected (default 60)' },
  { name: 'max-rss-mb', kind: 'int', arg: 'MB', min: 1, max: 1_000_000, help: 'bar: controller peak RSS (VmHWM) must stay below this (default 500)' },
  { name: 'max-lag-ms', kind: 'int', arg: 'MS', min: 1, max: 3_600_000, help: 'bar: every heartbeat must show in device.lastSeenAt within this (default 5000)' },
  { name: 'enroll-concurrency', kind: 'int', arg: 'N', min: 1, max: 1000, help: 'Enroll RPCs in flight (default 16)' },
  { name: 'connect-concurrency', kind: 'int', arg: 'N', min: 1, max: 20_000, help: 'Connect streams waiting for their Welcome at once (default 100)' },
  { name: 'connect-timeout-s', kind: 'int', arg: 'S', min: 1, max: 3600, help: 'give up when not every agent is connected after this (default 180)' },
  { name: 'sample-ms', kind: 'int', arg: 'MS', min: 20, max: 10_000, help: 'how often lastSeenAt is read from the database (default 200)' },
  { name: 'report-s', kind: 'int', arg: 'S', min: 1, max: 3600, help: 'interval of the periodic table (default 5)' },
  { name: 'agent-procs', kind: 'int', arg: 'N', min: 1, max: 64, help: 'processes the agents run in, none of them the harness (default one per 5000 agents)' },
  { name: 'no-tls', kind: 'switch', help: 'plaintext gRPC (default: TLS, the spawned controller gets a self-signed certificate for 127.0.0.1)' },
  { name: 'ca', kind: 'string', arg: 'FILE', help: 'with --grpc: the CA (PEM) of that controller\'s certificate; TLS toward it (else plaintext)' },
  { name: 'rest-rate', kind: 'int', arg: 'N', min: 0, max: 10_000, help: 'GET /api/v1/devices?limit=100 per second during the steady phase, fixed rate, from a process of its own (default 200; 0 none)' },
  { name: 'storm', kind: 'switch', help: 'after the steady phase: SIGKILL the controller, start it again, time until every agent is back (spawned controller only)' },
  { name: 'fanout', kind: 'switch', help: 'after the steady phase: one desired-state change to every agent (label-selector rollout, no waves); time until all received and applied it' },
  { name: 'json', kind: 'switch', help: 'print one JSON object on stdout (progress and table go to stderr)' },
  { name: 'database-server', kind: 'string', arg: 'URL', help: 'Postgres for the fresh database (default $IBEX_TEST_DATABASE_URL or postgresql://postgres@127.0.0.1:5432/postgres)' },
  { name: 'redis', kind: 'string', arg: 'URL', help: 'Redis for the spawned controller (default $REDIS_URL or redis://127.0.0.1:6379)' },
  { name: 'controller-node-args', kind: 'string', arg: 'ARGS', dashValue: true, help: 'node arguments for the spawned controller, split on spaces, e.g. "--max-old-space-size=256 --trace-gc"' },
  { name: 'controller-log', kind: 'string', arg: 'FILE', help: 'write the spawned controller\'s output to FILE' },
  { name: 'grpc', kind: 'string', arg: 'HOST:PORT', help: 'use a running controller instead of spawning one (with --api, --token, --database-url)' },
  { name: 'api', kind: 'string', arg: 'URL', help: 'REST base URL of that controller, e.g. http://127.0.0.1:8080' },
  { name: 'token', kind: 'string', arg: 'ibx_...', help: 'API token of that controller (creates the enrollment token)' },
  { name: 'database-url', kind: 'string', arg: 'URL', help: 'that controller\'s database (lastSeenAt is read from it)' },
  { name: 'controller-pid', kind: 'int', arg: 'PID', min: 1, max: 2 ** 22, help: 'that controller\'s process id, for RSS and CPU (else they are not measured)' },
  { name: 'help', kind: 'switch', help: 'show this help' },
];

export function usage(): string {
  const rows = flagSpecs.map((s) => [`--${s.name}${s.arg ? ` ${s.arg}` : ''}`, s.help] as const);
  const w = Math.max(...rows.map((r) => r[0].length));
  return [
    'Usage: npm run bench:agents -- [flags]      (node bench/dist/agents.bench.js [flags])',
    '',
    'Connects N simulated agents (real gRPC streams, one TCP connection each) to one controller,',
    'sends heartbeats, and reports connected agents, controller RSS and CPU, heartbeats sent and',
    'stored per second, and how long each heartbeat took to show in device.lastSeenAt.',
    'By default it spawns the controller (apps/controller/dist/main.js) on a fresh database and a',
    'unique Redis prefix, and removes both at the end.',
    'Exit status: 0 bar met, 1 bar not met, 2 bad flags, 3 the run itself failed.',
    '',
    ...rows.map(([f, h]) => `  ${f.padEnd(w)}  ${h}`),
  ].join('\n');
}

/** Parses `--name value`, `--name=value` and switches; refuses anything else, naming it. */
export function parseBenchFlags(argv: readonly string[], env: Record<string, string | undefined> = {}): BenchOptions {
  const byName = new Map(flagSpecs.map((s) => [s.name, s]));
  const raw = new Map<string, string | boolean>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--') || arg === '--') throw new UsageError(`unexpected argument "${arg}"; flags start with --, see --help`);
    const eq = arg.indexOf('=');
    const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
    const spec = byName.get(name);
    if (!spec) throw new UsageError(`unknown flag --${name}; see --help for the flags`);
    if (raw.has(name)) throw new UsageError(`--${name} given twice`);
    if (spec.kind === 'switch') {
      if (eq >= 0) throw new UsageError(`--${name} takes no value`);
      raw.set(name, true);
      continue;
    }
    let value = eq < 0 ? argv[++i] : arg.slice(eq + 1);
    if (value === undefined || (eq < 0 && value.startsWith('--') && !spec.dashValue)) throw new UsageError(`--${name} needs a value (${spec.arg})`);
    if (value === '') throw new UsageError(`--${name} needs a non-empty value (${spec.arg})`);
    raw.set(name, value);
  }

  const int = (name: string, def: number): number => {
    const v = raw.get(name);
    if (v === undefined) return def;
    const spec = byName.get(name)!;
    const n = /^\d+$/.test(String(v)) ? Number(v) : NaN;
    if (!Number.isSafeInteger(n) || n < spec.min! || n > spec.max!) {
      throw new UsageError(`--${name} must be a whole number from ${spec.min} to ${spec.max}, got "${String(v)}"`);
    }
    return n;
  };
  const str = (name: string): string | undefined => raw.get(name) as string | undefined;

  const opts: BenchOptions = {
    agents: int('agents', 2000),
    heartbeatMs: int('heartbeat-ms', 5000),
    durationS: int('duration-s', 60),
    maxRssMb: int('max-rss-mb', 500),
    maxLagMs: int('max-lag-ms', 5000),
    enrollConcurrency: int('enroll-concurrency', 16),
    connectConcurrency: int('connect-concurrency', 100),
    connectTimeoutS: int('connect-timeout-s', 180),
    sampleMs: int('sample-ms', 200),
    reportS: int('report-s', 5),
    json: raw.get('json') === true,
    help: raw.get('help') === true,
    databaseServer: str('database-server') ?? env['IBEX_TEST_DATABASE_URL'] ?? 'postgresql://postgres@127.0.0.1:5432/postgres',
    redisUrl: str('redis') ?? env['REDIS_URL'] ?? 'redis://127.0.0.1:6379',
    agentProcs: 1,
    tls: raw.get('no-tls') !== true,
    restRate: int('rest-rate', 200),
    storm: raw.get('storm') === true,
    fanout: raw.get('fanout') === true,
  };
  opts.agentProcs = int('agent-procs', Math.ceil(opts.agents / 5000));
  if (opts.agentProcs > opts.agents) throw new UsageError(`--agent-procs ${opts.agentProcs} is more than --agents ${opts.agents}: each process needs at least one agent`);
  checkUrl('database-server', opts.databaseServer, ['postgres:', 'postgresql:']);
  checkUrl('redis', opts.redisUrl, ['redis:', 'rediss:']);

  const externalFlags = ['grpc', 'api', 'token', 'database-url', 'controller-pid'].filter((f) => raw.has(f));
  if (externalFlags.length) {
    const missing = ['grpc', 'api', 'token', 'database-url'].filter((f) => !raw.has(f));
    if (missing.length) {
      throw new UsageError(
        `--${externalFlags[0]} targets a running controller, which also needs ${missing.map((f) => `--${f}`).join(', ')} ` +
          '(the token creates the enrollment token, the database shows lastSeenAt)',
      );
    }
    for (const f of ['controller-node-args', 'controller-log', 'database-server', 'redis', 'storm', 'no-tls']) {
      if (raw.has(f)) throw new UsageError(`--${f} applies only to the controller the harness spawns; it cannot be combined with --grpc`);
    }
    const grpc = str('grpc')!;
    if (!/^[^\s/:]+:\d{1,5}$/.test(grpc) && !/^\[[0-9a-fA-F:]+\]:\d{1,5}$/.test(grpc)) {
      throw new UsageError(`--grpc must be HOST:PORT (no scheme), e.g. 127.0.0.1:9090, got "${grpc}"`);
    }
    const api = str('api')!.replace(/\/+$/, '');
    checkUrl('api', api, ['http:', 'https:']);
    const token = str('token')!;
    if (!/^ibx_[A-Za-z0-9]{20,128}$/.test(token)) throw new UsageError('--token must be an API token: ibx_ followed by 20-128 letters or digits');
    const databaseUrl = str('database-url')!;
    checkUrl('database-url', databaseUrl, ['postgres:', 'postgresql:']);
    opts.external = { grpc, api, token, databaseUrl, ...(raw.has('controller-pid') ? { pid: int('controller-pid', 0) } : {}) };
    const ca = str('ca');
    opts.tls = ca !== undefined;
    if (ca !== undefined) opts.caFile = ca;
  } else {
    if (raw.has('ca')) throw new UsageError('--ca applies only to a running controller (--grpc); the spawned one gets its own certificate');
    const nodeArgs = str('controller-node-args');
    const log = str('controller-log');
    if (nodeArgs !== undefined) opts.controllerNodeArgs = nodeArgs.split(/\s+/).filter(Boolean);
    if (log !== undefined) opts.controllerLog = log;
  }
  return opts;
}

function checkUrl(flag: string, value: string, protocols: string[]): void {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw new UsageError(`--${flag} must be a URL (${protocols[0]}//...), got "${value}"`);
  }
  if (!protocols.includes(u.protocol)) throw new UsageError(`--${flag} must start with ${protocols.map((p) => `${p}//`).join(' or ')}, got "${value}"`);
}
