// deploy/agent/install.sh with the real agent binaries, into scratch trees (--root): what a
// user gets on a systemd or OpenRC machine, and what it refuses.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { agentDir, repo, requireTool, run, scratch, show } from './support.js';

const installer = join(agentDir, 'install.sh');
const x64 = join(repo, 'dist', 'agent', 'ibex-agent-linux-x64');
const arm64 = join(repo, 'dist', 'agent', 'ibex-agent-linux-arm64');

function sha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

describe('agent install.sh', { skip: process.arch !== 'x64' && 'runs the x64 agent natively' }, () => {
  let tmp: { dir: string; cleanup: () => void };
  let busybox: string;
  let x64Sha: string;

  before(() => {
    for (const bin of [x64, arm64]) {
      assert.ok(existsSync(bin), `${bin} is missing: run \`node scripts/build-agent.mjs --no-xz\` first`);
    }
    busybox = requireTool('busybox', 'busybox-static');
    requireTool('xz', 'xz-utils');
    tmp = scratch('install');
    x64Sha = sha256(x64);
  });
  after(() => tmp.cleanup());

  it('installs the binary and the systemd unit into --root with a --prefix, after checking the SHA-256', async () => {
    const root = join(tmp.dir, 'systemd-root');
    mkdirSync(join(root, 'etc', 'systemd', 'system'), { recursive: true });
    // Upper case is accepted: checksums get pasted from anywhere.
    const r = await run('sh', [installer, '--root', root, '--prefix', '/opt/ibex', '--sha256', x64Sha.toUpperCase(), x64]);
    assert.equal(r.code, 0, show(r));

    const bin = join(root, 'opt', 'ibex', 'bin', 'ibex-agent');
    assert.equal(sha256(bin), x64Sha);
    assert.equal(statSync(bin).mode & 0o777, 0o755);
    const unit = readFileSync(join(root, 'etc', 'systemd', 'system', 'ibex-agent.service'), 'utf8');
    assert.match(unit, /^ExecStart=\/opt\/ibex\/bin\/ibex-agent run$/m);
    const directives = unit.split('\n').filter((l) => !l.startsWith('#'));
    assert.deepEqual(directives.filter((l) => l.includes('/usr/local/bin')), [], 'every binary path follows --prefix');
    assert.equal(statSync(join(root, 'etc', 'ibex', 'agent.env')).mode & 0o777, 0o600);
    assert.equal(statSync(join(root, 'var', 'lib', 'ibex-agent')).mode & 0o777, 0o700);
    // Not a live system: nothing was enabled, and the backoff drop-in (systemd >= 254 only) is left out.
    assert.equal(existsSync(join(root, 'etc', 'systemd', 'system', 'ibex-agent.service.d')), false);

    assert.match(r.stdout, /SHA-256 of .* verified/);
    assert.match(r.stdout, /ibex-agent \d+\.\d+\.\d+ \(node 24\.\d+\.\d+, x64\)/);
    assert.match(r.stdout, /^ {2}\/opt\/ibex\/bin\/ibex-agent enroll --controller grpc:\/\/\S+ --token ibxe_/m);
    assert.match(r.stdout, /^ {2}systemctl start ibex-agent$/m);
  });

  it('refuses a binary whose SHA-256 differs, says so, and installs nothing', async () => {
    const root = join(tmp.dir, 'refused-root');
    const wrong = x64Sha.replace(/^./, (c) => (c === '0' ? '1' : '0'));
    const r = await run('sh', [installer, '--root', root, '--init', 'none', '--sha256', wrong, x64]);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, new RegExp(`SHA-256 mismatch for ${x64}: expected ${wrong}, got ${x64Sha}`));
    assert.match(r.stderr, /Nothing was installed/);
    assert.equal(existsSync(join(root, 'usr', 'local', 'bin', 'ibex-agent')), false);

    const malformed = await run('sh', [installer, '--root', root, '--sha256', 'abc', x64]);
    assert.equal(malformed.code, 1);
    assert.match(malformed.stderr, /--sha256 must be 64 hex digits/);
  });

  it('unpacks an .xz download under BusyBox sh and installs the OpenRC service it detects', async () => {
    const xzFile = join(tmp.dir, 'ibex-agent-linux-x64.xz');
    // -0: fast; the test is about unpacking, not about ratio.
    const packed = await run('sh', ['-c', 'xz -0 -T0 -c "$1" > "$2"', 'sh', x64, xzFile], { timeoutMs: 120_000 });
    assert.equal(packed.code, 0, show(packed));
    const root = join(tmp.dir, 'openrc-root');
    mkdirSync(join(root, 'sbin'), { recursive: true });
    writeFileSync(join(root, 'sbin', 'openrc-run'), '');
    chmodSync(join(root, 'sbin', 'openrc-run'), 0o755);

    const r = await run(busybox, ['sh', installer, '--root', root, '--sha256', sha256(xzFile), xzFile], { timeoutMs: 120_000 });
    assert.equal(r.code, 0, show(r));
    assert.equal(sha256(join(root, 'usr', 'local', 'bin', 'ibex-agent')), x64Sha);
    const initd = join(root, 'etc', 'init.d', 'ibex-agent');
    assert.equal(statSync(initd).mode & 0o777, 0o755);
    assert.match(readFileSync(initd, 'utf8'), /^command="\/usr\/local\/bin\/ibex-agent"$/m);
    assert.ok(existsSync(join(root, 'etc', 'conf.d', 'ibex-agent')));
    assert.match(r.stdout, /OpenRC service/);
    assert.match(r.stdout, /^ {2}rc-service ibex-agent start$/m);
  });

  it('installs an arm64 binary into a tree without running it, but refuses it for this x86_64 machine', async () => {
    const root = join(tmp.dir, 'arm64-root');
    const r = await run('sh', [installer, '--root', root, '--init', 'none', arm64]);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /ibex-agent for aarch64 \(not run: this machine is x86_64\)/);
    assert.equal(sha256(join(root, 'usr', 'local', 'bin', 'ibex-agent')), sha256(arm64));

    // Live install (root /), into a scratch prefix so that a bug could not touch /usr/local.
    const live = await run('sh', [installer, '--init', 'none', '--prefix', join(tmp.dir, 'live-prefix'), arm64]);
    assert.equal(live.code, 1, show(live));
    assert.match(live.stderr, /is built for aarch64 but this machine is x86_64: download ibex-agent-linux-x64/);
    assert.equal(existsSync(join(tmp.dir, 'live-prefix', 'bin', 'ibex-agent')), false);
  });

  it('refuses what is not an executable, and unsafe paths, with a message naming the problem', async () => {
    const html = join(tmp.dir, 'error-page');
    writeFileSync(html, '<html>404</html>\n');
    const root = join(tmp.dir, 'bad-root');
    const notElf = await run('sh', [installer, '--root', root, '--init', 'none', html]);
    assert.equal(notElf.code, 1);
    assert.match(notElf.stderr, /is not a Linux executable/);

    const missing = await run('sh', [installer, '--root', root, join(tmp.dir, 'nope')]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /does not exist/);

    const spaced = await run('sh', [installer, '--root', root, '--prefix', '/opt/my ibex', x64]);
    assert.equal(spaced.code, 1);
    assert.match(spaced.stderr, /--prefix may hold only/);

    const badInit = await run('sh', [installer, '--root', root, '--init', 'upstart', x64]);
    assert.equal(badInit.code, 1);
    assert.match(badInit.stderr, /--init must be auto, systemd, openrc or none/);
  });
});
