import { type ArgumentMetadata, Injectable, type PipeTransform } from '@nestjs/common';
import { describeIssues, type FieldIssue, formatPath } from '@ibex/spec';
import { ValidationFailed } from '../../common/errors.js';

/** How an error names where a handler argument came from. */
export const WHERE: Record<string, string> = { body: 'request body', query: 'query parameters', param: 'path parameter' };

/** An issue as the Standard Schema spec defines it (zod's among them). */
interface StandardIssue {
  readonly message: string;
  readonly path?: ReadonlyArray<PropertyKey | { readonly key: PropertyKey }> | undefined;
}

/**
 * Standard Schema issues as field issues with dotted paths: `spec.files.entries[0].path`.
 * `prefix` places them under a field (`params` for a job's params).
 */
export function schemaIssues(issues: readonly StandardIssue[], prefix?: string): FieldIssue[] {
  return issues.flatMap((i) => {
    const path = [...(prefix ? [prefix] : []), ...(i.path ?? []).map((s) => (typeof s === 'object' ? s.key : s))];
    // zod reports unknown keys once on the object; name each key instead, like any other field.
    const { code, keys } = i as { code?: unknown; keys?: unknown };
    if (code === 'unrecognized_keys' && Array.isArray(keys)) {
      return keys.map((k) => ({ path: formatPath([...path, String(k)]), message: 'is not a known field' }));
    }
    // A bad record key (a label key) carries the key schema's own message inside.
    const inner = (i as { issues?: unknown }).issues;
    if (code === 'invalid_key' && Array.isArray(inner) && inner.length) {
      return [{ path: formatPath(path), message: inner.map((x: { message?: unknown }) => String(x.message)).join('; ') }];
    }
    return [{ path: formatPath(path), message: i.message }];
  });
}

/**
 * Validates every handler argument declared with a schema (`@Body({ schema })`,
 * `@Query({ schema })`) at the edge and hands the parsed value (defaults applied) to the
 * handler. A failure is a ValidationFailed naming each field, so the one error filter renders it.
 */
@Injectable()
export class SchemaValidationPipe implements PipeTransform {
  async transform(value: unknown, meta: ArgumentMetadata): Promise<unknown> {
    const schema = meta.schema;
    if (!schema) return value;
    const where = WHERE[meta.type] ?? meta.type;
    if (meta.type === 'body' && value === undefined) {
      const issue = { path: '', message: 'a JSON body is required (send Content-Type: application/json)' };
      throw new ValidationFailed(`invalid ${where}: ${issue.message}`, [issue]);
    }
    const result = await schema['~standard'].validate(value);
    if (result.issues) {
      // `@Param('revision', { schema })` validates one value: name it in the path.
      const issues = schemaIssues(result.issues).map((i) => (meta.data ? { ...i, path: i.path ? `${meta.data}.${i.path}` : meta.data } : i));
      throw new ValidationFailed(`invalid ${where}: ${describeIssues(issues)}`, issues);
    }
    return result.value;
  }
}
