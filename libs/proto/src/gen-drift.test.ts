import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { it } from 'node:test';

const repo = fileURLToPath(new URL('../../../', import.meta.url));

it('the committed generated code matches proto/ (buf + ts-proto)', () => {
  const r = spawnSync(process.execPath, ['scripts/gen.mjs', '--check'], { cwd: repo, encoding: 'utf8' });
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
});

it('buf lint passes on proto/', () => {
  const r = spawnSync(`${repo}node_modules/.bin/buf`, ['lint'], { cwd: repo, encoding: 'utf8' });
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
});
