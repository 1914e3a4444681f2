import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { parseOrThrow } from '@ibex/spec';
import { CliError, EXIT } from './exit-codes.js';

/**
 * Contexts, like kubectl's: each names a controller URL and an API token. Kept in
 * $XDG_CONFIG_HOME/ibex/config.json (default ~/.config/ibex/config.json), mode 0600 because
 * it holds tokens. `ibexctl login` writes it.
 */
export const contextSchema = z
  .object({
    server: z.url({ protocol: /^https?$/, message: 'must be an http:// or https:// URL' }),
    token: z.string().regex(/^ibx_[A-Za-z0-9]{20,128}$/, 'must look like ibx_ followed by 20-128 letters or digits').optional(),
  })
  .strict();
export type Context = z.output<typeof contextSchema>;

export const configFileSchema = z
  .object({
    currentContext: z.string().min(1).optional(),
    contexts: z.record(z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'context names are 1-64 letters, digits, "_", "." or "-"'), contextSchema).default({}),
  })
  .strict();
export type ConfigFile = z.output<typeof configFileSchema>;

export type Env = Record<string, string | undefined>;

export function configPath(env: Env): string {
  const base = env['XDG_CONFIG_HOME'] || join(env['HOME'] || homedir(), '.config');
  return join(base, 'ibex', 'config.json');
}

export function readConfig(env: Env): ConfigFile {
  const path = configPath(env);
  if (!existsSync(path)) return { contexts: {} };
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new CliError(`${path} is not valid JSON (${(err as Error).message}); fix it or remove it and run \`ibexctl login\` again`, EXIT.usage);
  }
  return parseOrThrow(configFileSchema, raw, `config file ${path}`);
}

/** Writes the file atomically (temp file + rename), readable by its owner only. */
export function writeConfig(env: Env, config: ConfigFile): string {
  const path = configPath(env);
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
  return path;
}

export interface GlobalFlags {
  server?: string;
  token?: string;
  context?: string;
}

export interface Resolved {
  server: string;
  token: string | undefined;
  /** The context the values came from (undefined: flags and environment only). */
  context: string | undefined;
}

/** Where to connect: flags, then IBEX_SERVER / IBEX_TOKEN / IBEX_CONTEXT, then the current context. */
export function resolveContext(flags: GlobalFlags, env: Env): Resolved {
  const file = readConfig(env);
  const name = flags.context ?? env['IBEX_CONTEXT'] ?? file.currentContext;
  const ctx = name ? file.contexts[name] : undefined;
  if (name && !ctx && (flags.context || env['IBEX_CONTEXT'])) {
    const known = Object.keys(file.contexts);
    throw new CliError(`no context "${name}" in ${configPath(env)}${known.length ? ` (there are: ${known.join(', ')})` : ''}; create it with \`ibexctl login --context ${name} --server URL --token TOKEN\``, EXIT.usage);
  }
  const server = flags.server ?? env['IBEX_SERVER'] ?? ctx?.server;
  if (!server) {
    throw new CliError('no controller configured; run `ibexctl login --server http://HOST:8080 --token TOKEN`, or pass --server / set IBEX_SERVER', EXIT.auth);
  }
  const checked = contextSchema.shape.server.safeParse(server);
  if (!checked.success) throw new CliError(`server "${server}" ${checked.error.issues[0]?.message ?? 'is not a URL'}`, EXIT.usage);
  return { server, token: flags.token ?? env['IBEX_TOKEN'] ?? ctx?.token, context: ctx ? name : undefined };
}
