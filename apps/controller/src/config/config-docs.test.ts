import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { envSchema } from './config.js';

// apps/controller/dist/config -> the repository root (or IBEX_REPO as scripts/test.mjs sets it).
const repo = process.env['IBEX_REPO'] ?? fileURLToPath(new URL('../../../../', import.meta.url));

/** The controller table of docs/configuration.md: variable -> default cell. */
function documented(): Map<string, string> {
  const text = readFileSync(join(repo, 'docs', 'configuration.md'), 'utf8');
  const section = text.slice(text.indexOf('\n## Controller'), text.indexOf('\n## Agent'));
  assert.ok(section.length > 20, 'docs/configuration.md has a "## Controller" section before "## Agent"');
  const rows = new Map<string, string>();
  for (const line of section.split('\n')) {
    const m = /^\| `([A-Z0-9_]+)` \| ([^|]*) \|/.exec(line);
    if (m) rows.set(m[1]!, m[2]!.trim());
  }
  return rows;
}

describe('docs/configuration.md (controller)', () => {
  const variables = Object.keys(envSchema.shape);

  it('documents every environment variable the controller reads, and no other', () => {
    const docs = documented();
    const missing = variables.filter((v) => !docs.has(v));
    assert.deepEqual(missing, [], `add these to the Controller table of docs/configuration.md: ${missing.join(', ')}`);
    const unknown = [...docs.keys()].filter((v) => !variables.includes(v));
    assert.deepEqual(unknown, [], `docs/configuration.md documents variables config.ts does not read: ${unknown.join(', ')}`);
  });

  it('gives the default the schema applies', () => {
    const defaults = envSchema.parse({}) as Record<string, unknown>;
    const docs = documented();
    for (const v of variables) {
      const def = defaults[v];
      if (def === undefined) continue; // optional: the page explains what "unset" means
      assert.ok(docs.get(v)?.includes(`\`${String(def)}\``), `${v}: docs/configuration.md should give the default \`${String(def)}\`, not ${docs.get(v)}`);
    }
  });
});
