import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Cleanup } from './cleanup.js';

const run = promisify(execFile);

export interface ServerCertificate {
  certFile: string;
  keyFile: string;
  /** Also what the simulated agents trust (their --ca). */
  certPem: string;
}

/**
 * A self-signed P-256 server certificate for 127.0.0.1 made with the openssl CLI, in a temporary
 * directory removed by `cleanup` (as the device identity e2e test makes its own).
 */
export async function makeServerCertificate(cleanup: Cleanup): Promise<ServerCertificate> {
  const dir = await mkdtemp(join(tmpdir(), 'ibex-bench-tls-'));
  cleanup.add(`remove ${dir}`, () => rm(dir, { recursive: true, force: true }));
  const keyFile = join(dir, 'server.key');
  const certFile = join(dir, 'server.pem');
  await run('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
    '-subj', '/CN=ibex-bench-controller', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', keyFile, '-out', certFile,
  ]).catch((err: Error & { stderr?: string }) => {
    throw new Error(`openssl could not make the server certificate (is openssl installed?): ${err.stderr || err.message}`);
  });
  return { certFile, keyFile, certPem: await readFile(certFile, 'utf8') };
}
