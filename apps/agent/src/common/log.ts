/** One line per event on stderr, as text or JSON. */
export const logLevels = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof logLevels)[number];
export const logFormats = ['text', 'json'] as const;
export type LogFormat = (typeof logFormats)[number];

export type LogFields = Record<string, string | number | boolean | undefined | null>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
}

export interface LoggerOptions {
  level: LogLevel;
  format: LogFormat;
  write?: (line: string) => void;
  now?: () => Date;
}

export function createLogger(opts: LoggerOptions): Logger {
  const min = logLevels.indexOf(opts.level);
  const write = opts.write ?? ((line: string) => process.stderr.write(line));
  const now = opts.now ?? (() => new Date());
  const emit = (level: LogLevel, msg: string, fields?: LogFields) => {
    if (logLevels.indexOf(level) < min) return;
    const ts = now().toISOString();
    const present = Object.entries(fields ?? {}).filter(([, v]) => v !== undefined);
    if (opts.format === 'json') {
      write(JSON.stringify({ ts, level, msg, ...Object.fromEntries(present) }) + '\n');
      return;
    }
    const kv = present.map(([k, v]) => `${k}=${formatValue(v)}`).join(' ');
    write(`${ts} ${level.toUpperCase().padEnd(5)} ${msg}${kv ? ' ' + kv : ''}\n`);
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
  };
}

function formatValue(v: unknown): string {
  const s = String(v);
  return /^[^\s"=]*$/.test(s) && s !== '' ? s : JSON.stringify(s);
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
