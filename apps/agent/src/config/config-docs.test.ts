import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { loadConfig, settingKeys, settingNames, type SettingKey } from './config.js';

// apps/agent/dist/config -> the repository root (or IBEX_REPO as scripts/test.mjs sets it).
const repo = process.env['IBEX_REPO'] ?? fileURLToPath(new URL('../../../../', import.meta.url));

interface Row {
  flag: string;
  env: string;
  def: string;
}

/** The agent table of docs/configuration.md: config key -> flag, environment, default cells. */
function documented(): Map<string, Row> {
  const text = readFileSync(join(repo, 'docs', 'configuration.md'), 'utf8');
  const start = text.indexOf('\n## Agent');
  assert.ok(start >= 0, 'docs/configuration.md has an "## Agent" section');
  const rows = new Map<string, Row>();
  for (const line of text.slice(start).split('\n')) {
    const m = /^\| `([a-zA-Z]+)` \| ([^|]*) \| ([^|]*) \| ([^|]*) \|/.exec(line);
    if (m) rows.set(m[1]!, { flag: m[2]!, env: m[3]!, def: m[4]! });
  }
  return rows;
}

describe('docs/configuration.md (agent)', () => {
  it('documents every setting with its flag and environment variable, and no other', () => {
    const docs = documented();
    const missing = settingKeys.filter((k) => !docs.has(k));
    assert.deepEqual(missing, [], `add these to the Agent table of docs/configuration.md: ${missing.join(', ')}`);
    const unknown = [...docs.keys()].filter((k) => !(settingKeys as string[]).includes(k));
    assert.deepEqual(unknown, [], `docs/configuration.md documents agent settings config.ts does not have: ${unknown.join(', ')}`);
    for (const k of settingKeys) {
      const row = docs.get(k)!;
      assert.ok(row.flag.includes(`\`--${settingNames[k].flag}\``), `${k}: flag --${settingNames[k].flag} in docs/configuration.md`);
      assert.ok(row.env.includes(`\`${settingNames[k].env}\``), `${k}: variable ${settingNames[k].env} in docs/configuration.md`);
    }
  });

  it('gives the defaults the agent applies', () => {
    // A root without a config file: only defaults apply. Path defaults depend on root (checked by eye).
    const cfg = loadConfig({ flags: { root: join(repo, 'no-such-root') }, env: {}, cwd: repo });
    const docs = documented();
    for (const k of ['logLevel', 'logFormat', 'driftCheckIntervalSec', 'healDrift'] satisfies SettingKey[]) {
      assert.ok(docs.get(k)!.def.includes(`\`${String(cfg[k])}\``), `${k}: docs/configuration.md should give the default \`${String(cfg[k])}\``);
    }
  });
});
