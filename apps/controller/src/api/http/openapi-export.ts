import type { OpenAPIObject } from '@nestjs/swagger';
import { createApp } from '../../app.js';
import { loadConfig } from '../../config/config.js';
import { buildOpenApiDocument } from './openapi.js';

/**
 * The OpenAPI document without a running controller (for `npm run openapi`): the app is
 * created but never initialised or started, so nothing connects to Postgres or Redis; the
 * document comes from the controllers' metadata alone, the same as /api/docs-json serves.
 * The URLs point at closed ports so that nothing can touch a real database by accident.
 */
export async function buildOfflineOpenApiDocument(): Promise<OpenAPIObject> {
  const config = loadConfig({
    DATABASE_URL: 'postgresql://openapi@127.0.0.1:1/openapi',
    REDIS_URL: 'redis://127.0.0.1:1',
    IBEX_MIGRATE_ON_START: 'false',
    IBEX_LOG_LEVEL: 'error',
  });
  const app = await createApp(config);
  try {
    return buildOpenApiDocument(app, config);
  } finally {
    await app.close();
  }
}

/** Object keys sorted at every level (array order kept), so the file diffs only when the API does. */
export function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [k, sortKeys((value as Record<string, unknown>)[k])]),
    );
  }
  return value;
}

/** The text of docs/openapi.json: sorted keys, two-space indent, trailing newline. */
export function openApiFileText(doc: unknown): string {
  return `${JSON.stringify(sortKeys(doc), null, 2)}\n`;
}
