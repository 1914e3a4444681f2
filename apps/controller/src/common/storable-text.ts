/** A string Postgres cannot store, where it is (keys from the root) and why. */
export interface TextIssue {
  path: PropertyKey[];
  message: string;
}

/** Why Postgres cannot store this string (text and jsonb), or undefined. */
export function textProblem(s: string): string | undefined {
  if (s.includes('\u0000')) return 'contains a NUL character (\\u0000), which cannot be stored; remove it';
  if (!s.isWellFormed()) return 'contains an unpaired UTF-16 surrogate, which is not valid Unicode; send valid UTF-8';
  return undefined;
}

/**
 * Every string (value or object key, at any depth) of `value` that Postgres cannot store: a NUL
 * character or an unpaired surrogate. Both came back as a 500 / INTERNAL (SQLSTATE 22021, 22P05)
 * when they reached the database. Iterative: a value may nest thousands deep.
 */
export function unstorableText(value: unknown, root: PropertyKey[] = [], max = 10): TextIssue[] {
  const issues: TextIssue[] = [];
  const stack: Array<[unknown, PropertyKey[]]> = [[value, root]];
  while (stack.length && issues.length < max) {
    const [v, path] = stack.pop()!;
    if (typeof v === 'string') {
      const problem = textProblem(v);
      if (problem) issues.push({ path, message: problem });
    } else if (Array.isArray(v)) {
      v.forEach((x, i) => stack.push([x, [...path, i]]));
    } else if (v && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        const problem = textProblem(k);
        if (problem) issues.push({ path: [...path, k], message: `the key ${problem}` });
        else stack.push([x, [...path, k]]);
      }
    }
  }
  return issues;
}
