import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { filesCapability } from '../capabilities/files/files-capability.js';
import { silentLogger } from '../common/log.js';
import { DataDir } from '../journal/data-dir.js';
import { writeJsonAtomicSync } from '../journal/atomic-file.js';
import { NodeSystemAdapter } from '../system/node-system-adapter.js';
import type { SystemAdapter } from '../system/system-adapter.js';
import { CapabilityRegistry } from './capability.js';
import { Engine, orderSections } from './engine.js';

describe('reconcile engine with the files capability', () => {
  const base = mkdtempSync(join(tmpdir(), 'ibex-engine-'));
  after(() => rmSync(base, { recursive: true, force: true }));
  let n = 0;
  const setup = (sys: SystemAdapter = new NodeSystemAdapter(), registry = new CapabilityRegistry().register(filesCapability)) => {
    const root = join(base, `root-${++n}`);
    mkdirSync(join(root, 'etc'), { recursive: true });
    const dataDir = new DataDir(join(root, 'var/lib/ibex-agent'));
    return { root, dataDir, engine: new Engine({ registry, sys, log: silentLogger, root, dataDir, agentVersion: '9.9.9' }) };
  };
  const spec = { files: { entries: [{ path: '/etc/motd', content: 'new\n', mode: '0640' }, { path: '/etc/conf.d/a', content: 'a' }, { path: '/etc/old', ensure: 'absent' }] } };

  it('applies, verifies, leaves no intent behind, and a second apply runs no step', async () => {
    const { root, dataDir, engine } = setup();
    writeFileSync(join(root, 'etc/old'), 'bye');
    const [r] = await engine.apply(spec);
    assert.equal(r!.state, 'in_sync', r!.error);
    assert.equal(r!.steps.length, 3);
    assert.equal(readFileSync(join(root, 'etc/motd'), 'utf8'), 'new\n');
    assert.equal(statSync(join(root, 'etc/motd')).mode & 0o777, 0o640);
    assert.equal(existsSync(join(root, 'etc/old')), false);
    assert.equal(existsSync(join(dataDir.intents, 'files.json')), false);
    const again = await engine.apply(spec);
    assert.deepEqual(again.map((x) => [x.section, x.state, x.steps.length]), [['files', 'in_sync', 0]]);
  });

  it('reverts everything when verify fails, restoring content, modes, symlinks and removing created dirs', async () => {
    // An adapter whose chmod silently does nothing: the files are written but verify sees the wrong mode.
    const real = new NodeSystemAdapter();
    const broken: SystemAdapter = Object.assign(Object.create(real) as SystemAdapter, { chmod: async () => {} });
    const liar: SystemAdapter = Object.assign(Object.create(real) as SystemAdapter, {
      writeFileAtomic: (p: string, d: Uint8Array, o: { mode: number }) => real.writeFileAtomic(p, d, { ...o, mode: o.mode === 0o600 ? 0o644 : o.mode }),
    });
    for (const sys of [broken, liar]) {
      const { root, dataDir, engine } = setup(sys);
      writeFileSync(join(root, 'etc/motd'), 'old motd\n', { mode: 0o644 });
      symlinkSync('/etc/motd', join(root, 'etc/link'));
      writeFileSync(join(root, 'etc/gone'), 'keep me');
      writeFileSync(join(root, 'etc/mode'), 'm', { mode: 0o644 });
      const s = {
        files: {
          entries: [
            { path: '/etc/motd', content: 'new\n' },
            { path: '/etc/link', content: 'replaces the link' },
            { path: '/etc/gone', ensure: 'absent' },
            { path: '/etc/deep/dir/secret', content: 's', mode: '0600' },
            { path: '/etc/mode', content: 'm', mode: '0600' },
          ],
        },
      };
      const [r] = await engine.apply(s);
      assert.equal(r!.state, 'reverted');
      assert.match(r!.error!, /^verify failed: after applying, 1 step\(s\) would still run: chmod \/etc\/(deep\/dir\/secret|mode) 0600.*; the previous state was restored$/);
      assert.equal(statSync(join(root, 'etc/mode')).mode & 0o777, 0o644);
      assert.equal(readFileSync(join(root, 'etc/motd'), 'utf8'), 'old motd\n');
      assert.equal(readFileSync(join(root, 'etc/gone'), 'utf8'), 'keep me');
      assert.equal(readlinkSync(join(root, 'etc/link')), '/etc/motd', 'the symlink is back');
      assert.equal(existsSync(join(root, 'etc/deep')), false, 'created directories are removed');
      assert.equal(existsSync(join(dataDir.intents, 'files.json')), false);
    }
  });

  it('reverts when a step fails midway, and reports which step', async () => {
    const real = new NodeSystemAdapter();
    const failing: SystemAdapter = Object.assign(Object.create(real) as SystemAdapter, {
      unlink: async (p: string) => {
        if (p.endsWith('/etc/b')) throw Object.assign(new Error('EBUSY: resource busy'), { code: 'EBUSY' });
        return real.unlink(p);
      },
    });
    const { root, engine } = setup(failing);
    writeFileSync(join(root, 'etc/b'), 'b');
    const [r] = await engine.apply({ files: { entries: [{ path: '/etc/a', content: 'a' }, { path: '/etc/b', ensure: 'absent' }] } });
    assert.equal(r!.state, 'reverted');
    assert.match(r!.error!, /^step 2 of 2 \(remove \/etc\/b \(a file\)\) failed: EBUSY/);
    assert.equal(existsSync(join(root, 'etc/a')), false);
  });

  it('reverts an interrupted apply found on start (its intent is on disk)', async () => {
    const { root, dataDir, engine } = setup();
    writeFileSync(join(root, 'etc/motd'), 'before');
    mkdirSync(dataDir.backupOf('files'), { recursive: true });
    writeFileSync(join(dataDir.backupOf('files'), '0'), 'before');
    writeFileSync(join(root, 'etc/motd'), 'half-applied');
    writeFileSync(join(root, 'etc/new'), 'created by the interrupted apply');
    writeJsonAtomicSync(join(dataDir.intents, 'files.json'), {
      section: 'files',
      startedAtMs: 1,
      backup: {
        entries: [
          { path: '/etc/motd', host: join(root, 'etc/motd'), kind: 'file', mode: 0o644, copy: '0' },
          { path: '/etc/new', host: join(root, 'etc/new'), kind: 'absent' },
        ],
        createdDirs: [],
      },
    });
    const recovered = await engine.recover();
    assert.deepEqual(recovered, [{ what: 'section files', outcome: 'undone', section: 'files', unconfirmed: false, reason: 'the agent restarted while the change was being applied; the previous state was restored' }]);
    assert.equal(readFileSync(join(root, 'etc/motd'), 'utf8'), 'before');
    assert.equal(existsSync(join(root, 'etc/new')), false);
    assert.equal(existsSync(dataDir.backupOf('files')), false, 'the bytes go once restored');
    engine.recoveredReported(recovered);
    assert.equal(existsSync(join(dataDir.intents, 'files.json')), false);
    assert.deepEqual(await engine.recover(), []);
  });

  it('a second apply after a failed revert keeps the original backup: the first revert is finished, never overwritten (issue 15)', async () => {
    const real = new NodeSystemAdapter();
    const flags = { failRestore: true };
    // Writes get mode 0644 and chmod does nothing (verify fails, so every apply reverts); restoring the old motd fails while failRestore is set.
    const sys: SystemAdapter = Object.assign(Object.create(real) as SystemAdapter, {
      chmod: async () => {},
      writeFileAtomic: (p: string, d: Uint8Array, o: { mode: number }) => {
        if (flags.failRestore && p.endsWith('/etc/motd') && Buffer.from(d).toString() === 'old motd\n') return Promise.reject(Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' }));
        return real.writeFileAtomic(p, d, { ...o, mode: 0o644 });
      },
    });
    const { root, dataDir, engine } = setup(sys);
    writeFileSync(join(root, 'etc/motd'), 'old motd\n', { mode: 0o644 });
    const s = { files: { entries: [{ path: '/etc/motd', content: 'new\n', mode: '0600' }] } };
    const [first] = await engine.apply(s);
    assert.equal(first!.state, 'failed');
    assert.match(first!.error!, /reverting failed too/);
    assert.equal(readFileSync(join(root, 'etc/motd'), 'utf8'), 'new\n', 'half applied');
    assert.equal(existsSync(join(dataDir.intents, 'files.json')), true, 'the intent stays for a retry');
    flags.failRestore = false;
    // A state.apply job before any restart: the original bytes must survive it.
    const [second] = await engine.apply(s);
    assert.equal(second!.state, 'reverted', second!.error);
    assert.equal(readFileSync(join(root, 'etc/motd'), 'utf8'), 'old motd\n', 'the original content is back, not the half-applied one');
    assert.equal(existsSync(join(dataDir.intents, 'files.json')), false);
  });

  it('retries a failing revert step; one that keeps failing is reported with what is left, and the next start finishes it (issue 16)', async () => {
    const real = new NodeSystemAdapter();
    const fails = { left: 2 };
    const sys: SystemAdapter = Object.assign(Object.create(real) as SystemAdapter, {
      chmod: async () => {},
      writeFileAtomic: (p: string, d: Uint8Array, o: { mode: number }) => {
        if (fails.left > 0 && p.endsWith('/etc/motd') && Buffer.from(d).toString() === 'old motd\n') {
          fails.left--;
          return Promise.reject(Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' }));
        }
        return real.writeFileAtomic(p, d, { ...o, mode: 0o644 });
      },
    });
    const s = { files: { entries: [{ path: '/etc/motd', content: 'new\n', mode: '0600' }] } };
    // Two failures, then the third try works: restored, nothing left.
    const a = setup(sys);
    writeFileSync(join(a.root, 'etc/motd'), 'old motd\n', { mode: 0o644 });
    const [retried] = await a.engine.apply(s);
    assert.equal(retried!.state, 'reverted', retried!.error);
    assert.equal(readFileSync(join(a.root, 'etc/motd'), 'utf8'), 'old motd\n');
    // Failing on every try: reported with what is left; the record stays and the next start finishes the revert.
    fails.left = 3;
    const b = setup(sys);
    writeFileSync(join(b.root, 'etc/motd'), 'old motd\n', { mode: 0o644 });
    const [stuck] = await b.engine.apply(s);
    assert.equal(stuck!.state, 'failed');
    assert.match(stuck!.error!, /reverting failed too, so the change is kept on disk and its revert is retried .*files: 1 revert step\(s\) still failing after 3 tries each, left to do: restore \/etc\/motd \(EIO/);
    const restarted = new Engine({ registry: new CapabilityRegistry().register(filesCapability), sys: real, log: silentLogger, root: b.root, dataDir: b.dataDir, agentVersion: '9.9.9' });
    const recovered = await restarted.recover();
    assert.deepEqual(recovered.map((r) => [r.section, r.outcome]), [['files', 'undone']]);
    assert.equal(readFileSync(join(b.root, 'etc/motd'), 'utf8'), 'old motd\n');
  });

  it('plans without changing anything', async () => {
    const { root, engine } = setup();
    const [r] = await engine.plan(spec);
    assert.equal(r!.state, 'pending');
    assert.deepEqual(r!.steps.map((s) => s.action), ['write', 'write']);
    assert.equal(existsSync(join(root, 'etc/motd')), false);
  });

  it('reports sections without a capability as unsupported and invalid sections as failed, in a fixed order', async () => {
    const { engine } = setup(new NodeSystemAdapter(), new CapabilityRegistry());
    const results = await engine.apply({ zeta: {}, files: { entries: [] }, alpha: 1 });
    assert.deepEqual(results.map((r) => [r.section, r.state, r.error]), [
      ['files', 'unsupported', "this agent (ibex-agent 9.9.9) has no capability for section 'files'"],
      ['alpha', 'unsupported', "this agent (ibex-agent 9.9.9) has no capability for section 'alpha'"],
      ['zeta', 'unsupported', "this agent (ibex-agent 9.9.9) has no capability for section 'zeta'"],
    ]);
    const withFiles = setup(new NodeSystemAdapter(), new CapabilityRegistry().register(filesCapability)).engine;
    const [bad] = await withFiles.apply({ files: { entries: [{ path: 'relative', content: 'x' }] } });
    assert.equal(bad!.state, 'failed');
    assert.match(bad!.error!, /invalid section: files\.entries\[0\]\.path: must be an absolute path/);
    assert.deepEqual(orderSections(['z', 'files', 'a']), ['files', 'a', 'z']);
  });
});

describe('reconcile engine: changes that must be confirmed', () => {
  const base = mkdtempSync(join(tmpdir(), 'ibex-engine-confirm-'));
  after(() => rmSync(base, { recursive: true, force: true }));
  let n = 0;
  // The files capability, asking for confirmation like the network one does.
  const confirming = { ...filesCapability, confirmation: () => ({ timeoutMs: 60_000 }) };
  const setup = (now: () => number = () => 1_000_000) => {
    const root = join(base, `root-${++n}`);
    mkdirSync(join(root, 'etc'), { recursive: true });
    writeFileSync(join(root, 'etc/motd'), 'old\n');
    const dataDir = new DataDir(join(root, 'var/lib/ibex-agent'));
    const make = () => new Engine({ registry: new CapabilityRegistry().register(confirming), sys: new NodeSystemAdapter(), log: silentLogger, root, dataDir, agentVersion: '9.9.9', now });
    return { root, dataDir, engine: make(), make };
  };
  const spec = { files: { entries: [{ path: '/etc/motd', content: 'new\n' }] } };

  const intentOf = (dataDir: DataDir) => (existsSync(join(dataDir.intents, 'files.json')) ? JSON.parse(readFileSync(join(dataDir.intents, 'files.json'), 'utf8')) : undefined);

  it('keeps the intent awaiting confirmation after verifying, and confirming makes the change final', async () => {
    const { root, dataDir, engine } = setup();
    const [r] = await engine.apply(spec);
    assert.equal(r!.state, 'applying', r!.error);
    assert.equal(r!.awaitingConfirmationUntilMs, 1_060_000);
    assert.match(r!.detail!, /^awaiting confirmation until 1970-01-01T00:17:40\.000Z/);
    assert.equal(intentOf(dataDir)?.awaitingConfirmationUntilMs, 1_060_000);
    assert.equal(readFileSync(join(root, 'etc/motd'), 'utf8'), 'new\n');
    const settled = await engine.confirmations.settle([r!], { confirmed: true });
    assert.deepEqual([settled.get('files')?.state, settled.get('files')?.awaitingConfirmationUntilMs], ['in_sync', undefined]);
    assert.equal(intentOf(dataDir), undefined);
    assert.equal(existsSync(dataDir.backupOf('files')), false);
    assert.equal(readFileSync(join(root, 'etc/motd'), 'utf8'), 'new\n');
  });

  it('reverts an unconfirmed change from its backup', async () => {
    const { root, dataDir, engine } = setup();
    const [applied] = await engine.apply(spec);
    const r = (await engine.confirmations.settle([applied!], { confirmed: false, reason: 'not confirmed: test' })).get('files')!;
    assert.deepEqual([r.state, r.error, r.unconfirmed], ['reverted', 'not confirmed: test; the previous state was restored', true]);
    assert.equal(readFileSync(join(root, 'etc/motd'), 'utf8'), 'old\n');
    assert.equal(intentOf(dataDir), undefined);
  });

  it('confirms by the controller acknowledging the report sent after the change, and reverts when the deadline passes first', async () => {
    const { root, dataDir, engine } = setup();
    const [applied] = await engine.apply(spec);
    const stop = new AbortController();
    const waiting = engine.confirmations.confirmByAck([applied!], 'report-1', stop.signal);
    engine.confirmations.acked('report-other');
    engine.confirmations.acked('report-1');
    assert.equal((await waiting).get('files')?.state, 'in_sync');
    assert.equal(intentOf(dataDir), undefined);
    // The deadline (the test clock says it passed already) reverts it; an Ack after that changes nothing.
    const [again] = await engine.apply({ files: { entries: [{ path: '/etc/motd', content: 'newer\n' }] } });
    const late = await engine.confirmations.confirmByAck([{ ...again!, awaitingConfirmationUntilMs: 0 }], 'report-2', stop.signal);
    engine.confirmations.acked('report-2');
    assert.equal(late.get('files')?.state, 'reverted');
    assert.match(late.get('files')?.error ?? '', /^not confirmed: the controller was not reachable within/);
    assert.equal(readFileSync(join(root, 'etc/motd'), 'utf8'), 'new\n');
  });

  it('confirms only once a fresh connection works too: an Ack over the stream opened before the change is not enough', async () => {
    const { root, dataDir, engine } = setup(Date.now);
    const stop = new AbortController();
    // The fresh connection keeps failing (say the change broke DNS): reverted at the deadline, Ack or not.
    let probes = 0;
    const [applied] = await engine.apply(spec);
    const broken = engine.confirmations.confirmByAck([{ ...applied!, awaitingConfirmationUntilMs: Date.now() + 1500 }], 'report-1', stop.signal, async () => {
      probes++;
      throw new Error('cannot resolve the controller\'s name ctl.example: ENOTFOUND');
    });
    engine.confirmations.acked('report-1');
    const r = (await broken).get('files')!;
    assert.equal(r.state, 'reverted', r.error);
    assert.match(r.error!, /^not confirmed: the controller acknowledged the report over the stream opened before the change, but a new connection to it failed until the deadline .*ENOTFOUND/);
    assert.ok(probes >= 2, `retried until the deadline (${probes} attempts)`);
    assert.equal(readFileSync(join(root, 'etc/motd'), 'utf8'), 'old\n', 'the previous state is back');
    assert.equal(intentOf(dataDir), undefined);

    // The first attempt fails, the next works: confirmed.
    const [again] = await engine.apply(spec);
    let attempts = 0;
    const flaky = engine.confirmations.confirmByAck([{ ...again!, awaitingConfirmationUntilMs: Date.now() + 10_000 }], 'report-2', stop.signal, async () => {
      if (++attempts === 1) throw new Error('connection refused');
    });
    engine.confirmations.acked('report-2');
    assert.equal((await flaky).get('files')?.state, 'in_sync');
    assert.equal(attempts, 2);
    assert.equal(readFileSync(join(root, 'etc/motd'), 'utf8'), 'new\n');
  });

  it('reverts at start when the agent died while a change awaited confirmation', async () => {
    const { root, engine, make } = setup();
    await engine.apply(spec);
    const recovered = await make().recover();
    assert.equal(recovered.length, 1);
    assert.equal(recovered[0]!.unconfirmed, true);
    assert.match(recovered[0]!.reason, /^not confirmed: the agent restarted while the change awaited confirmation \(deadline 1970-01-01T00:17:40\.000Z\)/);
    assert.equal(readFileSync(join(root, 'etc/motd'), 'utf8'), 'old\n');
  });

  it('an unconfirmed change whose revert failed is reverted from its own backup before the next apply (issue 15)', async () => {
    const root = join(base, `root-${++n}`);
    mkdirSync(join(root, 'etc'), { recursive: true });
    writeFileSync(join(root, 'etc/motd'), 'old\n');
    const dataDir = new DataDir(join(root, 'var/lib/ibex-agent'));
    const real = new NodeSystemAdapter();
    const flags = { failRestore: true };
    const sys: SystemAdapter = Object.assign(Object.create(real) as SystemAdapter, {
      writeFileAtomic: (p: string, d: Uint8Array, o: { mode: number }) =>
        flags.failRestore && p.endsWith('/etc/motd') && Buffer.from(d).toString() === 'old\n' ? Promise.reject(Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' })) : real.writeFileAtomic(p, d, o),
    });
    const engine = new Engine({ registry: new CapabilityRegistry().register(confirming), sys, log: silentLogger, root, dataDir, agentVersion: '9.9.9', now: () => 1_000_000 });
    const [applied] = await engine.apply(spec);
    const r = (await engine.confirmations.settle([applied!], { confirmed: false, reason: 'not confirmed: test' })).get('files')!;
    assert.equal(r.state, 'failed');
    assert.match(r.error!, /reverting failed, so the change is kept on disk/);
    flags.failRestore = false;
    // The next pass (a state.apply job) of a spec that changes the file again: the original is restored first and backed up, not the half-reverted state.
    const [again] = await engine.apply({ files: { entries: [{ path: '/etc/motd', content: 'newer\n' }] } });
    assert.equal(again!.state, 'applying', again!.error);
    const back = (await engine.confirmations.settle([again!], { confirmed: false, reason: 'not confirmed: test' })).get('files')!;
    assert.equal(back.state, 'reverted', back.error);
    assert.equal(readFileSync(join(root, 'etc/motd'), 'utf8'), 'old\n');
  });

  it('remembers a start-up revert until its report is journaled: a crash before that reports it again, never re-applies (issue 15)', async () => {
    const { root, engine, make } = setup();
    await engine.apply(spec);
    const first = await make().recover();
    assert.equal(first[0]?.unconfirmed, true);
    // The agent dies here, before the `reverted` report is journaled: the next start still knows.
    const again = make();
    const second = await again.recover();
    assert.deepEqual(second.map((r) => [r.section, r.unconfirmed, r.outcome]), [['files', true, 'undone']]);
    assert.equal(second[0]!.reason, first[0]!.reason);
    assert.equal(readFileSync(join(root, 'etc/motd'), 'utf8'), 'old\n');
    again.recoveredReported(second);
    assert.deepEqual(await make().recover(), []);
  });
});
