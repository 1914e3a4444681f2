/**
 * A lossless parser for ifupdown `interfaces` files (ifupdown-ng, BusyBox and Debian syntax).
 * Every line of the input belongs to exactly one item and keeps its exact text, so
 * `serializeInterfaces(parseInterfaces(text)) === text` for any input, including lines this
 * parser does not understand. The structured fields are a view for observing and diffing.
 */

export interface OptionLine {
  key: string;
  value: string;
}

export type InterfacesItem =
  /** Blank lines and comments between stanzas. */
  | { kind: 'blank'; lines: string[] }
  /** `auto a b`, `allow-auto`, `allow-hotplug a`, `allow-<class> ...`. */
  | { kind: 'auto'; keyword: string; names: string[]; lines: string[] }
  /** `iface NAME [family method]` with its option lines (and comments inside it). */
  | { kind: 'iface'; name: string; family?: string; method?: string; options: OptionLine[]; lines: string[] }
  /** `mapping PATTERN...` with its `script`/`map` lines. */
  | { kind: 'mapping'; patterns: string[]; options: OptionLine[]; lines: string[] }
  /** `template NAME` (ifupdown-ng) with its options. */
  | { kind: 'template'; name: string; options: OptionLine[]; lines: string[] }
  | { kind: 'source'; keyword: 'source' | 'source-directory'; path: string; lines: string[] }
  /** A top-level line nothing above explains: kept verbatim. */
  | { kind: 'other'; lines: string[] };

export interface ParsedInterfaces {
  items: InterfacesItem[];
  /** Whether the text ended with a newline. */
  finalNewline: boolean;
}

const STANZA = /^(iface|interface|mapping|template)$/;
const isBlankOrComment = (l: string) => l.trim() === '' || l.trim().startsWith('#');

function words(line: string): string[] {
  return line.trim().split(/\s+/).filter(Boolean);
}

function optionOf(line: string): OptionLine {
  const t = line.trim();
  const i = t.search(/\s/);
  return i < 0 ? { key: t, value: '' } : { key: t.slice(0, i), value: t.slice(i).trim() };
}

/** Whether a line starts a new top-level item (a keyword ifupdown reads at the top level). */
function topKeyword(line: string): string | undefined {
  if (isBlankOrComment(line)) return undefined;
  const w = words(line)[0]!;
  if (STANZA.test(w) || w === 'auto' || w.startsWith('allow-') || w === 'source' || w === 'source-directory') return w;
  return undefined;
}

export function parseInterfaces(text: string): ParsedInterfaces {
  const finalNewline = text.endsWith('\n');
  const lines = text === '' ? [] : (finalNewline ? text.slice(0, -1) : text).split('\n');
  const items: InterfacesItem[] = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i]!;
    if (isBlankOrComment(line)) {
      const start = i;
      while (i < lines.length && isBlankOrComment(lines[i]!)) i++;
      const prev = items.at(-1);
      if (prev?.kind === 'blank') prev.lines.push(...lines.slice(start, i));
      else items.push({ kind: 'blank', lines: lines.slice(start, i) });
      continue;
    }
    const kw = topKeyword(line);
    const w = words(line);
    i++;
    if (kw === 'auto' || kw?.startsWith('allow-')) {
      items.push({ kind: 'auto', keyword: kw, names: w.slice(1), lines: [line] });
      continue;
    }
    if (kw === 'source' || kw === 'source-directory') {
      items.push({ kind: 'source', keyword: kw, path: w.slice(1).join(' '), lines: [line] });
      continue;
    }
    if (kw && STANZA.test(kw)) {
      // The stanza runs until the next top-level keyword; comments and blank lines inside it
      // belong to it only when another option line follows them.
      const body: string[] = [];
      const options: OptionLine[] = [];
      let end = i;
      let j = i;
      while (j < lines.length && !topKeyword(lines[j]!)) {
        if (!isBlankOrComment(lines[j]!)) {
          options.push(optionOf(lines[j]!));
          end = j + 1;
        }
        j++;
      }
      body.push(...lines.slice(i, end));
      i = end;
      const all = [line, ...body];
      if (kw === 'mapping') items.push({ kind: 'mapping', patterns: w.slice(1), options, lines: all });
      else if (kw === 'template') items.push({ kind: 'template', name: w[1] ?? '', options, lines: all });
      else items.push({ kind: 'iface', name: w[1] ?? '', family: w[2], method: w[3], options, lines: all });
      continue;
    }
    items.push({ kind: 'other', lines: [line] });
  }
  return { items, finalNewline };
}

export function serializeInterfaces(p: ParsedInterfaces): string {
  const lines = p.items.flatMap((it) => it.lines);
  if (!lines.length) return '';
  return lines.join('\n') + (p.finalNewline ? '\n' : '');
}

/** The options of every `iface NAME` stanza, merged in file order (ifupdown-ng merges them too). */
export function ifaceOptions(p: ParsedInterfaces, name: string): OptionLine[] {
  return p.items.flatMap((it) => (it.kind === 'iface' && it.name === name ? it.options : []));
}

export function ifaceNames(p: ParsedInterfaces): string[] {
  return [...new Set(p.items.flatMap((it) => (it.kind === 'iface' ? [it.name] : [])))];
}

export function autoNames(p: ParsedInterfaces): string[] {
  return [...new Set(p.items.flatMap((it) => (it.kind === 'auto' && (it.keyword === 'auto' || it.keyword === 'allow-auto') ? it.names : [])))];
}

/** Renames a stanza does before it comes up, in the form the renderer writes (`[ -e /sys/class/net/NEW ] || ip link set dev OLD name NEW`). */
export function renamesOf(p: ParsedInterfaces): Array<{ from: string; to: string }> {
  const out: Array<{ from: string; to: string }> = [];
  for (const it of p.items) {
    if (it.kind !== 'iface') continue;
    for (const o of it.options) {
      const m = o.key === 'pre-up' ? /ip link set dev ([A-Za-z0-9_-]+) name ([A-Za-z0-9_-]+)\s*$/.exec(o.value) : null;
      if (m && m[2] === it.name) out.push({ from: m[1]!, to: m[2]! });
    }
  }
  return out;
}

/**
 * Removes what concerns the named interfaces (their stanzas, and their names from auto/allow
 * lines), keeping every other line exactly as it was.
 */
export function withoutInterfaces(p: ParsedInterfaces, names: ReadonlySet<string>): ParsedInterfaces {
  const items: InterfacesItem[] = [];
  for (const it of p.items) {
    if (it.kind === 'iface' && names.has(it.name)) continue;
    if (it.kind === 'auto' && it.names.some((n) => names.has(n))) {
      const kept = it.names.filter((n) => !names.has(n));
      if (kept.length) items.push({ ...it, names: kept, lines: [`${it.keyword} ${kept.join(' ')}`] });
      continue;
    }
    items.push(it);
  }
  return { ...p, items };
}
