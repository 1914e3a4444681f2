/**
 * A unified diff (`diff -u` style, 3 lines of context) of two texts, for dry-run output.
 * LCS over lines; config files are small, and beyond a size bound the whole file is shown as
 * replaced rather than spending quadratic time.
 */
const MAX_CELLS = 4_000_000;
const CONTEXT = 3;

function splitLines(s: string | undefined): string[] {
  if (s === undefined || s === '') return [];
  const lines = s.split('\n');
  if (lines.at(-1) === '') lines.pop();
  return lines;
}

type Op = { t: ' ' | '-' | '+'; line: string };

function diffOps(a: string[], b: string[]): Op[] {
  if (a.length * b.length > MAX_CELLS) return [...a.map((line) => ({ t: '-' as const, line })), ...b.map((line) => ({ t: '+' as const, line }))];
  const n = a.length;
  const m = b.length;
  // lcs[i][j] = LCS length of a[i..] and b[j..]
  const lcs = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) lcs[i]![j] = a[i] === b[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
  const ops: Op[] = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (a[i] === b[j]) {
      ops.push({ t: ' ', line: a[i]! });
      i++;
      j++;
    } else if (lcs[i + 1]![j]! >= lcs[i]![j + 1]!) ops.push({ t: '-', line: a[i++]! });
    else ops.push({ t: '+', line: b[j++]! });
  }
  while (i < n) ops.push({ t: '-', line: a[i++]! });
  while (j < m) ops.push({ t: '+', line: b[j++]! });
  return ops;
}

/** `before`/`after` undefined = the file does not exist (shown as /dev/null). Empty string when equal. */
export function unifiedDiff(path: string, before: string | undefined, after: string | undefined): string {
  if (before === after) return '';
  const a = splitLines(before);
  const b = splitLines(after);
  const ops = diffOps(a, b);
  const out = [`--- ${before === undefined ? '/dev/null' : `a${path}`}`, `+++ ${after === undefined ? '/dev/null' : `b${path}`}`];
  // Hunks: runs of changes with up to CONTEXT lines around them, merged when close.
  const changed = ops.map((o, k) => (o.t !== ' ' ? k : -1)).filter((k) => k >= 0);
  let k = 0;
  while (k < changed.length) {
    const start = Math.max(0, changed[k]! - CONTEXT);
    let end = changed[k]!;
    while (k < changed.length && changed[k]! <= end + 2 * CONTEXT + 1) end = changed[k++]!;
    end = Math.min(ops.length - 1, end + CONTEXT);
    let aStart = 0;
    let bStart = 0;
    for (let x = 0; x < start; x++) {
      if (ops[x]!.t !== '+') aStart++;
      if (ops[x]!.t !== '-') bStart++;
    }
    const hunk = ops.slice(start, end + 1);
    const aLen = hunk.filter((o) => o.t !== '+').length;
    const bLen = hunk.filter((o) => o.t !== '-').length;
    out.push(`@@ -${aLen ? aStart + 1 : aStart},${aLen} +${bLen ? bStart + 1 : bStart},${bLen} @@`);
    for (const o of hunk) out.push(o.t + o.line);
  }
  const noNl = (s: string | undefined) => s !== undefined && s !== '' && !s.endsWith('\n');
  if (noNl(before) || noNl(after)) out.push('\\ (a file does not end with a newline)');
  return out.join('\n') + '\n';
}
