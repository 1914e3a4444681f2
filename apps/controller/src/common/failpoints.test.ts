import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';

const main = fileURLToPath(new URL('../main.js', import.meta.url));

describe('controller failpoints', () => {
  it('refuses an unknown failpoint name at start, naming it and the known ones', async () => {
    // Refused before the configuration, the database or Redis are looked at.
    const r = await new Promise<{ code: number | null; stderr: string }>((resolve) =>
      execFile(process.execPath, [main], { env: { ...process.env, IBEX_CONTROLLER_FAILPOINTS: 'job-result-before-ack,before-comit', DATABASE_URL: 'not a url' }, timeout: 30_000 }, (err, _out, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stderr }),
      ),
    );
    assert.equal(r.code, 1);
    assert.equal(r.stderr.trim(), 'ibex-controller: IBEX_CONTROLLER_FAILPOINTS: unknown failpoint(s) "before-comit"; known: job-result-before-commit, job-result-before-ack, image-build-mid-archive, rollout-dispatch-before-commit, rollout-dispatch-after-commit');
  });
});
