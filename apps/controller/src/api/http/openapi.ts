import { applyDecorators, type INestApplication } from '@nestjs/common';
import { ApiBearerAuth, ApiResponse, DocumentBuilder, type OpenAPIObject, SwaggerModule } from '@nestjs/swagger';
import { z } from 'zod';
import type { Config } from '../../config/config.js';

export const errorResponseSchema = z
  .object({
    error: z.object({
      code: z.string().describe('Stable, machine-readable: validation_failed, unauthenticated, forbidden, not_found, conflict, ...'),
      message: z.string().describe('Names the thing, the problem and the next step.'),
      issues: z
        .array(z.object({ path: z.string().describe('Dotted field path, e.g. `spec.files.entries[0].path`'), message: z.string() }))
        .optional()
        .describe('One entry per invalid field (validation_failed only).'),
    }),
    requestId: z.string().describe('Also in the X-Request-Id response header; quote it when reporting a problem.'),
  })
  .meta({ id: 'ErrorResponse' });

const ERRORS = {
  400: 'Invalid input; `error.issues` names each field',
  401: 'Missing, unknown, revoked or expired API token',
  403: "The API token's role does not allow this",
  404: 'No such resource',
  409: 'Conflicts with the current state (see the message)',
  411: 'Content-Length missing (streamed uploads need it)',
  413: 'Request body larger than 2 MiB (artifact uploads: larger than IBEX_ARTIFACT_MAX_BYTES)',
  416: 'Range not satisfiable (`Content-Range: bytes */size` says the size)',
  503: 'Postgres or Redis is unavailable',
} as const;
export type ErrorStatus = keyof typeof ERRORS;

/** Documents error responses (all with the ErrorResponse body). */
export function ApiErrors(...statuses: ErrorStatus[]) {
  return applyDecorators(...statuses.map((status) => ApiResponse({ status, description: ERRORS[status], standardSchema: errorResponseSchema })));
}

/** A controller whose every route needs an API token. */
export function ApiTokenAuth() {
  return applyDecorators(ApiBearerAuth(), ApiErrors(401, 403));
}

export const DOCS_PATH = 'api/docs';

export function buildOpenApiDocument(app: INestApplication, config: Config): OpenAPIObject {
  const base = new DocumentBuilder()
    .setTitle('Ibex controller API')
    .setDescription(
      'Operator API of the Ibex fleet manager. Authenticate with `Authorization: Bearer ibx_...` (an API token). ' +
        'Roles: admin (everything), operator (everything but API tokens), viewer (GET only). ' +
        'Errors are `{ error: { code, message, issues? }, requestId }`. Lists are cursor-paginated: pass `nextCursor` back as `cursor`.',
    )
    .setVersion(config.version)
    .addBearerAuth({ type: 'http', scheme: 'bearer', bearerFormat: 'ibx_ + 40 characters', description: 'An Ibex API token' })
    .build();
  return SwaggerModule.createDocument(app, base);
}

/** Swagger UI at /api/docs, the document at /api/docs-json. Public: it describes, it reveals nothing. */
export function serveOpenApi(app: INestApplication, config: Config): void {
  let doc: OpenAPIObject | undefined;
  SwaggerModule.setup(DOCS_PATH, app, () => (doc ??= buildOpenApiDocument(app, config)), {
    jsonDocumentUrl: `${DOCS_PATH}-json`,
    yamlDocumentUrl: `${DOCS_PATH}-yaml`,
    swaggerOptions: { persistAuthorization: true },
  });
}
