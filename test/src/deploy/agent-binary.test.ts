// The agent single executables that scripts/build-agent.mjs made (scripts/test.mjs builds both
// before the tests): the x64 one runs natively, the arm64 one under qemu-user emulation with
// Debian's arm64 libraries, and both say which version and architecture they are.
import assert from 'node:assert/strict';
import { existsSync, openSync, readSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { agentVersion, repo, requireTool, run, show } from './support.js';

const ELF_MACHINE = { x64: 0x3e, arm64: 0xb7 } as const;

function elfMachine(path: string): number {
  const buf = Buffer.alloc(20);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, buf, 0, 20, 0);
  } finally {
    closeSync(fd);
  }
  assert.equal(buf.subarray(0, 4).toString('latin1'), '\x7fELF', `${path} is not an ELF file`);
  return buf.readUInt16LE(18);
}

function binary(arch: 'x64' | 'arm64'): string {
  const path = join(repo, 'dist', 'agent', `ibex-agent-linux-${arch}`);
  assert.ok(existsSync(path), `${path} is missing: run \`node scripts/build-agent.mjs --no-xz\` (npm test does)`);
  assert.equal(elfMachine(path), ELF_MACHINE[arch], `${path} is not an ${arch} executable`);
  return path;
}

describe('agent single executables', () => {
  const version = agentVersion();

  it('x64: runs natively and prints its version and architecture', { skip: process.arch !== 'x64' && 'not an x64 machine' }, async () => {
    const r = await run(binary('x64'), ['version'], { timeoutMs: 30_000 });
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, new RegExp(`^ibex-agent ${version.replaceAll('.', '\\.')}\\b`));
    assert.match(r.stdout, /\bx64\b/);
  });

  it('arm64: runs under qemu-aarch64-static and prints its version and architecture', async () => {
    const qemu = requireTool('qemu-aarch64-static', 'qemu-user-static');
    const sysroot = '/usr/aarch64-linux-gnu';
    assert.ok(existsSync(join(sysroot, 'lib', 'ld-linux-aarch64.so.1')), `${sysroot} lacks the arm64 loader: run scripts/setup-system.sh (libc6-arm64-cross)`);
    const r = await run(qemu, ['-L', sysroot, binary('arm64'), 'version'], { timeoutMs: 120_000 });
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, new RegExp(`^ibex-agent ${version.replaceAll('.', '\\.')}\\b`));
    assert.match(r.stdout, /\barm64\b/);
  });
});
