/**
 * Unified diffs (`diff -u` / `git diff` format) for dry-run output: a capability that changes a
 * file puts `unifiedDiff(path, before, after)` in its step summary as `diff`. Pure.
 */

export interface UnifiedDiffOptions {
  /** Lines of context around each change (default 3, like diff -u). */
  context?: number;
  /** Longer diffs are cut here with a note, so reports stay small (default 64 KiB). */
  maxChars?: number;
}

/** Text a diff can show: valid UTF-8 without NUL bytes. Anything else is summarised as binary. */
export function diffableText(data: Uint8Array): string | undefined {
  if (data.includes(0)) return undefined;
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(data);
  } catch {
    return undefined;
  }
}

/** Lines without their terminators; `noEol` when the text does not end with a newline. */
function splitLines(text: string): { lines: string[]; noEol: boolean } {
  if (text === '') return { lines: [], noEol: false };
  const lines = text.split('\n');
  const noEol = lines[lines.length - 1] !== '';
  if (!noEol) lines.pop();
  return { lines, noEol };
}

type Op = { kind: ' ' | '-' | '+'; line: string; a: number; b: number };

/**
 * Entries (4 bytes each) Myers' search may keep: its trace grows by N+M per edit, so two
 * unrelated files of a few thousand lines would take gigabytes (an edge device has far less).
 * Beyond it the changed middle is shown as removed, then added: still a correct diff.
 */
const TRACE_BUDGET = 4_000_000;

/**
 * The edit script of `a` into `b`, as a list of kept, removed and added lines: the common
 * start and end kept, the middle by Myers' search when it fits TRACE_BUDGET.
 */
function editScript(a: readonly string[], b: readonly string[]): Op[] {
  let pre = 0;
  while (pre < a.length && pre < b.length && a[pre] === b[pre]) pre++;
  let suf = 0;
  while (suf < a.length - pre && suf < b.length - pre && a[a.length - 1 - suf] === b[b.length - 1 - suf]) suf++;
  const midA = a.slice(pre, a.length - suf);
  const midB = b.slice(pre, b.length - suf);
  const mid = myers(midA, midB) ?? [...midA.map((line, i) => ({ kind: '-' as const, line, a: i, b: 0 })), ...midB.map((line, i) => ({ kind: '+' as const, line, a: midA.length, b: i }))];
  const keep = (from: number, to: number, shift: number): Op[] => a.slice(from, to).map((line, i) => ({ kind: ' ', line, a: from + i, b: from + i + shift }));
  return [...keep(0, pre, 0), ...mid.map((o) => ({ ...o, a: o.a + pre, b: o.b + pre })), ...keep(a.length - suf, a.length, b.length - a.length)];
}

/** Myers' O((N+M)D) shortest edit script; undefined when its trace would exceed TRACE_BUDGET. */
function myers(a: readonly string[], b: readonly string[]): Op[] | undefined {
  const n = a.length;
  const m = b.length;
  const max = n + m;
  const offset = max + 1;
  const v = new Int32Array(2 * max + 3);
  const trace: Int32Array[] = [];
  let found = false;
  for (let d = 0; d <= max && !found; d++) {
    if ((d + 1) * v.length > TRACE_BUDGET) return undefined;
    trace.push(v.slice());
    for (let k = -d; k <= d; k += 2) {
      let x = k === -d || (k !== d && v[offset + k - 1]! < v[offset + k + 1]!) ? v[offset + k + 1]! : v[offset + k - 1]! + 1;
      let y = x - k;
      while (x < n && y < m && a[x] === b[y]) {
        x++;
        y++;
      }
      v[offset + k] = x;
      if (x >= n && y >= m) {
        found = true;
        break;
      }
    }
  }
  // Walk the trace back from (n, m) to (0, 0).
  const ops: Op[] = [];
  let x = n;
  let y = m;
  for (let d = trace.length - 1; d >= 0; d--) {
    const vd = trace[d]!;
    const k = x - y;
    const prevK = k === -d || (k !== d && vd[offset + k - 1]! < vd[offset + k + 1]!) ? k + 1 : k - 1;
    const prevX = d === 0 ? 0 : vd[offset + prevK]!;
    const prevY = prevX - prevK;
    while (x > prevX && y > prevY) {
      x--;
      y--;
      ops.push({ kind: ' ', line: a[x]!, a: x, b: y });
    }
    if (d === 0) break;
    if (x === prevX) ops.push({ kind: '+', line: b[--y]!, a: x, b: y });
    else ops.push({ kind: '-', line: a[--x]!, a: x, b: y });
  }
  return ops.reverse();
}

/**
 * In each run of changes, removed lines before added ones (as diff prints them; patch needs
 * the "no newline" marker after the last line of its side), then line numbers recounted.
 */
function normalise(ops: Op[]): void {
  let i = 0;
  while (i < ops.length) {
    if (ops[i]!.kind === ' ') {
      i++;
      continue;
    }
    let j = i;
    while (j < ops.length && ops[j]!.kind !== ' ') j++;
    const run = ops.slice(i, j);
    ops.splice(i, run.length, ...run.filter((o) => o.kind === '-'), ...run.filter((o) => o.kind === '+'));
    i = j;
  }
  let a = 0;
  let b = 0;
  for (const o of ops) {
    o.a = a;
    o.b = b;
    if (o.kind !== '+') a++;
    if (o.kind !== '-') b++;
  }
}

function range(start: number, count: number): string {
  // diff -u: an empty range names the line before it; a range of one has no count.
  if (count === 0) return `${start},0`;
  return count === 1 ? `${start + 1}` : `${start + 1},${count}`;
}

/**
 * The unified diff that turns `before` into `after` for a file at device path `path`; `null`
 * stands for "absent" (shown as /dev/null). Empty string when nothing differs.
 */
export function unifiedDiff(path: string, before: string | null, after: string | null, opts: UnifiedDiffOptions = {}): string {
  if (before === after) return '';
  const context = opts.context ?? 3;
  const maxChars = opts.maxChars ?? 64 * 1024;
  const a = splitLines(before ?? '');
  const b = splitLines(after ?? '');
  const ops = editScript(a.lines, b.lines);
  const rel = path.replace(/^\/+/, '');
  const out: string[] = [before === null ? '--- /dev/null' : `--- a/${rel}`, after === null ? '+++ /dev/null' : `+++ b/${rel}`];

  // The last line of each side, which may need "\ No newline at end of file" after it.
  const lastA = a.lines.length - 1;
  const lastB = b.lines.length - 1;
  // A kept line that ends one side without a newline but not the other is a change, not context.
  const i = ops.findIndex((o) => o.kind === ' ' && (o.a === lastA && a.noEol) !== (o.b === lastB && b.noEol));
  if (i >= 0) {
    const o = ops[i]!;
    ops.splice(i, 1, { kind: '-', line: o.line, a: o.a, b: o.b }, { kind: '+', line: o.line, a: o.a + 1, b: o.b });
  }
  normalise(ops);
  const changed = ops.map((o, i) => (o.kind === ' ' ? -1 : i)).filter((i) => i >= 0);
  let c = 0;
  while (c < changed.length) {
    // A hunk: changes with at most 2*context unchanged lines between them share one.
    let j = c;
    while (j + 1 < changed.length && changed[j + 1]! - changed[j]! - 1 <= 2 * context) j++;
    const from = Math.max(0, changed[c]! - context);
    const to = Math.min(ops.length - 1, changed[j]! + context);
    const hunk = ops.slice(from, to + 1);
    const first = hunk[0]!;
    const aCount = hunk.filter((o) => o.kind !== '+').length;
    const bCount = hunk.filter((o) => o.kind !== '-').length;
    out.push(`@@ -${range(first.a, aCount)} +${range(first.b, bCount)} @@`);
    for (const o of hunk) {
      out.push(`${o.kind}${o.line}`);
      const endsA = o.kind !== '+' && o.a === lastA && a.noEol;
      const endsB = o.kind !== '-' && o.b === lastB && b.noEol;
      if ((o.kind === '-' && endsA) || (o.kind === '+' && endsB) || (o.kind === ' ' && (endsA || endsB))) out.push('\\ No newline at end of file');
    }
    c = j + 1;
  }
  const text = out.join('\n') + '\n';
  if (text.length <= maxChars) return text;
  const cut = text.lastIndexOf('\n', maxChars);
  return `${text.slice(0, cut + 1)}\\ ... diff cut at ${maxChars} characters (${text.length} in all)\n`;
}
