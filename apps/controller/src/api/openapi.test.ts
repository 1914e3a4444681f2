import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RequestMethod } from '@nestjs/common';
import { METHOD_METADATA, PATH_METADATA, ROUTE_ARGS_METADATA } from '@nestjs/common/constants.js';
import { RouteParamtypes } from '@nestjs/common/enums/route-paramtypes.enum.js';
import { expectStatus } from '../testing/api-fixtures.js';
import { startTestController, type TestController } from '../testing/test-controller.js';
import { apiControllers } from './api.module.js';
import { rolloutControllers } from '../rollouts/rollouts.module.js';
import { Public } from './auth/auth.decorators.js';
import { MetricsController } from '../metrics/metrics.controller.js';

interface Route {
  method: string;
  path: string;
  isPublic: boolean;
  body: boolean;
  queryKeys: string[];
}

/** Every route the controllers declare, read from Nest's own metadata (not from the document). */
function declaredRoutes(): Route[] {
  const routes: Route[] = [];
  for (const ctrl of [...apiControllers, ...rolloutControllers, MetricsController]) {
    const base = String(Reflect.getMetadata(PATH_METADATA, ctrl) ?? '');
    const args: Record<string, Record<string, { schema?: { shape?: Record<string, unknown> } }>> = {};
    for (const name of Object.getOwnPropertyNames(ctrl.prototype)) {
      const handler = (ctrl.prototype as unknown as Record<string, unknown>)[name];
      if (typeof handler !== 'function' || name === 'constructor') continue;
      const method = Reflect.getMetadata(METHOD_METADATA, handler) as RequestMethod | undefined;
      if (method === undefined) continue;
      args[name] = Reflect.getMetadata(ROUTE_ARGS_METADATA, ctrl, name) ?? {};
      const params = Object.entries(args[name]!);
      const ofType = (t: RouteParamtypes) => params.filter(([key, p]) => Number(key.split(':')[0]) === t && p.schema).map(([, p]) => p);
      const path = `/${[base, String(Reflect.getMetadata(PATH_METADATA, handler) ?? '')].filter((p) => p && p !== '/').join('/')}`.replace(/:(\w+)/g, '{$1}');
      routes.push({
        method: RequestMethod[method].toLowerCase(),
        path,
        isPublic: Boolean(Reflect.getMetadata(Public.KEY, handler) ?? Reflect.getMetadata(Public.KEY, ctrl)),
        body: ofType(RouteParamtypes.BODY).length > 0,
        queryKeys: ofType(RouteParamtypes.QUERY).flatMap((p) => Object.keys(p.schema?.shape ?? {})),
      });
    }
  }
  return routes;
}

describe('OpenAPI document', () => {
  let c: TestController;
  let doc: any;
  before(async () => {
    c = await startTestController();
    doc = await expectStatus(await c.api('/api/docs-json', { token: null }), 200);
  });
  after(async () => {
    await c?.close();
  });

  it('is served as Swagger UI at /api/docs', async () => {
    const res = await c.api('/api/docs', { token: null });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/html/);
    assert.match(await res.text(), /swagger/i);
  });

  it('documents every route, and only those', () => {
    const routes = declaredRoutes();
    assert.ok(routes.length >= 25, `found ${routes.length} routes`);
    const documented = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m} ${path}`));
    assert.deepEqual(documented.sort(), routes.map((r) => `${r.method} ${r.path}`).sort());
  });

  it('documents bearer auth and 401/403 on every non-public route, a success response on all', () => {
    for (const r of declaredRoutes()) {
      const op = doc.paths[r.path][r.method];
      const where = `${r.method.toUpperCase()} ${r.path}`;
      assert.ok(Object.keys(op.responses).some((s) => /^2\d\d$/.test(s)), `${where}: a 2xx response`);
      if (r.isPublic) {
        assert.equal(op.security, undefined, `${where} is public`);
        continue;
      }
      assert.deepEqual(op.security, [{ bearer: [] }], `${where}: bearer auth`);
      for (const status of ['401', '403']) {
        assert.equal(op.responses[status]?.content?.['application/json']?.schema?.$ref, '#/components/schemas/ErrorResponse', `${where}: ${status}`);
      }
    }
    assert.equal(doc.components.securitySchemes.bearer.scheme, 'bearer');
  });

  it('documents each request body and query schema the routes validate with', () => {
    const schemas = doc.components.schemas as Record<string, { properties?: Record<string, unknown> }>;
    for (const r of declaredRoutes()) {
      const op = doc.paths[r.path][r.method];
      const where = `${r.method.toUpperCase()} ${r.path}`;
      if (r.body) {
        const ref: string | undefined = op.requestBody?.content?.['application/json']?.schema?.$ref;
        assert.ok(ref, `${where}: request body schema`);
        const schema = schemas[ref.replace('#/components/schemas/', '')];
        assert.ok(schema?.properties && Object.keys(schema.properties).length > 0, `${where}: ${ref} has properties`);
        assert.ok(op.responses['400'], `${where}: 400 for a bad body`);
      } else if (op.requestBody?.content?.['application/octet-stream']) {
        // A streamed upload (artifacts): the raw body is the file, documented as binary.
        assert.equal(op.requestBody.content['application/octet-stream'].schema?.format, 'binary', `${where}: binary body`);
      } else {
        assert.equal(op.requestBody, undefined, `${where} takes no body`);
      }
      const query = (op.parameters ?? []).filter((p: { in: string }) => p.in === 'query').map((p: { name: string }) => p.name);
      assert.deepEqual(query.sort(), [...r.queryKeys].sort(), `${where}: query parameters`);
      if (r.queryKeys.length) assert.ok(op.responses['400'], `${where}: 400 for a bad query`);
    }
  });

  it('describes the desired-state spec with the shared schema', () => {
    const put = doc.components.schemas.PutDesiredState;
    // A described $ref is wrapped in allOf (OpenAPI 3.0 ignores siblings of $ref).
    const spec = put.properties.spec;
    assert.equal(spec.$ref ?? spec.allOf?.[0]?.$ref, '#/components/schemas/DesiredStateSpecInput');
    assert.ok(doc.components.schemas.DesiredStateSpecInput.properties.files);
  });
});
