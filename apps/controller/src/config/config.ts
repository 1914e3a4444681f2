import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { describeIssues, fieldIssues } from '@ibex/spec';

const port = (def: number) =>
  z.coerce
    .number({ message: 'must be a port number' })
    .int('must be a whole number')
    .min(0, 'must be 0-65535')
    .max(65535, 'must be 0-65535')
    .default(def);
const ms = (def: number, min = 1) => z.coerce.number({ message: 'must be a number of milliseconds' }).int().min(min, `must be at least ${min} ms`).default(def);
const bool = (def: boolean) =>
  z
    .enum(['true', 'false', '1', '0', 'yes', 'no'], { message: 'must be true or false' })
    .default(def ? 'true' : 'false')
    .transform((v) => v === 'true' || v === '1' || v === 'yes');

/** Every setting, read once from the environment (documented in docs/configuration.md). */
export const envSchema = z
  .object({
    DATABASE_URL: z.string().startsWith('postgres', 'must be a postgresql:// URL').default('postgresql://postgres@127.0.0.1:5432/ibex'),
    REDIS_URL: z.string().startsWith('redis', 'must be a redis:// URL').default('redis://127.0.0.1:6379'),
    IBEX_REDIS_PREFIX: z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/, 'must be 1-64 letters, digits, "_" or "-"').default('ibex'),
    IBEX_HTTP_HOST: z.string().min(1).default('0.0.0.0'),
    IBEX_HTTP_PORT: port(8080),
    IBEX_GRPC_HOST: z.string().min(1).default('0.0.0.0'),
    IBEX_GRPC_PORT: port(9090),
    IBEX_GRPC_TLS_CERT: z.string().min(1).optional(),
    IBEX_GRPC_TLS_KEY: z.string().min(1).optional(),
    /** Bootstrap admin token: used instead of generating one on first start. */
    IBEX_ADMIN_TOKEN: z.string().regex(/^ibx_[A-Za-z0-9]{20,128}$/, 'must look like ibx_ followed by 20-128 letters or digits').optional(),
    IBEX_HEARTBEAT_INTERVAL_MS: ms(15_000, 100),
    IBEX_PRESENCE_FLUSH_MS: ms(1_000, 50),
    /** A device whose last heartbeat is older than this is offline (default 3 heartbeats + a flush). */
    IBEX_OFFLINE_AFTER_MS: z.coerce.number().int().min(100).optional(),
    IBEX_JOB_DEFAULT_EXPIRY_MS: ms(24 * 3600_000, 1000),
    /** How long a new agent stream may take to send its Hello (protocol.md: 10 s). */
    IBEX_HELLO_TIMEOUT_MS: ms(10_000, 100),
    /** First retry delay of a failed job; doubles per attempt, at most 5 minutes (protocol.md: 5 s). */
    IBEX_JOB_RETRY_BACKOFF_MS: ms(5_000, 10),
    /** How often each replica looks at its running rollouts (results in, next wave, offline devices back). */
    IBEX_ROLLOUT_TICK_MS: ms(500, 10),
    IBEX_REPLICA_ID: z.string().regex(/^[a-zA-Z0-9_.-]{1,64}$/).optional(),
    IBEX_MIGRATE_ON_START: bool(true),
    IBEX_LOG_LEVEL: z.enum(['error', 'warn', 'log', 'debug', 'verbose']).default('log'),
    /** The built dashboard (apps/dashboard/dist), served at /ui. */
    IBEX_UI_DIR: z.string().min(1).optional(),
  })
  .superRefine((e, ctx) => {
    if (!!e.IBEX_GRPC_TLS_CERT !== !!e.IBEX_GRPC_TLS_KEY) {
      ctx.addIssue({ code: 'custom', path: ['IBEX_GRPC_TLS_KEY'], message: 'IBEX_GRPC_TLS_CERT and IBEX_GRPC_TLS_KEY go together: set both or neither' });
    }
  });

export interface Config {
  databaseUrl: string;
  redisUrl: string;
  redisPrefix: string;
  http: { host: string; port: number };
  grpc: { host: string; port: number; tls?: { certFile: string; keyFile: string } };
  adminToken?: string;
  heartbeatIntervalMs: number;
  presenceFlushMs: number;
  offlineAfterMs: number;
  jobDefaultExpiryMs: number;
  helloTimeoutMs: number;
  jobRetryBackoffMs: number;
  rolloutTickMs: number;
  replicaId: string;
  migrateOnStart: boolean;
  logLevel: 'error' | 'warn' | 'log' | 'debug' | 'verbose';
  /** Directory of the built dashboard served at /ui. */
  uiDir: string;
  version: string;
}

export const CONTROLLER_VERSION = '0.1.0';

/** apps/controller/dist/config/config.js -> apps/dashboard/dist, where its build writes it. */
export const DEFAULT_UI_DIR = fileURLToPath(new URL('../../../dashboard/dist', import.meta.url));

export class ConfigError extends Error {}

/** Reads and validates the configuration; the error names each bad variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const r = envSchema.safeParse(env);
  if (!r.success) {
    throw new ConfigError(`invalid configuration: ${describeIssues(fieldIssues(r.error))}`);
  }
  const e = r.data;
  return {
    databaseUrl: e.DATABASE_URL,
    redisUrl: e.REDIS_URL,
    redisPrefix: e.IBEX_REDIS_PREFIX,
    http: { host: e.IBEX_HTTP_HOST, port: e.IBEX_HTTP_PORT },
    grpc: {
      host: e.IBEX_GRPC_HOST,
      port: e.IBEX_GRPC_PORT,
      ...(e.IBEX_GRPC_TLS_CERT && e.IBEX_GRPC_TLS_KEY ? { tls: { certFile: e.IBEX_GRPC_TLS_CERT, keyFile: e.IBEX_GRPC_TLS_KEY } } : {}),
    },
    ...(e.IBEX_ADMIN_TOKEN ? { adminToken: e.IBEX_ADMIN_TOKEN } : {}),
    heartbeatIntervalMs: e.IBEX_HEARTBEAT_INTERVAL_MS,
    presenceFlushMs: e.IBEX_PRESENCE_FLUSH_MS,
    offlineAfterMs: e.IBEX_OFFLINE_AFTER_MS ?? 3 * e.IBEX_HEARTBEAT_INTERVAL_MS + e.IBEX_PRESENCE_FLUSH_MS,
    jobDefaultExpiryMs: e.IBEX_JOB_DEFAULT_EXPIRY_MS,
    helloTimeoutMs: e.IBEX_HELLO_TIMEOUT_MS,
    jobRetryBackoffMs: e.IBEX_JOB_RETRY_BACKOFF_MS,
    rolloutTickMs: e.IBEX_ROLLOUT_TICK_MS,
    replicaId: e.IBEX_REPLICA_ID ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`,
    migrateOnStart: e.IBEX_MIGRATE_ON_START,
    logLevel: e.IBEX_LOG_LEVEL,
    uiDir: e.IBEX_UI_DIR ? resolve(e.IBEX_UI_DIR) : DEFAULT_UI_DIR,
    version: CONTROLLER_VERSION,
  };
}

/** Injection token for the Config object. */
export const CONFIG = Symbol('CONFIG');
