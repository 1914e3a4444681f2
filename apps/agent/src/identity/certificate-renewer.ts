import { type ChannelCredentials, Metadata, credentials, status as grpcStatus, type ServiceError } from '@grpc/grpc-js';
import { AgentServiceClient, type RenewCertificateResponse } from '@ibex/proto';
import { errorMessage } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import type { ControllerUrl } from '../connection/controller-url.js';
import { type DeviceCertificate, readDeviceCertificate, renewalDueAtMs, writeDeviceCertificate } from './certificate-store.js';
import { newKeyAndCsr } from './csr.js';

const RENEW_DEADLINE_MS = 30_000;
/** How often the renewer looks at the clock at most (a short validity is checked more often). */
const MAX_CHECK_MS = 3600_000;
/** After a failed renewal: try again after a fifth of the time left, between 1 s and a minute. */
const RETRY_MAX_MS = 60_000;

export interface CertificateRenewerOptions {
  path: string;
  url: ControllerUrl;
  caPem?: Buffer;
  credential: string;
  deviceName: string;
  log: Logger;
  now?: () => number;
}

/**
 * Keeps the device certificate (certificate.json) fresh: once two thirds of its lifetime have
 * passed it makes a new key pair, asks the controller to sign it (RenewCertificate,
 * authenticated by the current certificate) and replaces key and certificate in one atomic
 * write. The stream in progress keeps its TLS session; the next connection uses the new pair.
 */
export class CertificateRenewer {
  private current: DeviceCertificate | undefined;
  private timer?: NodeJS.Timeout;
  private renewing?: Promise<void>;
  private retryAtMs = 0;
  private readonly now: () => number;

  constructor(private readonly opts: CertificateRenewerOptions) {
    this.now = opts.now ?? Date.now;
    this.current = readDeviceCertificate(opts.path);
  }

  /** The key and certificate to connect with (undefined: enrolled without one). */
  get certificate(): DeviceCertificate | undefined {
    return this.current;
  }

  start(): void {
    if (!this.current || this.timer) return;
    const lifetime = this.current.notAfterMs - this.current.notBeforeMs;
    const every = Math.max(1000, Math.min(MAX_CHECK_MS, Math.floor(lifetime / 20)));
    this.timer = setInterval(() => void this.renewIfDue(), every);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Renews when due (one renewal at a time); never throws: a failure is logged and retried. */
  renewIfDue(): Promise<void> {
    const c = this.current;
    if (!c || this.now() < renewalDueAtMs(c) || this.now() < this.retryAtMs) return Promise.resolve();
    this.renewing ??= this.renew(c).finally(() => (this.renewing = undefined));
    return this.renewing;
  }

  private async renew(c: DeviceCertificate): Promise<void> {
    const { log } = this.opts;
    const { keyPem, csrPem } = newKeyAndCsr(this.opts.deviceName);
    const client = new AgentServiceClient(this.opts.url.target, this.channelCredentials(c));
    const md = new Metadata();
    md.set('authorization', `Bearer ${this.opts.credential}`);
    try {
      const res = await new Promise<RenewCertificateResponse>((resolve, reject) =>
        client.renewCertificate({ csrPem }, md, { deadline: this.now() + RENEW_DEADLINE_MS }, (err, r) => (err ? reject(err) : resolve(r))),
      );
      this.current = writeDeviceCertificate(this.opts.path, keyPem, res.certificatePem);
      log.info('device certificate renewed', { serial: this.current.serial, notAfter: new Date(this.current.notAfterMs).toISOString(), previousSerial: c.serial });
    } catch (err) {
      this.retryAtMs = this.now() + Math.min(RETRY_MAX_MS, Math.max(1000, Math.floor((c.notAfterMs - this.now()) / 5)));
      const e = err as ServiceError;
      const expired = this.now() >= c.notAfterMs;
      log.error(expired ? 'the device certificate expired before it could be renewed: re-enroll (ibex-agent enroll --force ...)' : 'renewing the device certificate failed; retrying', {
        code: typeof e.code === 'number' ? (grpcStatus[e.code] ?? e.code) : undefined,
        error: e.details ?? errorMessage(err),
        notAfter: new Date(c.notAfterMs).toISOString(),
      });
    } finally {
      client.close();
    }
  }

  private channelCredentials(c: DeviceCertificate): ChannelCredentials {
    return this.opts.url.secure ? credentials.createSsl(this.opts.caPem ?? null, Buffer.from(c.keyPem), Buffer.from(c.certificatePem)) : credentials.createInsecure();
  }
}
