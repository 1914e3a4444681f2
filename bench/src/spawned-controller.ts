import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { createTestDatabase, freePort } from '@ibex/migrate';
import { deleteRedisPrefix } from '@ibex/test-support';
import type { Cleanup } from './cleanup.js';

/** The repository root (bench/dist -> ../..). */
const repo = process.env['IBEX_REPO'] ?? fileURLToPath(new URL('../../', import.meta.url));
export const controllerMain = join(repo, 'apps', 'controller', 'dist', 'main.js');

/** How the harness reaches a controller, spawned or already running. */
export interface ControllerTarget {
  grpc: string;
  api: string;
  token: string;
  databaseUrl: string;
  pid?: number;
}

export interface SpawnOptions {
  databaseServer: string;
  redisUrl: string;
  heartbeatMs: number;
  /** Extra node arguments (profiling, heap limits); none by default, as deploy/ runs it. */
  nodeArgs?: string[];
  logFile?: string;
  /** Extra controller environment (IBEX_*). */
  env?: Record<string, string>;
}

/** Output lines kept for the report (the tail is shown when the run fails). */
const TAIL_BYTES = 32 * 1024;

/**
 * One real controller process (`node apps/controller/dist/main.js`, as deploy/ runs it) on a
 * fresh migrated database and a unique Redis prefix, REST and gRPC on 127.0.0.1 only. Everything
 * it creates is registered with `cleanup` before it exists, so an interrupted run leaves nothing.
 */
export class SpawnedController {
  readonly redisPrefix = `ibex-bench-${randomBytes(5).toString('hex')}`;
  readonly adminToken = `ibx_${randomBytes(24).toString('hex')}`;
  target?: ControllerTarget;
  databaseName?: string;
  /** Controller log lines at WARN or ERROR level, counted and the last few kept. */
  warnings = 0;
  readonly lastWarnings: string[] = [];
  private child?: ChildProcess;
  private tail = '';
  private logStream?: WriteStream;
  private env: NodeJS.ProcessEnv = {};

  constructor(
    private readonly opts: SpawnOptions,
    private readonly cleanup: Cleanup,
  ) {}

  async start(): Promise<ControllerTarget> {
    if (!existsSync(controllerMain)) throw new Error(`${controllerMain} does not exist; build first: npx tsc -b tsconfig.build.json`);
    const db = await createTestDatabase({ serverUrl: this.opts.databaseServer });
    this.databaseName = db.name;
    this.cleanup.add(`drop database ${db.name}`, () => db.drop());
    this.cleanup.add(`delete Redis keys ${this.redisPrefix}:*`, () => deleteRedisPrefix(this.opts.redisUrl, this.redisPrefix));

    const httpPort = await freePort();
    const grpcPort = await freePort();
    if (this.opts.logFile) this.logStream = createWriteStream(this.opts.logFile);
    this.env = {
      ...process.env,
      DATABASE_URL: db.url,
      REDIS_URL: this.opts.redisUrl,
      IBEX_REDIS_PREFIX: this.redisPrefix,
      IBEX_HTTP_HOST: '127.0.0.1',
      IBEX_HTTP_PORT: String(httpPort),
      IBEX_GRPC_HOST: '127.0.0.1',
      IBEX_GRPC_PORT: String(grpcPort),
      IBEX_ADMIN_TOKEN: this.adminToken,
      IBEX_MIGRATE_ON_START: 'false', // createTestDatabase migrated it
      IBEX_HEARTBEAT_INTERVAL_MS: String(this.opts.heartbeatMs),
      ...this.opts.env,
    };
    this.target = { grpc: `127.0.0.1:${grpcPort}`, api: `http://127.0.0.1:${httpPort}`, token: this.adminToken, databaseUrl: db.url };
    this.cleanup.add('stop the controller', () => this.stop());
    await this.launch();
    return this.target;
  }

  /** Starts the process (again) on the same database, Redis prefix and ports; resolves once /readyz answers. */
  private async launch(): Promise<void> {
    const child = spawn(process.execPath, [...(this.opts.nodeArgs ?? []), controllerMain], { env: this.env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    child.stdout!.on('data', (d: Buffer) => this.onOutput(d));
    child.stderr!.on('data', (d: Buffer) => this.onOutput(d));
    const api = this.target!.api;
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the controller exited during start (${child.exitCode ?? child.signalCode}):\n${this.tail}`);
      const r = await fetch(`${api}/readyz`, { signal: AbortSignal.timeout(2000) }).catch(() => undefined);
      if (r?.ok) break;
      if (Date.now() > deadline) throw new Error(`the controller did not report ready on ${api}/readyz within 60 s:\n${this.tail}`);
      await sleep(100);
    }
    this.target!.pid = child.pid!;
  }

  /**
   * A crash: SIGKILL (no stream closed, no presence flushed), then the same controller started
   * again. Resolves with when it was killed and when the new one was ready.
   */
  async killAndRestart(): Promise<{ killedAt: number; readyAt: number; pid: number }> {
    const child = this.child!;
    const gone = new Promise<void>((r) => (this.exited ? r() : child.once('exit', () => r())));
    const killedAt = Date.now();
    child.kill('SIGKILL');
    await gone;
    await this.launch();
    return { killedAt, readyAt: Date.now(), pid: this.child!.pid! };
  }

  get exited(): boolean {
    return !this.child || this.child.exitCode !== null || this.child.signalCode !== null;
  }

  logTail(): string {
    return this.tail;
  }

  /** SIGTERM (the controller closes streams and flushes presence), SIGKILL after 20 s. */
  async stop(): Promise<{ ms: number; code: number | null; signal: string | null } | undefined> {
    const child = this.child;
    if (!child) return undefined;
    const started = Date.now();
    if (!this.exited) {
      const gone = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await gone;
      clearTimeout(killer);
    }
    await new Promise<void>((r) => (this.logStream ? this.logStream.end(r) : r()));
    return { ms: Date.now() - started, code: child.exitCode, signal: child.signalCode };
  }

  private onOutput(d: Buffer): void {
    this.logStream?.write(d);
    const text = d.toString('utf8');
    this.tail = (this.tail + text).slice(-TAIL_BYTES);
    for (const line of text.split('\n')) {
      if (/\b(WARN|ERROR)\b/.test(line)) {
        this.warnings++;
        this.lastWarnings.push(line.trim());
        if (this.lastWarnings.length > 5) this.lastWarnings.shift();
      }
    }
  }
}
