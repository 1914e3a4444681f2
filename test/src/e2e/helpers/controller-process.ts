import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '@ibex/migrate';
import { waitFor } from './exec.js';
import { controllerMain } from './repo.js';

export interface ControllerProcessOptions {
  databaseUrl: string;
  redisPrefix?: string;
  env?: Record<string, string>;
}

/**
 * The controller as a real process (`node apps/controller/dist/main.js`), REST on loopback and
 * gRPC on all addresses (so agents in test namespaces reach it through their veth).
 * Ports stay the same across restart().
 */
export class ControllerProcess {
  readonly adminToken = `ibx_${randomBytes(24).toString('hex')}`;
  readonly redisPrefix: string;
  httpPort = 0;
  grpcPort = 0;
  private child?: ChildProcess;
  logs = '';

  /** Artifact blobs and built images of this controller (never the host's /var/lib): removed when the test process exits. */
  readonly dataDir = mkdtempSync(join(tmpdir(), 'ibex-e2e-data-'));

  constructor(private readonly opts: ControllerProcessOptions) {
    this.redisPrefix = opts.redisPrefix ?? `ibex-e2e-${randomBytes(5).toString('hex')}`;
    process.once('exit', () => rmSync(this.dataDir, { recursive: true, force: true }));
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${this.httpPort}`;
  }

  /** Starts the controller; `env` adds to (and overrides) the constructor's for this run only. */
  async start(env: Record<string, string> = {}): Promise<void> {
    if (!this.httpPort) this.httpPort = await freePort('127.0.0.1');
    if (!this.grpcPort) this.grpcPort = await freePort('0.0.0.0');
    const child = spawn(process.execPath, [controllerMain], {
      env: {
        ...process.env,
        DATABASE_URL: this.opts.databaseUrl,
        IBEX_REDIS_PREFIX: this.redisPrefix,
        IBEX_HTTP_HOST: '127.0.0.1',
        IBEX_HTTP_PORT: String(this.httpPort),
        IBEX_GRPC_HOST: '0.0.0.0',
        IBEX_GRPC_PORT: String(this.grpcPort),
        IBEX_ADMIN_TOKEN: this.adminToken,
        IBEX_ARTIFACTS_DIR: join(this.dataDir, 'artifacts'),
        IBEX_IMAGE_DIR: join(this.dataDir, 'images'),
        ...this.opts.env,
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    child.stdout?.on('data', (d) => (this.logs += d));
    child.stderr?.on('data', (d) => (this.logs += d));
    let exited = false;
    child.once('exit', () => (exited = true));
    await waitFor('the controller to report ready on /readyz', async () => {
      if (exited) throw new Error(`controller exited during start:\n${this.logs}`);
      const r = await fetch(`${this.baseUrl}/readyz`).catch(() => undefined);
      return r?.ok;
    }, 60_000, 200).catch((err: Error) => {
      throw new Error(`${err.message}\ncontroller output:\n${this.logs}`);
    });
  }

  /** Sends a signal and waits for the process to be gone. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill(signal);
    await gone;
  }

  async restart(env: Record<string, string> = {}): Promise<void> {
    await this.stop();
    await this.start(env);
  }

  /** Waits until the running controller exits by itself (e.g. at a failpoint). */
  async exited(timeoutMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const child = this.child;
    if (!child) throw new Error('controller was never started');
    if (child.exitCode !== null || child.signalCode !== null) return { code: child.exitCode, signal: child.signalCode };
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`controller still running after ${timeoutMs} ms`)), timeoutMs);
      child.once('exit', (code, signal) => {
        clearTimeout(t);
        resolve({ code, signal });
      });
    });
  }

  api(path: string, init: { method?: string; json?: unknown; token?: string | null } = {}): Promise<Response> {
    const headers: Record<string, string> = {};
    if (init.token !== null) headers['authorization'] = `Bearer ${init.token ?? this.adminToken}`;
    if (init.json !== undefined) headers['content-type'] = 'application/json';
    return fetch(`${this.baseUrl}${path}`, { method: init.method ?? 'GET', headers, ...(init.json !== undefined ? { body: JSON.stringify(init.json) } : {}) });
  }

  /** api() that expects success and returns the JSON body. */
  async json<T = any>(path: string, init: { method?: string; json?: unknown } = {}): Promise<T> {
    const r = await this.api(path, init);
    const text = await r.text();
    if (!r.ok) throw new Error(`${init.method ?? 'GET'} ${path} -> ${r.status}: ${text}`);
    return (text ? JSON.parse(text) : undefined) as T;
  }
}
