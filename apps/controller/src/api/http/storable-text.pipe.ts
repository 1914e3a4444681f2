import { type ArgumentMetadata, Injectable, type PipeTransform } from '@nestjs/common';
import { describeIssues, formatPath } from '@ibex/spec';
import { ValidationFailed } from '../../common/errors.js';
import { unstorableText } from '../../common/storable-text.js';
import { WHERE } from './schema-validation.pipe.js';

/**
 * Refuses strings (values and object keys, at any depth) that Postgres cannot store: a NUL
 * character or an unpaired surrogate, in a path parameter, a query parameter or the body.
 * Found by the REST fuzzer: both reached the database and came back as a 500 instead of a 400
 * naming the field.
 */
@Injectable()
export class StorableTextPipe implements PipeTransform {
  transform(value: unknown, meta: ArgumentMetadata): unknown {
    if (meta.type === 'custom') return value;
    const issues = unstorableText(value, meta.data ? [meta.data] : []).map((i) => ({ path: formatPath(i.path), message: i.message }));
    if (!issues.length) return value;
    throw new ValidationFailed(`invalid ${WHERE[meta.type] ?? meta.type}: ${describeIssues(issues)}`, issues);
  }
}
