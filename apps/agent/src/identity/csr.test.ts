import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import { csrForKey, newKeyAndCsr } from './csr.js';

const run = promisify(execFile);

describe('the device CSR (node:crypto, hand-made DER)', () => {
  it('is a PKCS#10 request openssl parses and verifies, for the key it comes with', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ibex-csr-'));
    try {
      const { keyPem, csrPem } = newKeyAndCsr('router-1.lab');
      await writeFile(join(dir, 'req.pem'), csrPem);
      const { stdout, stderr } = await run('openssl', ['req', '-in', join(dir, 'req.pem'), '-verify', '-noout', '-subject', '-pubkey']);
      assert.match(stdout + stderr, /verify OK/);
      assert.match(stdout, /subject=CN\s?=\s?router-1\.lab/);
      const key = createPrivateKey(keyPem);
      assert.equal(key.asymmetricKeyDetails?.namedCurve, 'prime256v1');
      const pub = createPublicKey(key).export({ format: 'pem', type: 'spki' }).toString().trim();
      assert.ok(stdout.includes(pub), 'the request carries the public half of the key the agent keeps');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('has a long name cut to the 64 characters X.520 allows, and an empty one replaced', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ibex-csr-'));
    try {
      const { keyPem } = newKeyAndCsr('x');
      for (const [cn, expected] of [['n'.repeat(100), 'n'.repeat(64)], ['', 'ibex-device']] as const) {
        await writeFile(join(dir, 'req.pem'), csrForKey(keyPem, cn));
        const { stdout } = await run('openssl', ['req', '-in', join(dir, 'req.pem'), '-verify', '-noout', '-subject']);
        assert.match(stdout, new RegExp(`CN\\s?=\\s?${expected}$`, 'm'));
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
