/**
 * OpenWrt's UCI configuration format: a parser (the syntax of libuci's file.c: `package`,
 * `config`, `option`, `list`, single and double quotes, backslashes, `#` comments, `;`
 * separators, quoted values over several lines), the exact text `uci export` prints, and the
 * `uci batch` lines that turn one package into another. Pure: no I/O.
 */

export type UciValue = string | string[];

export interface UciSection {
  type: string;
  /** Undefined for an anonymous section (`config zone` without a name). */
  name?: string;
  /** In file order; a list is an array (kept in order). */
  options: Array<[string, UciValue]>;
}

export interface UciPackage {
  name: string;
  sections: UciSection[];
}

export class UciParseError extends Error {
  override name = 'UciParseError';
  constructor(
    readonly reason: string,
    readonly line: number,
  ) {
    super(`${reason} at line ${line}`);
  }
}

const NAME_RE = /^[A-Za-z0-9_]+$/;
/** libuci's uci_validate_type: printable, no quotes or whitespace... in practice what `config` lines carry. */
const TYPE_RE = /^[A-Za-z0-9_-]+$/;
const PACKAGE_RE = /^[A-Za-z0-9_-]+$/;

export const isUciName = (s: string) => NAME_RE.test(s);

/** A logical command of a UCI file: its words (quotes removed) and the line it starts on. */
interface Command {
  words: string[];
  line: number;
}

/**
 * Splits UCI text into commands the way libuci's parse_str does: whitespace separates words
 * outside quotes; 'single quotes' take everything literally (also newlines); "double quotes"
 * and unquoted text take `\x` as x and a backslash at the end of a line as a continuation; `#`
 * where a word may continue starts a comment; `;` ends a command.
 */
function tokenize(text: string): Command[] {
  const out: Command[] = [];
  let i = 0;
  let line = 1;
  let words: string[] = [];
  let start = 1;
  const n = text.length;
  const endCommand = () => {
    if (words.length) out.push({ words, line: start });
    words = [];
  };
  while (i < n) {
    const c = text[i]!;
    if (c === '\n') {
      endCommand();
      line++;
      i++;
      continue;
    }
    if (c === ' ' || c === '\t' || c === '\r' || c === '\f' || c === '\v') {
      i++;
      continue;
    }
    if (c === ';') {
      endCommand();
      i++;
      continue;
    }
    if (c === '#') {
      while (i < n && text[i] !== '\n') i++;
      continue;
    }
    if (!words.length) start = line;
    // One word, made of quoted and unquoted parts next to each other.
    let w = '';
    let ended = false;
    // `\x` is x; a backslash at the end of a line continues the word on the next one.
    const backslash = () => {
      i++;
      if (i < n && text[i] === '\n') {
        line++;
        i++;
      } else if (i < n) w += text[i++];
    };
    while (i < n && !ended) {
      const d = text[i]!;
      if (d === "'") {
        const from = line;
        i++;
        while (i < n && text[i] !== "'") {
          if (text[i] === '\n') line++;
          w += text[i++];
        }
        if (i >= n) throw new UciParseError("EOF with unterminated '", from);
        i++;
      } else if (d === '"') {
        const from = line;
        i++;
        while (i < n && text[i] !== '"') {
          if (text[i] === '\\') {
            backslash();
            continue;
          }
          if (text[i] === '\n') line++;
          w += text[i++];
        }
        if (i >= n) throw new UciParseError('EOF with unterminated "', from);
        i++;
      } else if (d === '\\') {
        backslash();
      } else if (d === '#') {
        // The rest of the line is a comment; the word ends here.
        while (i < n && text[i] !== '\n') i++;
        ended = true;
      } else if (d === ';' || d === ' ' || d === '\t' || d === '\r' || d === '\n' || d === '\f' || d === '\v') {
        ended = true;
      } else {
        w += d;
        i++;
      }
    }
    words.push(w);
  }
  endCommand();
  return out;
}

function setOption(section: UciSection, key: string, value: string, list: boolean): void {
  const idx = section.options.findIndex(([k]) => k === key);
  if (idx < 0) {
    section.options.push([key, list ? [value] : value]);
    return;
  }
  const [, old] = section.options[idx]!;
  if (!list) section.options[idx] = [key, value];
  else section.options[idx] = [key, Array.isArray(old) ? [...old, value] : [old, value]];
}

/**
 * Parses one package (a file of /etc/config, or `uci export` output). `name` is the package
 * name when the text has no `package` line (a config file); a `package` line naming another
 * package is an error, like a second one.
 */
export function parseUci(text: string, name?: string): UciPackage {
  const pkg: UciPackage = { name: name ?? '', sections: [] };
  let seenPackage = false;
  let current: UciSection | undefined;
  for (const cmd of tokenize(text)) {
    const [kw, ...args] = cmd.words;
    const fail = (reason: string): never => {
      throw new UciParseError(reason, cmd.line);
    };
    switch (kw) {
      case 'package':
      case 'p': {
        if (args.length !== 1) fail(args.length ? 'too many arguments' : 'package without name');
        if (!PACKAGE_RE.test(args[0]!)) fail('invalid character in name field');
        if (seenPackage || current) fail('a package line must come first and only once');
        if (name !== undefined && args[0] !== name) fail(`package ${args[0]} where ${name} was expected`);
        pkg.name = args[0]!;
        seenPackage = true;
        break;
      }
      case 'config':
      case 'c': {
        if (!args.length) fail('config without name');
        if (args.length > 2) fail('too many arguments');
        const [type, sname] = args as [string, string | undefined];
        if (!TYPE_RE.test(type)) fail('invalid character in type field');
        if (sname !== undefined && sname !== '' && !NAME_RE.test(sname)) fail('invalid character in name field');
        if (sname) {
          const existing = pkg.sections.find((s) => s.name === sname);
          if (existing) {
            if (existing.type !== type) fail('section of different type overwrites prior section with same name');
            current = existing;
            break;
          }
        }
        current = { type, ...(sname ? { name: sname } : {}), options: [] };
        pkg.sections.push(current);
        break;
      }
      case 'option':
      case 'o':
      case 'list':
      case 'l': {
        if (!current) fail('option/list command found before the first section');
        if (!args.length) fail('option without name');
        if (args.length > 2) fail('too many arguments');
        if (!NAME_RE.test(args[0]!)) fail('invalid character in name field');
        setOption(current!, args[0]!, args[1] ?? '', kw === 'list' || kw === 'l');
        break;
      }
      default:
        fail('invalid command');
    }
  }
  if (!pkg.name) throw new UciParseError('attempting to import a file without a package name', 1);
  return pkg;
}

/** 'value' with each ' written as '\'' (libuci's uci_escape inside single quotes). */
export function quoteUci(v: string): string {
  return `'${v.replaceAll("'", "'\\''")}'`;
}

/** The sections and options as `uci export` prints them (libuci's uci_export_package). */
function exportBody(pkg: UciPackage): string {
  let s = '';
  for (const sec of pkg.sections) {
    s += `\nconfig ${sec.type}${sec.name !== undefined ? ` ${quoteUci(sec.name)}` : ''}\n`;
    for (const [k, v] of sec.options) {
      if (Array.isArray(v)) for (const item of v) s += `\tlist ${k} ${quoteUci(item)}\n`;
      else s += `\toption ${k} ${quoteUci(v)}\n`;
    }
  }
  return `${s}\n`;
}

/** Exactly what `uci export PKG` prints. */
export function exportUci(pkg: UciPackage): string {
  return `package ${pkg.name}\n${exportBody(pkg)}`;
}

/** Exactly what `uci commit` writes to /etc/config/PKG (the export without its package line). */
export function configFileOf(pkg: UciPackage): string {
  return exportBody(pkg);
}

const sameValue = (a: UciValue | undefined, b: UciValue | undefined): boolean =>
  Array.isArray(a) && Array.isArray(b) ? a.length === b.length && a.every((x, i) => x === b[i]) : a === b;

function sameOptions(a: UciSection, b: UciSection): boolean {
  if (a.options.length !== b.options.length) return false;
  const m = new Map(b.options);
  return a.options.every(([k, v]) => m.has(k) && sameValue(v, m.get(k)));
}

/** Whether two packages configure the same: sections in order with the same type and name, the same options (in any order), lists in order. */
export function sameUci(a: UciPackage, b: UciPackage): boolean {
  return a.sections.length === b.sections.length && a.sections.every((s, i) => s.type === b.sections[i]!.type && s.name === b.sections[i]!.name && sameOptions(s, b.sections[i]!));
}

const setLine = (path: string, v: string) => `set ${path}=${quoteUci(v)}`;

function optionLines(path: string, key: string, v: UciValue): string[] {
  return Array.isArray(v) ? v.map((item) => `add_list ${path}.${key}=${quoteUci(item)}`) : [setLine(`${path}.${key}`, v)];
}

/**
 * The `uci batch` commands (without `commit`) that turn `current` into `desired`, whose
 * sections must all be named. Anonymous sections of `current` are deleted first, by their
 * `@type[index]` (counted over every section of the type, as libuci does) from the highest
 * index down so the ones still to delete keep their index; then named sections that go; then
 * each desired section is created or its options changed; then `reorder` puts them in order.
 * Empty when the packages are the same (`sameUci`).
 */
export function diffUci(current: UciPackage, desired: UciPackage): string[] {
  const p = desired.name;
  for (const s of desired.sections) if (s.name === undefined) throw new Error(`diffUci: desired ${p} has an anonymous ${s.type} section`);
  const lines: string[] = [];
  const wanted = new Map(desired.sections.map((s) => [s.name!, s]));

  // 1. Anonymous sections, highest index of each type first.
  const indexOfType = new Map<string, number>();
  const anonymous: Array<{ type: string; index: number }> = [];
  for (const s of current.sections) {
    const index = indexOfType.get(s.type) ?? 0;
    indexOfType.set(s.type, index + 1);
    if (s.name === undefined) anonymous.push({ type: s.type, index });
  }
  for (const a of anonymous.reverse()) lines.push(`delete ${p}.@${a.type}[${a.index}]`);

  // 2. Named sections that are not wanted, or change type.
  const kept: string[] = [];
  for (const s of current.sections) {
    if (s.name === undefined) continue;
    const want = wanted.get(s.name);
    if (!want || want.type !== s.type) lines.push(`delete ${p}.${s.name}`);
    else kept.push(s.name);
  }

  // 3. Create or update, in the desired order (new sections are appended).
  const order = [...kept];
  for (const want of desired.sections) {
    const path = `${p}.${want.name}`;
    const have = current.sections.find((s) => s.name === want.name && s.type === want.type);
    if (!have) {
      lines.push(`set ${path}=${want.type}`);
      for (const [k, v] of want.options) lines.push(...optionLines(path, k, v));
      order.push(want.name!);
      continue;
    }
    const haveOpts = new Map(have.options);
    const wantOpts = new Map(want.options);
    for (const [k] of have.options) if (!wantOpts.has(k)) lines.push(`delete ${path}.${k}`);
    for (const [k, v] of want.options) {
      const old = haveOpts.get(k);
      if (old !== undefined && sameValue(old, v)) continue;
      // A list is rebuilt whole; a string over a list is deleted first (set would not turn it back).
      if (old !== undefined && (Array.isArray(v) || Array.isArray(old))) lines.push(`delete ${path}.${k}`);
      lines.push(...optionLines(path, k, v));
    }
  }

  // 4. Order.
  desired.sections.forEach((want, i) => {
    if (order[i] === want.name) return;
    lines.push(`reorder ${p}.${want.name}=${i}`);
    order.splice(order.indexOf(want.name!), 1);
    order.splice(i, 0, want.name!);
  });
  return lines;
}

/** Options whose values are secrets: reports and logs show them redacted. */
const SECRET_OPTIONS = /^(key|key[1-4]|password|sae_password|auth_secret|acct_secret|priv_key|private_key|preshared_key|psk)$/;

export const REDACTED = '(redacted)';

/** The package with secret option values replaced (for diffs shown to people). */
export function redactUci(pkg: UciPackage): UciPackage {
  return {
    name: pkg.name,
    sections: pkg.sections.map((s) => ({ ...s, options: s.options.map(([k, v]): [string, UciValue] => (SECRET_OPTIONS.test(k) ? [k, Array.isArray(v) ? v.map(() => REDACTED) : REDACTED] : [k, v])) })),
  };
}

/** A batch line with a secret value redacted. */
export function redactBatchLine(line: string): string {
  const m = /^(set|add_list) ([^=]+)\.([A-Za-z0-9_]+)=/.exec(line);
  return m && SECRET_OPTIONS.test(m[3]!) ? `${m[1]} ${m[2]}.${m[3]}=${quoteUci(REDACTED)}` : line;
}
