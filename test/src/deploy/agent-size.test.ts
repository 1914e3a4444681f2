// The agent size check (scripts/check-agent-size.mjs): the agent that npm test built is within
// 20% of the committed baseline, and the check really fails on a larger growth (against
// scratch files and a scratch baseline, so the real ones are never touched).
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { repo, run, scratch as scratchDir, show } from './support.js';

const script = join(repo, 'scripts', 'check-agent-size.mjs');

describe('agent size check', () => {
  const scratch = scratchDir('agent-size');
  after(() => scratch.cleanup());

  it('the built agent is within 20% of bench/agent-size-baseline.json', async () => {
    assert.ok(existsSync(join(repo, 'dist', 'agent', 'ibex-agent.cjs')), 'dist/agent/ibex-agent.cjs is missing: node scripts/build-agent.mjs --no-xz (npm test does)');
    const r = await run(process.execPath, [script]);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /bundle: \d+ KiB, baseline \d+ KiB/);
  });

  /** A scratch dist/agent with a bundle of `bytes`, and a baseline recording `baseBytes`. */
  function fixture(name: string, baseBytes: number, bytes: number): string[] {
    const dist = join(scratch.dir, name, 'dist');
    mkdirSync(dist, { recursive: true });
    writeFileSync(join(dist, 'ibex-agent.cjs'), 'x'.repeat(bytes));
    const baseline = join(scratch.dir, name, 'baseline.json');
    writeFileSync(baseline, JSON.stringify({ sizes: { bundle: baseBytes } }));
    return ['--dist', dist, '--baseline', baseline, '--node-cache', join(scratch.dir, name, 'no-node-cache')];
  }

  it('fails on a growth of more than 20%, naming the file and how to update the baseline', async () => {
    const r = await run(process.execPath, [script, ...fixture('grown', 100_000, 120_001)]);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /grew by more than 20%/);
    assert.match(r.stderr, /bundle 98 KiB -> 117 KiB \(\+20\.0%\)/);
    assert.match(r.stderr, /check-agent-size\.mjs --update/);
  });

  it('passes at exactly 20% growth and when the agent shrank', async () => {
    const at = await run(process.execPath, [script, ...fixture('at-limit', 100_000, 120_000)]);
    assert.equal(at.code, 0, show(at));
    const shrunk = await run(process.execPath, [script, ...fixture('shrunk', 100_000, 50_000)]);
    assert.equal(shrunk.code, 0, show(shrunk));
    assert.match(shrunk.stdout, /consider recording it with --update/);
  });

  it('--update records the current sizes, after which the check passes', async () => {
    const args = fixture('update', 10_000, 50_000);
    assert.equal((await run(process.execPath, [script, ...args])).code, 1);
    const u = await run(process.execPath, [script, ...args, '--update']);
    assert.equal(u.code, 0, show(u));
    const baseline = JSON.parse(readFileSync(args[3]!, 'utf8')) as { sizes: Record<string, number> };
    assert.deepEqual(baseline.sizes, { bundle: 50_000 });
    assert.equal((await run(process.execPath, [script, ...args])).code, 0);
  });

  it('refuses bad arguments and a missing baseline with exit 2', async () => {
    const bad = await run(process.execPath, [script, '--max-growth', 'lots']);
    assert.equal(bad.code, 2, show(bad));
    assert.match(bad.stderr, /--max-growth must be a percentage/);
    const args = fixture('no-baseline', 1, 1);
    const missing = await run(process.execPath, [script, args[0]!, args[1]!, '--baseline', join(scratch.dir, 'none.json')]);
    assert.equal(missing.code, 2, show(missing));
    assert.match(missing.stderr, /no baseline .*--update/);
  });
});
