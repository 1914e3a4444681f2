import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { silentLogger } from '../../common/log.js';
import { CapabilityRegistry } from '../../engine/capability.js';
import { Engine } from '../../engine/engine.js';
import { DataDir } from '../../journal/data-dir.js';
import { NodeSystemAdapter } from '../../system/node-system-adapter.js';
import { assertApplyThenPlanIsEmpty } from '../../testing/apply-then-plan.js';
import { filesCapability } from './files-capability.js';

/** What one path holds before the apply, and what its entry asks for. */
const pathStart = fc.record({
  now: fc.oneof(
    fc.constant({ kind: 'absent' as const }),
    fc.record({ kind: fc.constant('file' as const), content: fc.string({ maxLength: 40 }), mode: fc.constantFrom(0o600, 0o640, 0o644, 0o755) }),
    fc.record({ kind: fc.constant('symlink' as const), target: fc.constantFrom('/etc/motd', 'missing', '../x') }),
  ),
  want: fc.oneof(
    fc.record({ ensure: fc.constant('present' as const), content: fc.string({ maxLength: 40 }), mode: fc.constantFrom('0600', '0640', '0644', '0755'), binary: fc.boolean() }),
    fc.record({ ensure: fc.constant('absent' as const) }),
  ),
});

describe('files: apply, then plan is empty (property, varied starting states)', () => {
  const base = mkdtempSync(join(tmpdir(), 'ibex-files-atp-'));
  after(() => rmSync(base, { recursive: true, force: true }));
  let n = 0;
  let engine: Engine;
  // Fixed paths, some in directories that may not exist yet.
  const paths = ['/etc/motd', '/etc/app/app.conf', '/opt/deep/er/key', '/etc/hosts'];

  it('holds for files, symlinks and missing paths, with and without parents, text and base64', async () => {
    await assertApplyThenPlanIsEmpty(
      {
        starts: fc.array(pathStart, { minLength: paths.length, maxLength: paths.length }),
        async arrange(start) {
          const root = join(base, `r${++n}`);
          mkdirSync(join(root, 'etc'), { recursive: true });
          engine = new Engine({ registry: new CapabilityRegistry().register(filesCapability), sys: new NodeSystemAdapter(), log: silentLogger, root, dataDir: new DataDir(join(root, 'var/lib/ibex-agent')), agentVersion: 'test' });
          const entries = start.map((s, i) => {
            const host = join(root, paths[i]!);
            if (s.now.kind !== 'absent') mkdirSync(dirname(host), { recursive: true });
            if (s.now.kind === 'file') {
              writeFileSync(host, s.now.content);
              chmodSync(host, s.now.mode);
            } else if (s.now.kind === 'symlink') symlinkSync(s.now.target, host);
            const w = s.want;
            if (w.ensure === 'absent') return { path: paths[i], ensure: 'absent' };
            return w.binary ? { path: paths[i], content: Buffer.from(w.content).toString('base64'), encoding: 'base64', mode: w.mode } : { path: paths[i], content: w.content, mode: w.mode };
          });
          return { files: { entries } };
        },
        apply: (spec) => engine.apply(spec),
        plan: (spec) => engine.plan(spec),
      },
      { runs: 60, seed: 16 },
    );
  });
});
