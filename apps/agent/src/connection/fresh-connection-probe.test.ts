import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { freshConnectionProbe } from './fresh-connection-probe.js';

/** A self-signed certificate for `names` (DNS and IP SANs). */
function certificate(dir: string, name: string, san: string): { key: Buffer; cert: Buffer } {
  const key = join(dir, `${name}.key`);
  const cert = join(dir, `${name}.pem`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', `/CN=${name}`, '-addext', `subjectAltName=${san}`], { stdio: 'ignore' });
  return { key: readFileSync(key), cert: readFileSync(cert) };
}

const listen = (s: Server) => new Promise<number>((resolve) => s.listen(0, '127.0.0.1', () => resolve((s.address() as AddressInfo).port)));

// The proof a network change is confirmed by (engine/confirmations.ts): name resolved now, a new
// TCP connection, a TLS handshake checked like the agent's stream. Real sockets, real TLS.
describe('fresh connection probe', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ibex-probe-'));
  const good = certificate(dir, 'ctl', 'DNS:localhost,IP:127.0.0.1');
  const other = certificate(dir, 'other', 'DNS:localhost,IP:127.0.0.1');
  const tlsServer = createTlsServer({ key: good.key, cert: good.cert, ALPNProtocols: ['h2'] }, (s) => s.end());
  const plain = createServer((s) => s.end());
  let tlsPort = 0;
  let plainPort = 0;
  before(async () => {
    tlsPort = await listen(tlsServer);
    plainPort = await listen(plain);
  });
  after(() => {
    tlsServer.close();
    plain.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('succeeds against a reachable controller: plaintext, TLS by IP, TLS by name (resolved)', async () => {
    await freshConnectionProbe({ secure: false, target: `127.0.0.1:${plainPort}` }, undefined)();
    await freshConnectionProbe({ secure: true, target: `127.0.0.1:${tlsPort}` }, good.cert)();
    await freshConnectionProbe({ secure: true, target: `localhost:${tlsPort}` }, good.cert)();
  });

  it('fails, saying why, when the name does not resolve, nothing listens, or the certificate is not the trusted one', async () => {
    await assert.rejects(freshConnectionProbe({ secure: false, target: `no-such-controller.invalid:${plainPort}` }, undefined)(), /cannot resolve the controller's name no-such-controller\.invalid/);
    const closed = createServer();
    const port = await listen(closed);
    await new Promise<void>((r) => closed.close(() => r()));
    await assert.rejects(freshConnectionProbe({ secure: false, target: `127.0.0.1:${port}` }, undefined)(), /a new connection to 127\.0\.0\.1:\d+ \(127\.0\.0\.1\) failed: .*ECONNREFUSED/);
    await assert.rejects(freshConnectionProbe({ secure: true, target: `127.0.0.1:${tlsPort}` }, other.cert)(), /a new TLS connection to .* failed: .*(self-signed|signature|verify)/i);
    const silent = createServer(() => {});
    const silentPort = await listen(silent);
    try {
      await assert.rejects(freshConnectionProbe({ secure: true, target: `127.0.0.1:${silentPort}` }, good.cert, 300)(), /no answer within 300 ms/);
    } finally {
      silent.close();
    }
  });
});
