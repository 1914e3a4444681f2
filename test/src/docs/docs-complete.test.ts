// The reference docs list everything the code has: every job type is in docs/protocol.md's
// table with the right retry-safety, every desired-state section is in the README's
// capabilities table, and every relative link in README.md and docs/*.md points at a file.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { jobTypes, sectionNames } from '@ibex/spec';
import { repo } from '../e2e/helpers/repo.js';

const read = (p: string) => readFileSync(join(repo, p), 'utf8');

describe('reference docs', () => {
  it('docs/protocol.md lists every job type with its retry-safety', () => {
    const protocol = read('docs/protocol.md');
    const problems: string[] = [];
    for (const [type, def] of Object.entries(jobTypes)) {
      const row = protocol.split('\n').find((l) => l.startsWith(`| \`${type}\` |`));
      if (!row) problems.push(`${type}: no row in the job types table`);
      else if (!row.trimEnd().endsWith(`| ${def.retrySafe ? 'yes' : 'no'} |`)) problems.push(`${type}: retry-safe should say ${def.retrySafe ? 'yes' : 'no'}`);
    }
    assert.deepEqual(problems, []);
  });

  it("README's capabilities table names every desired-state section", () => {
    const readme = read('README.md');
    const missing = sectionNames.filter((s) => !readme.includes(`| \`${s}\` |`));
    assert.deepEqual(missing, [], `README.md "Capabilities" lacks: ${missing.join(', ')}`);
  });

  it('relative links in README.md and docs/*.md point at existing files', () => {
    const files = ['README.md', ...readdirSync(join(repo, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
    const broken: string[] = [];
    for (const f of files) {
      for (const m of read(f).matchAll(/\]\(([^)#\s]+)(#[^)]*)?\)/g)) {
        const target = m[1]!;
        if (/^[a-z]+:/.test(target)) continue; // http:, https:, mailto:
        if (!existsSync(join(repo, dirname(f), target))) broken.push(`${f}: ${target}`);
      }
    }
    assert.deepEqual(broken, []);
  });
});
