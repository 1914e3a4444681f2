// tsyringe (used by @peculiar/x509) needs the Reflect metadata polyfill before it loads.
import 'reflect-metadata';
import { X509Certificate as NodeX509, createHash, createPrivateKey, randomBytes, webcrypto } from 'node:crypto';

type CryptoKey = webcrypto.CryptoKey;
type SigningAlgorithm = webcrypto.EcdsaParams | webcrypto.RsaHashedImportParams | webcrypto.Algorithm;
import { readFile } from 'node:fs/promises';
import { Inject, Injectable, Logger } from '@nestjs/common';
import * as x509 from '@peculiar/x509';
import { Clock } from '../common/clock.js';
import { ValidationFailed } from '../common/errors.js';
import { CONFIG, type Config } from '../config/config.js';
import type { Prisma } from '../generated/prisma/client.js';
import { PrismaService } from '../prisma/prisma.service.js';

x509.cryptoProvider.set(webcrypto as never);

const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
/** The generated CA lives this long; an operator rotates it by supplying their own. */
const CA_VALIDITY_MS = 20 * 365 * 86400_000;
/**
 * Certificates start a little in the past (5 min, or a tenth of a short validity), so a device
 * clock slightly behind still accepts them without moving the agent's renewal time much.
 */
const BACKDATE_MS = 5 * 60_000;
const CA_ROW = 'default';

interface LoadedCa {
  certPem: string;
  cert: x509.X509Certificate;
  signingKey: CryptoKey;
  signingAlgorithm: SigningAlgorithm;
  source: 'database' | 'files';
}

export interface IssuedCertificate {
  certificatePem: string;
  id: string;
  serial: string;
  fingerprint: string;
  notAfter: Date;
}

/**
 * The device CA (protocol.md "Device certificates"): signs the CSRs agents send at enrollment
 * and renewal. Generated on first start and kept in Postgres (one row; replicas starting at
 * once agree on the first one written), or an operator's CA from IBEX_DEVICE_CA_CERT/_KEY.
 */
@Injectable()
export class DeviceCa {
  private readonly log = new Logger('DeviceCa');
  private loaded?: Promise<LoadedCa>;

  constructor(
    @Inject(CONFIG) private readonly config: Config,
    private readonly prisma: PrismaService,
    private readonly clock: Clock,
  ) {}

  /** The CA certificate (PEM): what the gRPC server verifies client certificates against. */
  async certificatePem(): Promise<string> {
    return (await this.ca()).certPem;
  }

  /**
   * Verifies the CSR (its signature proves the agent holds the key) and issues a client
   * certificate for the device, recorded in `tx` so it exists exactly when the enrollment or
   * renewal that asked for it commits. `field` names the request field in errors.
   */
  async issue(tx: Prisma.TransactionClient, device: { id: string; name: string }, csrPem: string, field: string): Promise<IssuedCertificate> {
    const ca = await this.ca();
    const csr = await parseCsr(csrPem, field);
    const now = this.clock.now();
    // Whole seconds: X.509 times have no fractions, and the stored dates must be the certificate's.
    const notBefore = wholeSeconds(now.getTime() - Math.min(BACKDATE_MS, this.config.deviceCertValiditySec * 100));
    const notAfter = wholeSeconds(now.getTime() + this.config.deviceCertValiditySec * 1000);
    const serial = randomSerial();
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial,
      subject: [{ CN: [device.name] }],
      issuer: ca.cert.subjectName,
      notBefore,
      notAfter,
      publicKey: csr.publicKey,
      signingKey: ca.signingKey,
      signingAlgorithm: ca.signingAlgorithm,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth], false),
        // The device id in the certificate: a log line or a TLS proxy can tell whose it is.
        new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `urn:ibex:device:${device.id}` }], false),
        await x509.AuthorityKeyIdentifierExtension.create(ca.cert, false),
      ],
    });
    const pem = cert.toString('pem');
    const fingerprint = fingerprintOf(Buffer.from(cert.rawData));
    const row = await tx.deviceCertificate.create({
      data: { deviceId: device.id, serial: normalSerial(cert.serialNumber), fingerprint, notBefore, notAfter },
    });
    return { certificatePem: pem, id: row.id, serial: row.serial, fingerprint, notAfter };
  }

  private ca(): Promise<LoadedCa> {
    this.loaded ??= this.load().catch((err: unknown) => {
      this.loaded = undefined;
      throw err;
    });
    return this.loaded;
  }

  private async load(): Promise<LoadedCa> {
    if (this.config.deviceCa) {
      const { certFile, keyFile } = this.config.deviceCa;
      let certPem: string;
      let keyPem: string;
      try {
        [certPem, keyPem] = await Promise.all([readFile(certFile, 'utf8'), readFile(keyFile, 'utf8')]);
      } catch (err) {
        throw new Error(`the device CA in IBEX_DEVICE_CA_CERT/IBEX_DEVICE_CA_KEY cannot be read (${(err as Error).message}); fix the paths`);
      }
      const ca = await importCa(certPem, keyPem, 'files');
      this.log.log(`device CA from ${certFile}: ${ca.cert.subject}`);
      return ca;
    }
    let row = await this.prisma.deviceCa.findUnique({ where: { id: CA_ROW } });
    if (!row) {
      const made = await generateCa(this.clock.now());
      // Another replica may have written one meanwhile: the first row wins, everyone uses it.
      await this.prisma.deviceCa.createMany({ data: [{ id: CA_ROW, ...made }], skipDuplicates: true });
      row = await this.prisma.deviceCa.findUniqueOrThrow({ where: { id: CA_ROW } });
      if (row.certPem === made.certPem) this.log.log('generated the device CA and stored it in the database');
    }
    return importCa(row.certPem, row.keyPem, 'database');
  }
}

async function generateCa(now: Date): Promise<{ certPem: string; keyPem: string }> {
  const keys = (await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: [{ CN: ['Ibex device CA'] }],
    notBefore: new Date(now.getTime() - BACKDATE_MS),
    notAfter: new Date(now.getTime() + CA_VALIDITY_MS),
    keys,
    signingAlgorithm: EC_P256,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  return { certPem: cert.toString('pem'), keyPem: createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }).export({ format: 'pem', type: 'pkcs8' }).toString() };
}

/** Imports a CA (PEM certificate + PEM private key, EC P-256/P-384 or RSA) for signing. */
async function importCa(certPem: string, keyPem: string, source: LoadedCa['source']): Promise<LoadedCa> {
  const cert = new x509.X509Certificate(certPem);
  const nodeCert = new NodeX509(certPem);
  if (!nodeCert.ca) throw new Error(`the device CA certificate (${cert.subject}) is not a CA certificate (basicConstraints CA:TRUE); supply a CA`);
  const key = createPrivateKey(keyPem);
  if (!nodeCert.checkPrivateKey(key)) throw new Error('the device CA private key does not belong to its certificate; supply the matching key');
  const pkcs8 = key.export({ format: 'der', type: 'pkcs8' });
  let signingAlgorithm: LoadedCa['signingAlgorithm'];
  if (key.asymmetricKeyType === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    const namedCurve = curve === 'prime256v1' ? 'P-256' : curve === 'secp384r1' ? 'P-384' : undefined;
    if (!namedCurve) throw new Error(`the device CA key uses curve ${curve}; use P-256, P-384 or RSA`);
    signingAlgorithm = { name: 'ECDSA', namedCurve, hash: namedCurve === 'P-384' ? 'SHA-384' : 'SHA-256' } as webcrypto.EcdsaParams;
  } else if (key.asymmetricKeyType === 'rsa') {
    signingAlgorithm = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  } else {
    throw new Error(`the device CA key is ${key.asymmetricKeyType}; use an EC (P-256, P-384) or RSA key`);
  }
  const signingKey = await webcrypto.subtle.importKey('pkcs8', pkcs8, signingAlgorithm as webcrypto.EcKeyImportParams, false, ['sign']);
  return { certPem: cert.toString('pem'), cert, signingKey, signingAlgorithm, source };
}

/** Parses and verifies a PEM PKCS#10 request; bad input names the field. */
async function parseCsr(pem: string, field: string): Promise<x509.Pkcs10CertificateRequest> {
  const refuse = (problem: string) => new ValidationFailed(`invalid ${field}: ${problem}`, [{ path: field, message: problem }]);
  if (pem.length > 16 * 1024) throw refuse('is longer than 16 KiB');
  if (!/-----BEGIN CERTIFICATE REQUEST-----/.test(pem)) throw refuse('is not a PEM certificate request (-----BEGIN CERTIFICATE REQUEST-----)');
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(pem);
  } catch (err) {
    throw refuse(`cannot be parsed as PKCS#10 (${(err as Error).message})`);
  }
  let valid: boolean;
  try {
    valid = await csr.verify();
  } catch (err) {
    throw refuse(`its key or signature algorithm is not supported (${(err as Error).message}); use an EC P-256 key`);
  }
  if (!valid) throw refuse('its signature does not match its public key');
  const alg = csr.publicKey.algorithm as { name: string; namedCurve?: string; modulusLength?: number };
  const ok = (alg.name === 'ECDSA' && (alg.namedCurve === 'P-256' || alg.namedCurve === 'P-384')) || (alg.name.startsWith('RSA') && (alg.modulusLength ?? 0) >= 2048);
  if (!ok) throw refuse(`its key (${alg.name} ${alg.namedCurve ?? alg.modulusLength ?? ''}) is too weak or not supported; use EC P-256/P-384 or RSA >= 2048 bits`);
  return csr;
}

function wholeSeconds(ms: number): Date {
  return new Date(Math.floor(ms / 1000) * 1000);
}

/** 16 random bytes, positive and without a leading zero digit (so every tool prints it alike), as hex. */
function randomSerial(): string {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x10;
  return b.toString('hex');
}

/** Uppercase hex without colons or a leading 00 byte: how node:crypto and openssl print a serial. */
export function normalSerial(serial: string): string {
  return serial.replace(/[^0-9a-f]/gi, '').replace(/^(00)+(?=..)/, '').toUpperCase();
}

/** SHA-256 of a DER certificate, lowercase hex: the lookup key of a TLS peer certificate. */
export function fingerprintOf(der: Buffer): string {
  return createHash('sha256').update(der).digest('hex');
}
