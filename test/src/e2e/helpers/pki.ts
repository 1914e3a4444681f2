// Certificates for the mTLS tests: the controller's server certificate and a foreign CA made
// with the openssl CLI; a certificate signed by the controller's own device CA with chosen
// dates (an expired one) made with @peculiar/x509, since openssl 3.0 cannot back-date.
import 'reflect-metadata';
import { createPrivateKey, generateKeyPairSync, webcrypto } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { execOk } from './exec.js';

x509.cryptoProvider.set(webcrypto as never);

export interface PemPair {
  keyFile: string;
  certFile: string;
  keyPem: string;
  certPem: string;
}

/** A self-signed server certificate for these IP addresses (also the agents' --ca). */
export async function serverCertificate(dir: string, ips: string[]): Promise<PemPair> {
  const keyFile = join(dir, 'server.key');
  const certFile = join(dir, 'server.pem');
  await execOk('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-subj', '/CN=ibex-test-controller',
    '-addext', `subjectAltName=${ips.map((ip) => `IP:${ip}`).join(',')}`, '-keyout', keyFile, '-out', certFile]);
  return { keyFile, certFile, keyPem: await readFile(keyFile, 'utf8'), certPem: await readFile(certFile, 'utf8') };
}

/** A CA the controller never heard of, and a client certificate it issued (openssl). */
export async function foreignClientCertificate(dir: string, cn: string): Promise<PemPair> {
  const ca = (f: string) => join(dir, `foreign-ca.${f}`);
  const cl = (f: string) => join(dir, `foreign-client.${f}`);
  await execOk('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-subj', '/CN=Foreign CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign', '-keyout', ca('key'), '-out', ca('pem')]);
  await execOk('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', `/CN=${cn}`, '-keyout', cl('key'), '-out', cl('csr')]);
  await execOk('openssl', ['x509', '-req', '-in', cl('csr'), '-CA', ca('pem'), '-CAkey', ca('key'), '-CAcreateserial', '-days', '1', '-out', cl('pem')]);
  return { keyFile: cl('key'), certFile: cl('pem'), keyPem: await readFile(cl('key'), 'utf8'), certPem: await readFile(cl('pem'), 'utf8') };
}

/** A client certificate signed by the given CA (PEM cert + PKCS#8 key), valid between the dates. */
export async function signedBy(caCertPem: string, caKeyPem: string, cn: string, notBefore: Date, notAfter: Date): Promise<{ keyPem: string; certPem: string; der: Buffer; serial: string }> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const caKey = await webcrypto.subtle.importKey('pkcs8', createPrivateKey(caKeyPem).export({ format: 'der', type: 'pkcs8' }), alg, false, ['sign']);
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const pub = await webcrypto.subtle.importKey('spki', publicKey.export({ format: 'der', type: 'spki' }), alg, true, ['verify']);
  const cert = await x509.X509CertificateGenerator.create({
    subject: `CN=${cn}`,
    issuer: new x509.X509Certificate(caCertPem).subject,
    notBefore,
    notAfter,
    publicKey: pub,
    signingKey: caKey,
    signingAlgorithm: alg,
    extensions: [new x509.BasicConstraintsExtension(false, undefined, true), new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth])],
  });
  return { keyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(), certPem: cert.toString('pem'), der: Buffer.from(cert.rawData), serial: cert.serialNumber };
}
