import { type ArgumentMetadata, Injectable, type PipeTransform } from '@nestjs/common';
import { describeIssues, type FieldIssue, formatPath } from '@ibex/spec';
import { ValidationFailed } from '../../common/errors.js';
import { WHERE } from './schema-validation.pipe.js';

const MAX_ISSUES = 10;

/** Why Postgres cannot store this string (text and jsonb), or undefined. */
function textProblem(s: string): string | undefined {
  if (s.includes('\u0000')) return 'contains a NUL character (\\u0000), which cannot be stored; remove it';
  if (!s.isWellFormed()) return 'contains an unpaired UTF-16 surrogate, which is not valid Unicode; send valid UTF-8';
  return undefined;
}

/**
 * Refuses strings (values and object keys, at any depth) that Postgres cannot store: a NUL
 * character or an unpaired surrogate, in a path parameter, a query parameter or the body.
 * Found by the REST fuzzer: both reached the database and came back as a 500 (SQLSTATE 22021 /
 * 22P05) instead of a 400 naming the field. Walks iteratively: a body may nest thousands deep.
 */
@Injectable()
export class StorableTextPipe implements PipeTransform {
  transform(value: unknown, meta: ArgumentMetadata): unknown {
    if (meta.type === 'custom') return value;
    const issues: FieldIssue[] = [];
    const root: PropertyKey[] = meta.data ? [meta.data] : [];
    const stack: Array<[unknown, PropertyKey[]]> = [[value, root]];
    while (stack.length && issues.length < MAX_ISSUES) {
      const [v, path] = stack.pop()!;
      if (typeof v === 'string') {
        const problem = textProblem(v);
        if (problem) issues.push({ path: formatPath(path), message: problem });
      } else if (Array.isArray(v)) {
        v.forEach((x, i) => stack.push([x, [...path, i]]));
      } else if (v && typeof v === 'object') {
        for (const [k, x] of Object.entries(v)) {
          const problem = textProblem(k);
          if (problem) issues.push({ path: formatPath([...path, k]), message: `the key ${problem}` });
          else stack.push([x, [...path, k]]);
        }
      }
    }
    if (!issues.length) return value;
    throw new ValidationFailed(`invalid ${WHERE[meta.type] ?? meta.type}: ${describeIssues(issues)}`, issues);
  }
}
