import type { z } from 'zod';

export interface FieldIssue {
  /** Dotted path of the offending field, e.g. `files.entries[0].path` (empty for the root). */
  path: string;
  message: string;
}

export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out ? `.${String(seg)}` : String(seg);
  }
  return out;
}

/** Flattens a zod error into one issue per field, paths prefixed with `prefix` when given. */
export function fieldIssues(error: z.ZodError, prefix?: string): FieldIssue[] {
  return error.issues.map((i) => {
    const p = formatPath(i.path);
    return { path: prefix ? (p ? (p.startsWith('[') ? `${prefix}${p}` : `${prefix}.${p}`) : prefix) : p, message: i.message };
  });
}

/** One line per issue: `files.entries[0].path: must be an absolute path`. */
export function describeIssues(issues: FieldIssue[]): string {
  return issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('; ');
}

/** Thrown by `parseOrThrow`; carries the field issues for callers that map them to HTTP/gRPC. */
export class ValidationError extends Error {
  constructor(
    readonly what: string,
    readonly issues: FieldIssue[],
  ) {
    super(`invalid ${what}: ${describeIssues(issues)}`);
    this.name = 'ValidationError';
  }
}

export function parseOrThrow<S extends z.ZodType>(schema: S, value: unknown, what: string, prefix?: string): z.output<S> {
  const r = schema.safeParse(value);
  if (!r.success) throw new ValidationError(what, fieldIssues(r.error, prefix));
  return r.data;
}

/** Parses JSON text, reporting a syntax error as a field issue rather than a crash. */
export function parseJsonText(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ValidationError(what, [{ path: '', message: `not valid JSON (${(err as Error).message})` }]);
  }
}
