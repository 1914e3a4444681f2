import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { z } from 'zod';
import { describeIssues, fieldIssues } from '@ibex/spec';
import { UsageError } from '../common/errors.js';
import { logFormats, logLevels } from '../common/log.js';
import { parseControllerUrl } from '../connection/controller-url.js';
import { defaultDataDir } from '../journal/data-dir.js';

const controllerSchema = z.string().superRefine((v, ctx) => {
  try {
    parseControllerUrl(v);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
  }
});

/** Every setting, with its type. Defaults are applied after merging (some depend on `root`). */
const settingSchemas = {
  controller: controllerSchema,
  dataDir: z.string().min(1),
  root: z.string().min(1),
  logLevel: z.enum(logLevels),
  logFormat: z.enum(logFormats),
  driftCheckIntervalSec: z.number().int().min(1).max(7 * 24 * 3600),
  healDrift: z.boolean(),
  caFile: z.string().min(1),
};
export type SettingKey = keyof typeof settingSchemas;
export const settingKeys = Object.keys(settingSchemas) as SettingKey[];

export interface Config {
  controller?: string;
  dataDir: string;
  root: string;
  logLevel: (typeof logLevels)[number];
  logFormat: (typeof logFormats)[number];
  driftCheckIntervalSec: number;
  healDrift: boolean;
  caFile?: string;
  /** The config file that was read, if any. */
  configFile?: string;
}

/** How each setting is named on the command line and in the environment. */
export const settingNames: Record<SettingKey, { flag: string; env: string }> = {
  controller: { flag: 'controller', env: 'IBEX_AGENT_CONTROLLER' },
  dataDir: { flag: 'data-dir', env: 'IBEX_AGENT_DATA_DIR' },
  root: { flag: 'root', env: 'IBEX_AGENT_ROOT' },
  logLevel: { flag: 'log-level', env: 'IBEX_AGENT_LOG_LEVEL' },
  logFormat: { flag: 'log-format', env: 'IBEX_AGENT_LOG_FORMAT' },
  driftCheckIntervalSec: { flag: 'drift-check-interval-sec', env: 'IBEX_AGENT_DRIFT_CHECK_INTERVAL_SEC' },
  healDrift: { flag: 'heal-drift', env: 'IBEX_AGENT_HEAL_DRIFT' },
  caFile: { flag: 'ca', env: 'IBEX_AGENT_CA_FILE' },
};

/** IBEX_AGENT_* variables that are not settings but are known. */
const OTHER_ENV = ['IBEX_AGENT_CONFIG', 'IBEX_AGENT_FAILPOINTS'];

const PATH_KEYS: SettingKey[] = ['dataDir', 'root', 'caFile'];

export interface ConfigSources {
  /** Setting values from flags (strings as typed, booleans for switches) plus `config`. */
  flags: Partial<Record<SettingKey, string | boolean>> & { config?: string };
  env: NodeJS.ProcessEnv;
  cwd: string;
}

type Values = Partial<Record<SettingKey, unknown>>;

function coerce(key: SettingKey, raw: string | boolean, where: string): unknown {
  if (typeof raw === 'boolean') return raw;
  const schema = settingSchemas[key];
  if (schema instanceof z.ZodBoolean) {
    const v = raw.trim().toLowerCase();
    if (['true', '1', 'yes', 'on'].includes(v)) return true;
    if (['false', '0', 'no', 'off'].includes(v)) return false;
    throw new UsageError(`${where}: "${raw}" is not a boolean; use true or false`);
  }
  if (schema instanceof z.ZodNumber) {
    const n = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(n)) throw new UsageError(`${where}: "${raw}" is not a number`);
    return n;
  }
  return raw;
}

function check(key: SettingKey, value: unknown, where: string): unknown {
  const r = settingSchemas[key].safeParse(value);
  if (!r.success) throw new UsageError(`${where}: ${describeIssues(fieldIssues(r.error))}`);
  return r.data;
}

function absolute(p: string, base: string): string {
  return isAbsolute(p) ? p : resolve(base, p);
}

function readConfigFile(path: string, explicit: boolean): Values {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && !explicit) return {};
    if (code === 'ENOENT') throw new UsageError(`config file ${path} does not exist; create it or leave out --config/IBEX_AGENT_CONFIG`);
    throw new UsageError(`config file ${path} cannot be read: ${(err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`config file ${path} is not valid JSON (${(err as Error).message}); fix it or point --config elsewhere`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new UsageError(`config file ${path} must hold a JSON object of settings (${settingKeys.join(', ')})`);
  const out: Values = {};
  for (const [k, v] of Object.entries(raw)) {
    if (!(settingKeys as string[]).includes(k)) throw new UsageError(`config file ${path}: "${k}" is not a setting; known settings: ${settingKeys.join(', ')}`);
    const key = k as SettingKey;
    const value = check(key, v, `config file ${path}: ${key}`);
    out[key] = PATH_KEYS.includes(key) ? absolute(value as string, dirname(path)) : value;
  }
  return out;
}

function fromEnv(env: NodeJS.ProcessEnv, cwd: string): Values {
  const byEnv = new Map(settingKeys.map((k) => [settingNames[k].env, k]));
  const out: Values = {};
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith('IBEX_AGENT_') || raw === undefined || OTHER_ENV.includes(name)) continue;
    const key = byEnv.get(name);
    if (!key) throw new UsageError(`environment variable ${name} is not a setting; known: ${[...byEnv.keys(), ...OTHER_ENV].join(', ')}`);
    const value = check(key, coerce(key, raw, name), name);
    out[key] = PATH_KEYS.includes(key) ? absolute(value as string, cwd) : value;
  }
  return out;
}

function fromFlags(flags: ConfigSources['flags'], cwd: string): Values {
  const out: Values = {};
  for (const key of settingKeys) {
    const raw = flags[key];
    if (raw === undefined) continue;
    const where = `--${settingNames[key].flag}`;
    const value = check(key, coerce(key, raw, where), where);
    out[key] = PATH_KEYS.includes(key) ? absolute(value as string, cwd) : value;
  }
  return out;
}

/** Settings from flags > environment > config file > defaults, each validated where it came from. */
export function loadConfig(src: ConfigSources): Config {
  const env = fromEnv(src.env, src.cwd);
  const flags = fromFlags(src.flags, src.cwd);
  // The config file is found before it is read, so only flags and env can say where root is.
  const preRoot = (flags.root ?? env.root ?? '/') as string;
  const explicitFile = src.flags.config ?? src.env.IBEX_AGENT_CONFIG;
  const configFile = explicitFile ? absolute(explicitFile, src.cwd) : join(preRoot, 'etc/ibex/agent.json');
  const file = readConfigFile(configFile, explicitFile !== undefined);
  const merged: Values = { ...file, ...env, ...flags };
  const root = (merged.root as string | undefined) ?? '/';
  return {
    controller: merged.controller as string | undefined,
    root,
    dataDir: (merged.dataDir as string | undefined) ?? defaultDataDir(root),
    logLevel: (merged.logLevel as Config['logLevel'] | undefined) ?? 'info',
    logFormat: (merged.logFormat as Config['logFormat'] | undefined) ?? 'text',
    driftCheckIntervalSec: (merged.driftCheckIntervalSec as number | undefined) ?? 300,
    healDrift: (merged.healDrift as boolean | undefined) ?? true,
    caFile: merged.caFile as string | undefined,
    configFile,
  };
}
