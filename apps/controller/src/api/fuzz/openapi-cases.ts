import fc from 'fast-check';
import { deepJson, fuzzJson, fuzzString } from '../../testing/fuzz-values.js';

/** The part of a JSON Schema (as docs/openapi.json has it) the fuzzer reads. */
export interface Schema {
  type?: string;
  $ref?: string;
  allOf?: Schema[];
  enum?: unknown[];
  pattern?: string;
  format?: string;
  nullable?: boolean;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  maxItems?: number;
  items?: Schema;
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: boolean | Schema;
  example?: unknown;
}

interface Parameter {
  name: string;
  in: 'path' | 'query' | 'header';
  required?: boolean;
  schema: Schema;
}

export interface OpenApiDoc {
  paths: Record<string, Record<string, { operationId: string; parameters?: Parameter[]; requestBody?: { content: Record<string, { schema: Schema }> }; security?: unknown[] }>>;
  components: { schemas: Record<string, Schema> };
}

export interface Operation {
  id: string;
  method: string;
  /** As in the document: `/api/v1/devices/{device}`. */
  template: string;
  params: Parameter[];
  body?: Schema;
  /** The body is not JSON (an octet stream): not fuzzed as JSON. */
  rawBody?: boolean;
  secured: boolean;
  mutating: boolean;
}

/** Path parameter values of things that exist (seeded by the test) and a valid body per operation. */
export interface Fixtures {
  pathValues: Record<string, string>;
  validBodies: Record<string, unknown>;
  /** Operations that destroy what the others need: only ever called with ids that do not exist. */
  destructive: Set<string>;
  /** For the schemas of nested fields ($ref). */
  doc: OpenApiDoc;
}

/** One fuzzed request and what it must get. */
export interface FuzzCase {
  what: string;
  path: string;
  query: string;
  headers: Record<string, string>;
  body?: string;
  /** Must be refused (4xx). Otherwise 2xx is allowed too, never 5xx. */
  mustRefuse: boolean;
  /** A refusal must name this field (an issue whose path is it or under it). */
  field?: string;
  /** A refusal must have this status. */
  status?: number;
}

const MUTATING = new Set(['post', 'put', 'patch', 'delete']);

export function operations(doc: OpenApiDoc): Operation[] {
  return Object.entries(doc.paths).flatMap(([template, ops]) =>
    Object.entries(ops).map(([method, op]) => ({
      id: op.operationId,
      method: method.toUpperCase(),
      template,
      params: op.parameters ?? [],
      // A JSON body is fuzzed by its schema; a raw one (an artifact upload's octet stream) only by its path, query and headers.
      ...(op.requestBody?.content['application/json'] ? { body: resolve(doc, op.requestBody.content['application/json'].schema) } : {}),
      ...(op.requestBody && !op.requestBody.content['application/json'] ? { rawBody: true } : {}),
      secured: !!op.security?.length,
      mutating: MUTATING.has(method),
    })),
  );
}

/** Follows $ref and single-element allOf to the schema itself. */
export function resolve(doc: OpenApiDoc, s: Schema): Schema {
  if (s.$ref) return resolve(doc, doc.components.schemas[s.$ref.replace('#/components/schemas/', '')]!);
  if (s.allOf?.length === 1) return { ...resolve(doc, s.allOf[0]!), ...(s.nullable ? { nullable: true } : {}) };
  return s;
}

/** Whether a JSON value has the schema's type (constraints aside). */
function hasType(v: unknown, s: Schema): boolean {
  if (v === null) return !!s.nullable;
  switch (s.type) {
    case 'string':
      return typeof v === 'string';
    case 'integer':
      return Number.isInteger(v);
    case 'number':
      return typeof v === 'number';
    case 'boolean':
      return typeof v === 'boolean';
    case 'array':
      return Array.isArray(v);
    case 'object':
      return typeof v === 'object' && !Array.isArray(v);
    default:
      return s.properties ? typeof v === 'object' && !Array.isArray(v) : true;
  }
}

/** A value of a wrong type for `s` (undefined: every JSON type fits it). */
function wrongType(s: Schema): fc.Arbitrary<unknown> | undefined {
  if (!s.type && !s.properties) return undefined;
  const candidates: unknown[] = [null, true, 0, -1.5, 'text', [], {}, [1, 'a'], { x: 1 }, 1e308];
  const wrong = candidates.filter((v) => !hasType(v, s));
  return wrong.length ? fc.constantFrom(...wrong) : undefined;
}

/** A value breaking a constraint of `s` other than the type (out of range, not in the enum, too long...). */
function breaksConstraint(s: Schema): fc.Arbitrary<unknown> | undefined {
  if (s.enum) return fuzzString.filter((x) => !s.enum!.includes(x));
  if (s.type === 'integer') {
    const out: number[] = [0.5];
    if (s.minimum !== undefined) out.push(s.minimum - 1, -1e15);
    if (s.maximum !== undefined) out.push(s.maximum + 1, 1e300);
    return fc.constantFrom(...out);
  }
  if (s.type === 'string') {
    const opts: fc.Arbitrary<string>[] = [];
    if (s.maxLength !== undefined) opts.push(fc.integer({ min: s.maxLength + 1, max: s.maxLength + 2000 }).map((n) => 'x'.repeat(n)));
    if (s.minLength) opts.push(fc.constant(''));
    if (s.pattern) {
      const re = new RegExp(s.pattern, 'u');
      opts.push(fuzzString.filter((x) => !re.test(x)));
    }
    return opts.length ? fc.oneof(...opts) : undefined;
  }
  if (s.type === 'array' && s.maxItems !== undefined) return fc.constant(Array.from({ length: s.maxItems + 1 }, () => 'x'));
  return undefined;
}

const withoutKey = (o: Record<string, unknown>, k: string) => Object.fromEntries(Object.entries(o).filter(([key]) => key !== k));

/** A field below the top level of a valid body: its dotted path (as error issues spell it) and schema. */
interface NestedField {
  keys: Array<string | number>;
  field: string;
  schema: Schema;
}

/** Every field the valid body has below its top level, with its schema ($ref resolved). */
function nestedFields(doc: OpenApiDoc, s: Schema, v: unknown, keys: Array<string | number> = []): NestedField[] {
  const here = resolve(doc, s);
  const out: NestedField[] = keys.length > 1 ? [{ keys, field: keys.reduce<string>((f, k) => (typeof k === 'number' ? `${f}[${k}]` : f ? `${f}.${k}` : k), ''), schema: here }] : [];
  if (Array.isArray(v) && here.items) v.forEach((x, i) => out.push(...nestedFields(doc, here.items!, x, [...keys, i])));
  else if (v && typeof v === 'object' && here.properties) {
    for (const [k, x] of Object.entries(v)) if (here.properties[k]) out.push(...nestedFields(doc, here.properties[k], x, [...keys, k]));
  }
  return out;
}

function withValue(v: unknown, keys: Array<string | number>, x: unknown): unknown {
  if (!keys.length) return x;
  const [k, ...rest] = keys;
  const copy = (Array.isArray(v) ? [...v] : { ...(v as object) }) as Record<string | number, unknown>;
  copy[k!] = withValue(copy[k!], rest, x);
  return copy;
}

/** Every way the body can be wrong, each with what the answer must be. */
function bodyCases(doc: OpenApiDoc, s: Schema, valid: Record<string, unknown>): fc.Arbitrary<Omit<FuzzCase, 'path' | 'query'>>[] {
  const json = (v: unknown) => JSON.stringify(v);
  const h = { 'content-type': 'application/json' };
  const props = Object.entries(s.properties ?? {});
  const cases: fc.Arbitrary<Omit<FuzzCase, 'path' | 'query'>>[] = [
    fc
      .oneof(fc.constantFrom('{', '{"a":', "{'a':1}", '[1,2', 'nul', '{"name":"x",}', '\u0000', '{"a":1}{"b":2}', '{"a":"\\ud800"'), fuzzString.filter((t) => t.trim() !== '' && !isJson(t)))
      .map((body) => ({ what: 'malformed JSON', headers: h, body, mustRefuse: true, status: 400 })),
    fc.constantFrom(null, [], [valid], 1, 'text', true).map((v) => ({ what: `body ${json(v)}`, headers: h, body: json(v), mustRefuse: true, status: 400 })),
    fc.constantFrom('text/plain', 'application/x-www-form-urlencoded', 'application/xml').map((ct) => ({ what: `content-type ${ct}`, headers: { 'content-type': ct }, body: json(valid), mustRefuse: true })),
    fc.constantFrom(deepJson(5000, 'array'), deepJson(5000, 'object')).map((body) => ({ what: 'body nested 5000 deep', headers: h, body, mustRefuse: true, status: 400 })),
    fc.constant({ what: 'body over the 2 MiB limit', headers: h, body: json({ ...valid, pad: 'x'.repeat(3 * 1024 * 1024) }), mustRefuse: true, status: 413 }),
  ];
  if (s.additionalProperties === false) {
    const known = new Set(props.map(([k]) => k));
    cases.push(
      fc
        .tuple(fuzzString.filter((k) => !known.has(k) && k.length > 0), fuzzJson)
        .map(([k, v]) => ({ what: `extra field ${json(k).slice(0, 60)}`, headers: h, body: `{${json(k)}:${json(v)},${json(valid).slice(1)}`, mustRefuse: true, status: 400, field: k })),
    );
  }
  for (const k of s.required ?? []) cases.push(fc.constant({ what: `missing ${k}`, headers: h, body: json(withoutKey(valid, k)), mustRefuse: true, status: 400, field: k }));
  for (const [k, raw] of props) {
    const ps = raw;
    const wt = wrongType(ps);
    if (wt) cases.push(wt.map((v) => ({ what: `${k} of the wrong type ${json(v)}`, headers: h, body: json({ ...valid, [k]: v }), mustRefuse: true, status: 400, field: k })));
    const bc = breaksConstraint(ps);
    if (bc) cases.push(bc.map((v) => ({ what: `${k} out of bounds ${json(v).slice(0, 60)}`, headers: h, body: json({ ...valid, [k]: v }), mustRefuse: true, status: 400, field: k })));
    if (ps.type === 'string' && !ps.enum && !ps.pattern) {
      // Unicode and traversal in a free-text field: allowed or refused, never a crash.
      cases.push(fuzzString.map((v) => ({ what: `${k} = ${json(v).slice(0, 60)}`, headers: h, body: json({ ...valid, [k]: v }), mustRefuse: false, field: k })));
    }
    if (ps.type === 'object' && ps.additionalProperties !== false) {
      // A map (labels, params): odd keys and values, many of them, or nested deep.
      cases.push(
        fc.dictionary(fuzzString, fuzzJson, { minKeys: 1, maxKeys: 5 }).map((m) => ({ what: `${k} = odd map`, headers: h, body: json({ ...valid, [k]: m }), mustRefuse: false, field: k })),
        fc.constant({ what: `${k} with 20000 keys`, headers: h, body: json({ ...valid, [k]: Object.fromEntries(Array.from({ length: 20000 }, (_, i) => [`k${i}`, 'v'])) }), mustRefuse: false, field: k }),
        fc.constant({ what: `${k} nested 3000 deep`, headers: h, body: `${json({ ...valid, [k]: 0 }).replace(/0}$/, '')}${deepJson(3000, 'object')}}`, mustRefuse: false, field: k }),
      );
    }
    if (ps.type === 'array') {
      cases.push(fc.array(fuzzJson, { minLength: 1, maxLength: 6 }).map((a) => ({ what: `${k} = odd array`, headers: h, body: json({ ...valid, [k]: a }), mustRefuse: false, field: k })));
    }
  }
  for (const n of nestedFields(doc, s, valid)) {
    const wt = wrongType(n.schema);
    if (wt) cases.push(wt.map((v) => ({ what: `${n.field} of the wrong type ${json(v)}`, headers: h, body: json(withValue(valid, n.keys, v)), mustRefuse: true, status: 400, field: n.field })));
    const bc = breaksConstraint(n.schema);
    if (bc) cases.push(bc.map((v) => ({ what: `${n.field} out of bounds ${json(v).slice(0, 60)}`, headers: h, body: json(withValue(valid, n.keys, v)), mustRefuse: true, status: 400, field: n.field })));
    if (n.schema.type === 'string' && !n.schema.enum) cases.push(fuzzString.map((v) => ({ what: `${n.field} = ${json(v).slice(0, 60)}`, headers: h, body: json(withValue(valid, n.keys, v)), mustRefuse: false, field: n.field })));
  }
  return cases;
}

function isJson(t: string): boolean {
  try {
    JSON.parse(t);
    return true;
  } catch {
    return false;
  }
}

/** Query values that break the parameter's schema, each a raw `name=value...` string. */
function badQuery(p: Parameter): fc.Arbitrary<string>[] {
  const n = p.name;
  const enc = pct;
  const out: fc.Arbitrary<string>[] = [fc.constantFrom(`${n}=1&${n}=2`, `${n}[x]=1`, `${n}[]=1&${n}[]=2`).map((q) => q)];
  const s = p.schema;
  if (s.type === 'integer') {
    // Numbers as JavaScript reads them (z.coerce): ' 1', '0x10' and '' (0) are taken as numbers, by design.
    const bad = ['abc', '1.5', '-1', '0x10', '1e400', '', 'NaN', 'Infinity', '99999999999999999999', '1,2'].filter((v) => {
      const x = Number(v);
      return !(Number.isSafeInteger(x) && (s.minimum === undefined || x >= s.minimum) && (s.maximum === undefined || x <= s.maximum));
    });
    out.push(fc.constantFrom(...bad).map((v) => `${n}=${enc(v)}`));
  }
  const bc = s.type === 'string' ? breaksConstraint(s) : undefined;
  if (bc) out.push(bc.map((v) => `${n}=${enc(String(v))}`));
  return out;
}

/** Query values anything may answer (free text: `selector`, `status`): never a crash. */
function oddQuery(p: Parameter): fc.Arbitrary<string> {
  return fuzzString.map((v) => `${p.name}=${pct(v)}`);
}

/** A path segment that names nothing that exists (encoded, or raw broken percent-encoding). */
const badSegment: fc.Arbitrary<string> = fc.oneof(
  fuzzString.filter((v) => v !== '' && v !== '.').map(pct),
  fc.constantFrom('%', '%ff', '%E0%A4%A', '%00', '%2e%2e%2f%2e%2e%2fetc%2fpasswd', '..%2F..', '%C0%AE%C0%AE', '%ED%A0%80', String(Number.MAX_SAFE_INTEGER + 2), '-1', '0', '00000000-0000-0000-0000-000000000000'),
  fc.uuid(),
);

/** Every kind of bad request for one operation, as an arbitrary of cases. */
export function fuzzCases(op: Operation, fx: Fixtures): fc.Arbitrary<FuzzCase> {
  const pathParams = op.params.filter((p) => p.in === 'path');
  const queryParams = op.params.filter((p) => p.in === 'query');
  const fill = (over: Record<string, string> = {}) => op.template.replace(/\{(\w+)\}/g, (_, name: string) => over[name] ?? encodeURIComponent(fx.pathValues[`${op.id}.${name}`] ?? fx.pathValues[name] ?? 'missing'));
  const validBody = fx.validBodies[op.id] as Record<string, unknown> | undefined;
  const base = (c: Partial<FuzzCase> & Pick<FuzzCase, 'what' | 'mustRefuse'>): FuzzCase => ({
    path: fill(),
    query: '',
    headers: validBody !== undefined ? { 'content-type': 'application/json' } : {},
    ...(validBody !== undefined ? { body: JSON.stringify(validBody) } : {}),
    ...c,
  });
  const kinds: fc.Arbitrary<FuzzCase>[] = [];
  for (const p of pathParams) {
    kinds.push(badSegment.map((seg) => base({ what: `path ${p.name} = ${decodeSafe(seg).slice(0, 60)}`, path: fill({ [p.name]: seg }), mustRefuse: true })));
  }
  if (!fx.destructive.has(op.id)) {
    for (const p of queryParams) {
      for (const q of badQuery(p)) kinds.push(q.map((query) => base({ what: `query ${query.slice(0, 80)}`, query, mustRefuse: true, status: 400, field: p.name })));
      if (p.schema.type === 'string' && !p.schema.pattern && !p.schema.enum && p.schema.maxLength === undefined) kinds.push(oddQuery(p).map((query) => base({ what: `query ${query.slice(0, 80)}`, query, mustRefuse: false })));
    }
    for (const p of op.params.filter((x) => x.in === 'header')) {
      // Header values fetch can put on the wire (Latin-1, no CR/LF/NUL); anything else is skipped by the sender.
      kinds.push(fuzzString.map((v) => base({ what: `header ${p.name}: ${JSON.stringify(v).slice(0, 60)}`, headers: { ...base({ what: '', mustRefuse: false }).headers, [p.name.toLowerCase()]: v }, mustRefuse: false })));
    }
    kinds.push(fc.tuple(fuzzString, fuzzString).map(([k, v]) => base({ what: 'unknown query parameter', query: `${pct(k || 'x')}=${pct(v)}`, mustRefuse: false })));
    if (op.body && validBody !== undefined) {
      for (const c of bodyCases(fx.doc, op.body, validBody as Record<string, unknown>)) kinds.push(c.map((x) => base({ ...x, headers: x.headers })));
    }
  }
  if (op.secured) {
    kinds.push(
      fc.oneof(fc.constant(''), fc.constant('Bearer '), fuzzString.map((t) => `Bearer ${t.replace(/[\r\n\0]/g, '')}`), fc.constantFrom('Basic YTpi', `Bearer ${'x'.repeat(10000)}`, 'bearer', 'Bearer ibx_'))
        .map((authorization) => base({ what: `authorization "${authorization.slice(0, 40)}"`, headers: { ...base({ what: '', mustRefuse: true }).headers, authorization }, mustRefuse: true, status: 401 })),
    );
  }
  return fc.oneof(...kinds);
}

/** Percent-encodes a string; an unpaired surrogate (which encodeURIComponent refuses) becomes U+FFFD. */
function pct(s: string): string {
  return encodeURIComponent(s.toWellFormed());
}

function decodeSafe(seg: string): string {
  try {
    return decodeURIComponent(seg);
  } catch {
    return seg;
  }
}
