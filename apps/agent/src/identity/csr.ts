import { type KeyObject, createPrivateKey, createPublicKey, generateKeyPairSync, sign } from 'node:crypto';

/**
 * The device's key pair and its PKCS#10 certificate request (RFC 2986), made with node:crypto
 * alone: the agent ships as one binary and needs no X.509 library for this. The DER below is
 * the fixed shape of a request with an EC P-256 key, a CN subject, no attributes, signed
 * ecdsa-with-SHA256; the controller parses and verifies it with a full X.509 implementation.
 */
export interface DeviceKeyRequest {
  /** PKCS#8 PEM private key: stays on the device (0600). */
  keyPem: string;
  csrPem: string;
}

export function newKeyAndCsr(commonName: string): DeviceKeyRequest {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return { keyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(), csrPem: csrFor(privateKey, publicKey, commonName) };
}

/** A CSR for an existing key (PEM): renewal may keep the key, tests use it too. */
export function csrForKey(keyPem: string, commonName: string): string {
  const privateKey = createPrivateKey(keyPem);
  return csrFor(privateKey, undefined, commonName);
}

function csrFor(privateKey: KeyObject, publicKey: KeyObject | undefined, commonName: string): string {
  const spki = (publicKey ?? createPublicKey(privateKey)).export({ format: 'der', type: 'spki' });
  const subject = seq(set(seq(oid(OID_CN), utf8(commonName.slice(0, 64) || 'ibex-device'))));
  // version 0, subject, subjectPKInfo, attributes [0] (empty)
  const info = seq(int0(), subject, spki, Buffer.from([0xa0, 0x00]));
  const signature = sign('sha256', info, privateKey); // DER ECDSA-Sig-Value
  const der = seq(info, seq(oid(OID_ECDSA_SHA256)), bitString(signature));
  return `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END CERTIFICATE REQUEST-----\n`;
}

const OID_CN = [2, 5, 4, 3];
const OID_ECDSA_SHA256 = [1, 2, 840, 10045, 4, 3, 2];

function tlv(tag: number, body: Buffer): Buffer {
  const n = body.length;
  const len = n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : Buffer.from([0x82, n >> 8, n & 0xff]);
  return Buffer.concat([Buffer.from([tag]), len, body]);
}
const seq = (...parts: Buffer[]) => tlv(0x30, Buffer.concat(parts));
const set = (...parts: Buffer[]) => tlv(0x31, Buffer.concat(parts));
const int0 = () => Buffer.from([0x02, 0x01, 0x00]);
const utf8 = (s: string) => tlv(0x0c, Buffer.from(s, 'utf8'));
const bitString = (b: Buffer) => tlv(0x03, Buffer.concat([Buffer.from([0x00]), b]));

function oid(arcs: number[]): Buffer {
  const bytes = [40 * arcs[0]! + arcs[1]!];
  for (const arc of arcs.slice(2)) {
    const chunk = [arc & 0x7f];
    for (let v = arc >>> 7; v > 0; v >>>= 7) chunk.unshift((v & 0x7f) | 0x80);
    bytes.push(...chunk);
  }
  return tlv(0x06, Buffer.from(bytes));
}
