import { lookup } from 'node:dns/promises';
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { errorMessage } from '../common/errors.js';
import type { ControllerUrl } from './controller-url.js';

/** Resolves when a brand-new connection to the controller works; rejects saying what failed. */
export type FreshConnectionProbe = () => Promise<void>;

const PROBE_TIMEOUT_MS = 10_000;

/** `host:port` or `[v6]:port` -> its parts. */
function splitTarget(target: string): { host: string; port: number } {
  const m = /^\[(.+)\]:(\d+)$/.exec(target) ?? /^(.+):(\d+)$/.exec(target);
  if (!m) throw new Error(`controller target ${target} is not host:port`);
  return { host: m[1]!, port: Number(m[2]) };
}

/**
 * Proves that a network change left the device able to reach the controller from scratch, not
 * only over the stream that was open before it (an established TCP connection survives many
 * changes that break new ones: a wrong default route, a lost DNS server, a firewall that only
 * lets established traffic through). It resolves the controller's name now (no cache), opens a
 * new TCP connection, and for grpcs:// completes a TLS handshake verified against the same CA
 * and name as the agent's stream (ALPN h2); then it closes it.
 */
export function freshConnectionProbe(
  url: ControllerUrl,
  caPem: Buffer | undefined,
  timeoutMs = PROBE_TIMEOUT_MS,
  /** The device's certificate under mutual TLS: a controller that requires one ends a handshake without it. */
  clientCertificate?: () => { keyPem: string; certificatePem: string } | undefined,
): FreshConnectionProbe {
  const { host, port } = splitTarget(url.target);
  return async () => {
    let address = host;
    if (!isIP(host)) {
      try {
        address = (await withTimeout(lookup(host), timeoutMs, `resolving ${host}`)).address;
      } catch (err) {
        throw new Error(`cannot resolve the controller's name ${host}: ${errorMessage(err)}`);
      }
    }
    await new Promise<void>((resolve, reject) => {
      let socket: Socket;
      const fail = (err: Error) => {
        clearTimeout(timer);
        socket.destroy();
        reject(new Error(`a new ${url.secure ? 'TLS ' : ''}connection to ${url.target} (${address}) failed: ${err.message}`));
      };
      const ok = () => {
        clearTimeout(timer);
        socket.destroy();
        resolve();
      };
      const timer = setTimeout(() => fail(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      // The certificate is checked against the name (servername), or against the IP when the URL has one.
      socket = url.secure
        ? tlsConnect({ host: address, port, servername: isIP(host) ? undefined : host, ca: caPem, ALPNProtocols: ['h2'], rejectUnauthorized: true, ...clientKeyPair(clientCertificate) }, ok)
        : netConnect({ host: address, port }, ok);
      socket.once('error', fail);
    });
  };
}

function clientKeyPair(get?: () => { keyPem: string; certificatePem: string } | undefined): { key?: string; cert?: string } {
  const mine = get?.();
  return mine ? { key: mine.keyPem, cert: mine.certificatePem } : {};
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_, reject) => (t = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms)))]).finally(() => clearTimeout(t));
}
