import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { expectStatus } from '../testing/api-fixtures.js';
import { startTestController } from '../testing/test-controller.js';
import { buildOfflineOpenApiDocument, openApiFileText, sortKeys } from './http/openapi-export.js';

// apps/controller/dist/api -> the repository root (or IBEX_REPO as scripts/test.mjs sets it).
const repo = process.env['IBEX_REPO'] ?? fileURLToPath(new URL('../../../../', import.meta.url));
const file = join(repo, 'docs', 'openapi.json');
const STALE = 'docs/openapi.json is stale: run `npm run openapi` and commit docs/openapi.json';

describe('docs/openapi.json', () => {
  it('is what `npm run openapi` writes from the current controller', async () => {
    const committed = readFileSync(file, 'utf8');
    const fresh = openApiFileText(await buildOfflineOpenApiDocument());
    assert.ok(committed === fresh, `${STALE}\n(first difference at character ${[...fresh].findIndex((ch, i) => ch !== committed[i])})`);
  });

  it('matches the document a running controller serves at /api/docs-json', async () => {
    // Proves that the offline build (no Postgres, no Redis) yields the real document.
    const c = await startTestController();
    try {
      const served = await expectStatus(await c.api('/api/docs-json', { token: null }), 200);
      assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), sortKeys(served), STALE);
    } finally {
      await c.close();
    }
  });

  it('ends with a newline and keeps its keys sorted', () => {
    const text = readFileSync(file, 'utf8');
    assert.ok(text.endsWith('}\n'));
    assert.equal(text, `${JSON.stringify(sortKeys(JSON.parse(text)), null, 2)}\n`);
  });
});
