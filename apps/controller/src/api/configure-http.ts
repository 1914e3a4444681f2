import type { INestApplication } from '@nestjs/common';
import type { NestExpressApplication } from '@nestjs/platform-express';
import helmet from 'helmet';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Request } from 'express';
import { ARTIFACTS_PATH } from './artifacts/artifacts.controller.js';
import type { Config } from '../config/config.js';
import { httpMetricsMiddleware } from '../metrics/http-metrics.middleware.js';
import { MetricsService } from '../metrics/metrics.service.js';
import { ApiErrorFilter, BODY_LIMIT_BYTES } from './http/api-error.filter.js';
import { serveOpenApi } from './http/openapi.js';
import { requestIdMiddleware } from './http/request-context.js';
import { SchemaValidationPipe } from './http/schema-validation.pipe.js';
import { StorableTextPipe } from './http/storable-text.pipe.js';
import { serveDashboard } from '../ui/serve-dashboard.js';

/**
 * HTTP-wide setup: request ids, JSON body limit, the one error filter, schema validation of
 * every declared body/query, the OpenAPI document, metrics of every request, and the dashboard.
 * Security headers (helmet) on every answer. CORS stays off unless IBEX_CORS_ORIGINS lists
 * origins: the API is for operators' tools and scripts, not for pages on other origins.
 */
export function configureHttp(app: INestApplication, config: Config): void {
  const express = app as NestExpressApplication;
  express.disable('x-powered-by');
  // Behind a load balancer the client's address is in X-Forwarded-For (the rate limits count per address).
  if (config.httpTrustProxy !== undefined) express.set('trust proxy', config.httpTrustProxy);
  express.use(helmet({ contentSecurityPolicy: { directives: CSP } }));
  if (config.corsOrigins.length) {
    express.enableCors({ origin: config.corsOrigins, methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'], allowedHeaders: ['authorization', 'content-type', 'x-request-id'], maxAge: 600 });
  }
  // No deadline for a whole request (Node's default is 5 minutes): a large artifact upload on a
  // slow link takes as long as it takes. An upload has an idle timeout instead
  // (artifacts.controller.ts), and headers must still arrive within headersTimeout.
  const server = app.getHttpServer() as Server;
  server.requestTimeout = 0;
  refuseLargeUploadsBeforeContinue(server, config);
  express.use(requestIdMiddleware);
  express.use(httpMetricsMiddleware(app.get(MetricsService)));
  // An artifact upload is a raw stream the service reads itself: never let a parser consume it,
  // whatever its Content-Type (body-parser skips a request already marked as parsed).
  express.use(`/${ARTIFACTS_PATH}`, (req: Request & { _body?: boolean }, _res: unknown, next: () => void) => {
    if (req.method === 'POST') req._body = true;
    next();
  });
  // JSON only (app.ts turns Nest's default parsers off): a form-encoded body is no body.
  express.useBodyParser('json', { limit: BODY_LIMIT_BYTES });
  app.useGlobalFilters(new ApiErrorFilter());
  app.useGlobalPipes(new StorableTextPipe(), new SchemaValidationPipe());
  serveOpenApi(app, config);
  serveDashboard(app, config);
}

/**
 * helmet's default policy, plus what the API docs page needs (its script and styles come from
 * the controller itself; Swagger UI sets inline styles and loads its images as data: URLs).
 */
const CSP = {
  defaultSrc: ["'self'"],
  scriptSrc: ["'self'"],
  styleSrc: ["'self'", "'unsafe-inline'"],
  imgSrc: ["'self'", 'data:'],
  connectSrc: ["'self'"],
  objectSrc: ["'none'"],
  frameAncestors: ["'none'"],
  baseUri: ["'self'"],
  formAction: ["'self'"],
};

/**
 * A client that sends `Expect: 100-continue` (curl does for large bodies) waits for the go-ahead:
 * an artifact upload over the limit is answered 413 there, before a byte of the body is sent.
 * Everything else gets its 100 Continue and goes on to the app as usual.
 */
function refuseLargeUploadsBeforeContinue(server: Server, config: Config): void {
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    const size = Number(req.headers['content-length'] ?? NaN);
    if (req.method === 'POST' && (req.url ?? '').split('?')[0] === `/${ARTIFACTS_PATH}` && size > config.artifacts.maxBytes) {
      const message = `the upload is ${size} bytes, over the limit of ${config.artifacts.maxBytes} bytes (IBEX_ARTIFACT_MAX_BYTES); raise the limit or upload a smaller file`;
      res.writeHead(413, { 'content-type': 'application/json; charset=utf-8', connection: 'close' });
      res.end(JSON.stringify({ error: { code: 'payload_too_large', message }, requestId: 'none' }));
      return;
    }
    res.writeContinue();
    server.emit('request', req, res);
  });
}
