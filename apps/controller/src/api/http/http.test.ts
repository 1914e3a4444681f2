import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { BadRequestException } from '@nestjs/common';
import { z } from 'zod';
import { Conflict, NotFound, ValidationFailed } from '../../common/errors.js';
import { expectError, expectStatus } from '../../testing/api-fixtures.js';
import { startTestController, type TestController } from '../../testing/test-controller.js';
import { mapError } from './api-error.filter.js';
import { decodeCursor, encodeCursor } from './pagination.js';
import { schemaIssues } from './schema-validation.pipe.js';

const req = { method: 'GET', originalUrl: '/x?y=1' };

describe('error mapping', () => {
  it('maps domain errors to their status and code, with issues for validation', () => {
    assert.deepEqual(mapError(new NotFound('device "x" not found'), req), { status: 404, code: 'not_found', message: 'device "x" not found' });
    assert.equal(mapError(new Conflict('taken'), req).status, 409);
    const issues = [{ path: 'spec.files', message: 'bad' }];
    assert.deepEqual(mapError(new ValidationFailed('invalid', issues), req), { status: 400, code: 'validation_failed', message: 'invalid', issues });
  });

  it('never passes an unexpected error message or stack to the client', () => {
    const m = mapError(new Error('password=hunter2 at /srv/secret.ts:12'), req);
    assert.equal(m.status, 500);
    assert.equal(m.code, 'internal_error');
    assert.doesNotMatch(m.message, /hunter2|secret\.ts/);
    assert.equal(m.unexpected, true);
  });

  it('maps a refused database or Redis connection to 503', () => {
    const err = new Error('query failed', { cause: Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }) });
    assert.equal(mapError(err, req).status, 503);
  });

  it('keeps the message of a Nest 4xx exception', () => {
    assert.deepEqual(mapError(new BadRequestException('nope'), req), { status: 400, code: 'bad_request', message: 'nope' });
  });
});

describe('schema issues', () => {
  it('name each field with a dotted path, unknown keys each by name', () => {
    const schema = z.object({ a: z.object({ b: z.array(z.string()) }).strict() }).strict();
    const r = schema.safeParse({ a: { b: ['x', 1], c: 1 }, d: 1 });
    assert.ok(!r.success);
    assert.deepEqual(
      schemaIssues(r.error.issues).map((i) => i.path).sort(),
      ['a.b[1]', 'a.c', 'd'],
    );
  });

  it('show the message of a failing record key instead of a generic one', () => {
    const r = z.record(z.string().regex(/^[a-z]+$/, 'key must be lowercase'), z.string()).safeParse({ Bad: 'x' });
    assert.ok(!r.success);
    assert.deepEqual(schemaIssues(r.error.issues), [{ path: 'Bad', message: 'key must be lowercase' }]);
  });
});

describe('cursors', () => {
  it('round-trip, and a foreign or garbled cursor is a 400 naming `cursor`', () => {
    const schema = z.object({ name: z.string() });
    assert.deepEqual(decodeCursor(schema, encodeCursor({ name: 'r1' })), { name: 'r1' });
    for (const bad of ['!!!', encodeCursor({ id: 5 })]) {
      assert.throws(() => decodeCursor(schema, bad), (e: unknown) => e instanceof ValidationFailed && e.issues[0]?.path === 'cursor');
    }
  });
});

describe('HTTP edge', () => {
  let c: TestController;
  before(async () => (c = await startTestController()));
  after(() => c?.close());

  it('an unknown route is a 404 in the error shape', async () => {
    const body = await expectError(await c.api('/api/v1/no-such-thing'), 404, 'not_found');
    assert.match(body.error.message, /GET \/api\/v1\/no-such-thing/);
  });

  it('a malformed JSON body is a 400 saying so', async () => {
    const res = await c.api('/api/v1/api-tokens', { method: 'POST', body: '{"name": ', headers: { 'content-type': 'application/json' } });
    const body = await expectError(res, 400, 'invalid_json');
    assert.match(body.error.message, /^request body is not valid JSON/);
  });

  it('a body over 2 MiB is a 413; one just under is parsed', async () => {
    await expectError(await c.api('/api/v1/api-tokens', { method: 'POST', json: { name: 'x'.repeat(2 * 1024 * 1024) } }), 413, 'payload_too_large');
    // Under the limit the body reaches validation (the name is too long, not the body).
    const body = await expectError(await c.api('/api/v1/api-tokens', { method: 'POST', json: { name: 'x'.repeat(1024 * 1024), role: 'viewer' } }), 400, 'validation_failed');
    assert.equal(body.error.issues?.[0]?.path, 'name');
  });

  it('a missing or form-encoded body is a 400 asking for JSON', async () => {
    const body = await expectError(await c.api('/api/v1/api-tokens', { method: 'POST' }), 400, 'validation_failed');
    assert.match(body.error.message, /JSON body is required/);
    const form = await c.api('/api/v1/api-tokens', { method: 'POST', body: 'name=x&role=admin', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    await expectError(form, 400, 'validation_failed');
    assert.equal(await c.prisma.apiToken.count({ where: { name: 'x' } }), 0);
  });

  it('an unknown query parameter is refused by name', async () => {
    const body = await expectError(await c.api('/api/v1/devices?selecter=a'), 400, 'validation_failed');
    assert.deepEqual(body.error.issues, [{ path: 'selecter', message: 'is not a known field' }]);
  });

  it('echoes a sane X-Request-Id and replaces an unsafe one', async () => {
    const mine = await c.api('/healthz', { headers: { 'x-request-id': 'trace-42.a' } });
    assert.equal(mine.headers.get('x-request-id'), 'trace-42.a');
    const unsafe = await c.api('/healthz', { headers: { 'x-request-id': 'a b\tc' } });
    assert.match(unsafe.headers.get('x-request-id') ?? '', /^[0-9a-f-]{36}$/);
    const body = await expectError(await c.api('/api/v1/nope', { headers: { 'x-request-id': 'req-7' } }), 404, 'not_found');
    assert.equal(body.requestId, 'req-7');
  });

  it('sends no CORS headers and no X-Powered-By', async () => {
    const res = await c.api('/api/v1/devices', { headers: { origin: 'https://evil.example' } });
    await expectStatus(res, 200);
    assert.equal(res.headers.get('access-control-allow-origin'), null);
    assert.equal(res.headers.get('x-powered-by'), null);
  });
});
