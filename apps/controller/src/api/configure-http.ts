import type { INestApplication } from '@nestjs/common';
import type { NestExpressApplication } from '@nestjs/platform-express';
import helmet from 'helmet';
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
  express.use(requestIdMiddleware);
  express.use(httpMetricsMiddleware(app.get(MetricsService)));
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
