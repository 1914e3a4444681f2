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
    /** Require a client certificate from the device CA on Connect (mutual TLS); bearer credentials are refused. */
    IBEX_GRPC_MTLS: bool(false),
    /** An operator-supplied device CA (PEM files); without them the controller makes one and keeps it in Postgres. */
    IBEX_DEVICE_CA_CERT: z.string().min(1).optional(),
    IBEX_DEVICE_CA_KEY: z.string().min(1).optional(),
    /** How long a device certificate is valid; agents renew after two thirds of it. */
    IBEX_DEVICE_CERT_VALIDITY_SEC: z.coerce.number({ message: 'must be a number of seconds' }).int().min(10, 'must be at least 10 s').default(30 * 86400),
    /** Failed enrollments/authentications per source address, and per token, within the window, before refusing. */
    IBEX_AUTH_FAILURES_PER_SOURCE: z.coerce.number().int().min(1, 'must be at least 1').default(30),
    IBEX_AUTH_FAILURES_PER_TOKEN: z.coerce.number().int().min(1, 'must be at least 1').default(10),
    IBEX_AUTH_FAILURE_WINDOW_SEC: z.coerce.number().int().min(1, 'must be at least 1 s').default(60),
    /** Proxies in front of the REST API whose X-Forwarded-For is believed (Express "trust proxy"): a hop count or addresses/subnets. */
    IBEX_HTTP_TRUST_PROXY: z
      .string()
      .regex(/^(\d{1,2}|[0-9a-fA-F.:/]+(\s*,\s*[0-9a-fA-F.:/]+)*|loopback|linklocal|uniquelocal)$/, 'must be a number of hops (1), or comma-separated addresses/subnets (10.0.0.0/8), or loopback')
      .optional(),
    /** Origins (comma-separated, e.g. https://ops.example.com) allowed to call the REST API from a browser; none by default. */
    IBEX_CORS_ORIGINS: z
      .string()
      .transform((v) => v.split(',').map((o) => o.trim()).filter(Boolean))
      .refine((list) => list.every((o) => /^https?:\/\/[^/\s]+$/.test(o)), 'must be a comma-separated list of origins like https://ops.example.com (scheme://host[:port], no path)')
      .optional(),
    /** Bootstrap admin token: used instead of generating one on first start. */
    IBEX_ADMIN_TOKEN: z.string().regex(/^ibx_[A-Za-z0-9]{20,128}$/, 'must look like ibx_ followed by 20-128 letters or digits').optional(),
    IBEX_HEARTBEAT_INTERVAL_MS: ms(15_000, 100),
    IBEX_PRESENCE_FLUSH_MS: ms(1_000, 50),
    /** A device whose last heartbeat is older than this is offline (default 3 heartbeats + a flush). */
    IBEX_OFFLINE_AFTER_MS: z.coerce.number().int().min(100).optional(),
    IBEX_JOB_DEFAULT_EXPIRY_MS: ms(24 * 3600_000, 1000),
    /** How long a new agent stream may take to send its Hello (protocol.md: 10 s). */
    IBEX_HELLO_TIMEOUT_MS: ms(10_000, 100),
    /** Agents a second the fleet's reconnects are spread for (Welcome reconnect_window_ms = devices / this). */
    IBEX_RECONNECT_RATE: z.coerce.number().int().min(1, 'must be at least 1 agent a second').max(100_000).default(250),
    /** First retry delay of a failed job; doubles per attempt, at most 5 minutes (protocol.md: 5 s). */
    IBEX_JOB_RETRY_BACKOFF_MS: ms(5_000, 10),
    /** How often each replica looks at its running rollouts (results in, next wave, offline devices back). */
    IBEX_ROLLOUT_TICK_MS: ms(500, 10),
    IBEX_REPLICA_ID: z.string().regex(/^[a-zA-Z0-9_.-]{1,64}$/).optional(),
    IBEX_MIGRATE_ON_START: bool(true),
    IBEX_LOG_LEVEL: z.enum(['error', 'warn', 'log', 'debug', 'verbose']).default('log'),
    /** The built dashboard (apps/dashboard/dist), served at /ui. */
    IBEX_UI_DIR: z.string().min(1).optional(),
    /** Artifact blobs (content-addressed); every replica must see the same directory. */
    IBEX_ARTIFACTS_DIR: z.string().min(1).default('/var/lib/ibex/artifacts'),
    /** Largest artifact upload in bytes; larger ones get 413 before their body is read (default 8 GiB). */
    IBEX_ARTIFACT_MAX_BYTES: z.coerce.number({ message: 'must be a number of bytes' }).int().min(1, 'must be at least 1 byte').default(8 * 1024 ** 3),
    /** Where agents download artifacts; `{host}` is the host the agent connected to. */
    IBEX_ARTIFACTS_URL: z
      .string()
      .regex(/^https?:\/\/\S+$/, 'must be an http:// or https:// URL, e.g. https://ibex.example.com/api/v1/artifacts')
      .optional(),
    /** Where VM images built before the artifact store are served from (new builds are artifacts; docs/images.md). */
    IBEX_IMAGE_DIR: z.string().min(1).default('/var/lib/ibex-controller/images'),
    /** The only directory `{ path }` sources of image specs may name (unset: none; paths are then refused). */
    IBEX_IMAGE_SOURCE_DIR: z.string().min(1).optional(),
    /** Image builds one replica runs at once. */
    IBEX_IMAGE_BUILD_CONCURRENCY: z.coerce.number({ message: 'must be a number' }).int().min(1, 'must be at least 1').max(16, 'must be at most 16').default(1),
    /** A running build whose replica has not reported for this long is retried (or failed after its last attempt). */
    IBEX_IMAGE_BUILD_STALE_MS: ms(30_000, 1000),
  })
  .superRefine((e, ctx) => {
    if (!!e.IBEX_GRPC_TLS_CERT !== !!e.IBEX_GRPC_TLS_KEY) {
      ctx.addIssue({ code: 'custom', path: ['IBEX_GRPC_TLS_KEY'], message: 'IBEX_GRPC_TLS_CERT and IBEX_GRPC_TLS_KEY go together: set both or neither' });
    }
    if (e.IBEX_GRPC_MTLS && !e.IBEX_GRPC_TLS_CERT) {
      ctx.addIssue({ code: 'custom', path: ['IBEX_GRPC_MTLS'], message: 'mutual TLS needs the server side of TLS too: set IBEX_GRPC_TLS_CERT and IBEX_GRPC_TLS_KEY' });
    }
    if (!!e.IBEX_DEVICE_CA_CERT !== !!e.IBEX_DEVICE_CA_KEY) {
      ctx.addIssue({ code: 'custom', path: ['IBEX_DEVICE_CA_KEY'], message: 'IBEX_DEVICE_CA_CERT and IBEX_DEVICE_CA_KEY go together: set both or neither' });
    }
  });

export interface Config {
  databaseUrl: string;
  redisUrl: string;
  redisPrefix: string;
  http: { host: string; port: number };
  grpc: { host: string; port: number; tls?: { certFile: string; keyFile: string }; mtls: boolean };
  /** Operator-supplied device CA files; absent: the CA kept in Postgres. */
  deviceCa?: { certFile: string; keyFile: string };
  deviceCertValiditySec: number;
  authFailures: { perSource: number; perToken: number; windowSec: number };
  corsOrigins: string[];
  /** Express "trust proxy": a hop count, or addresses/subnets; unset trusts no proxy. */
  httpTrustProxy?: number | string;
  adminToken?: string;
  heartbeatIntervalMs: number;
  presenceFlushMs: number;
  offlineAfterMs: number;
  jobDefaultExpiryMs: number;
  helloTimeoutMs: number;
  /** Agents a second one replica is expected to admit after a restart (the Welcome's reconnect window). */
  reconnectRate: number;
  jobRetryBackoffMs: number;
  rolloutTickMs: number;
  replicaId: string;
  migrateOnStart: boolean;
  logLevel: 'error' | 'warn' | 'log' | 'debug' | 'verbose';
  /** Directory of the built dashboard served at /ui. */
  uiDir: string;
  artifacts: { dir: string; maxBytes: number; url: string };
  images: { dir: string; sourceDir?: string; concurrency: number; staleMs: number };
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
      mtls: e.IBEX_GRPC_MTLS,
    },
    ...(e.IBEX_DEVICE_CA_CERT && e.IBEX_DEVICE_CA_KEY ? { deviceCa: { certFile: e.IBEX_DEVICE_CA_CERT, keyFile: e.IBEX_DEVICE_CA_KEY } } : {}),
    deviceCertValiditySec: e.IBEX_DEVICE_CERT_VALIDITY_SEC,
    authFailures: { perSource: e.IBEX_AUTH_FAILURES_PER_SOURCE, perToken: e.IBEX_AUTH_FAILURES_PER_TOKEN, windowSec: e.IBEX_AUTH_FAILURE_WINDOW_SEC },
    corsOrigins: e.IBEX_CORS_ORIGINS ?? [],
    ...(e.IBEX_HTTP_TRUST_PROXY ? { httpTrustProxy: /^\d+$/.test(e.IBEX_HTTP_TRUST_PROXY) ? Number(e.IBEX_HTTP_TRUST_PROXY) : e.IBEX_HTTP_TRUST_PROXY } : {}),
    ...(e.IBEX_ADMIN_TOKEN ? { adminToken: e.IBEX_ADMIN_TOKEN } : {}),
    heartbeatIntervalMs: e.IBEX_HEARTBEAT_INTERVAL_MS,
    presenceFlushMs: e.IBEX_PRESENCE_FLUSH_MS,
    offlineAfterMs: e.IBEX_OFFLINE_AFTER_MS ?? 3 * e.IBEX_HEARTBEAT_INTERVAL_MS + e.IBEX_PRESENCE_FLUSH_MS,
    jobDefaultExpiryMs: e.IBEX_JOB_DEFAULT_EXPIRY_MS,
    helloTimeoutMs: e.IBEX_HELLO_TIMEOUT_MS,
    reconnectRate: e.IBEX_RECONNECT_RATE,
    jobRetryBackoffMs: e.IBEX_JOB_RETRY_BACKOFF_MS,
    rolloutTickMs: e.IBEX_ROLLOUT_TICK_MS,
    replicaId: e.IBEX_REPLICA_ID ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`,
    migrateOnStart: e.IBEX_MIGRATE_ON_START,
    logLevel: e.IBEX_LOG_LEVEL,
    uiDir: e.IBEX_UI_DIR ? resolve(e.IBEX_UI_DIR) : DEFAULT_UI_DIR,
    artifacts: {
      dir: resolve(e.IBEX_ARTIFACTS_DIR),
      maxBytes: e.IBEX_ARTIFACT_MAX_BYTES,
      url: (e.IBEX_ARTIFACTS_URL ?? `http://{host}:${e.IBEX_HTTP_PORT}/api/v1/artifacts`).replace(/\/+$/, ''),
    },
    images: { dir: resolve(e.IBEX_IMAGE_DIR), ...(e.IBEX_IMAGE_SOURCE_DIR ? { sourceDir: resolve(e.IBEX_IMAGE_SOURCE_DIR) } : {}), concurrency: e.IBEX_IMAGE_BUILD_CONCURRENCY, staleMs: e.IBEX_IMAGE_BUILD_STALE_MS },
    version: CONTROLLER_VERSION,
  };
}

/** Injection token for the Config object. */
export const CONFIG = Symbol('CONFIG');
