import type { ConfigSources, SettingKey } from '../config/config.js';
import { loadConfig, settingKeys, settingNames } from '../config/config.js';
import type { Config } from '../config/config.js';
import type { FlagSpec, ParsedFlags } from './args.js';

/** Flags every command that touches the device or the data dir takes. */
export const commonFlags: FlagSpec[] = [
  { name: 'config', kind: 'value', arg: 'FILE', help: 'config file (default <root>/etc/ibex/agent.json)' },
  { name: 'root', kind: 'value', arg: 'DIR', help: 'the device root: paths in specs and the default data dir are under it (default /)' },
  { name: 'data-dir', kind: 'value', arg: 'DIR', help: 'where the agent keeps everything: journal, generations records, backups (default <root>/var/lib/ibex-agent)' },
  { name: 'log-level', kind: 'value', arg: 'LEVEL', help: 'debug, info, warn or error (default info)' },
  { name: 'log-format', kind: 'value', arg: 'FORMAT', help: 'text or json (default text)' },
];

export const connectFlags: FlagSpec[] = [
  { name: 'controller', kind: 'value', arg: 'URL', help: 'grpc://host:port (plaintext) or grpcs://host:port (TLS)' },
  { name: 'ca', kind: 'value', arg: 'FILE', help: 'PEM file of the CA that signed the controller certificate (grpcs)' },
];

export interface CliEnv {
  env: NodeJS.ProcessEnv;
  cwd: string;
  out: (text: string) => void;
  err: (text: string) => void;
  /** Answers a yes/no question on stdin within the time (tests may replace it; default: process.stdin). */
  stdin?: (timeoutMs: number) => Promise<boolean>;
  /** Set when stderr is a terminal (progress bars are drawn in place). */
  terminal?: { columns: number };
}

/** Settings from the parsed flags, the environment and the config file. */
export function configFrom(flags: ParsedFlags, io: CliEnv): Config {
  const byFlag = new Map(settingKeys.map((k) => [settingNames[k].flag, k] as [string, SettingKey]));
  const settings: ConfigSources['flags'] = {};
  for (const [name, value] of Object.entries(flags)) {
    const key = byFlag.get(name);
    if (key) settings[key] = value;
  }
  if (typeof flags.config === 'string') settings.config = flags.config;
  return loadConfig({ flags: settings, env: io.env, cwd: io.cwd });
}
