import { Injectable } from '@nestjs/common';
import { AuditService } from '../../audit/audit.service.js';
import { Clock } from '../../common/clock.js';
import { Conflict, Unauthenticated } from '../../common/errors.js';
import { displayPrefix, hashSecret, newSecret } from '../../common/secrets.js';
import { Prisma } from '../../generated/prisma/client.js';
import { PrismaService } from '../../prisma/prisma.service.js';
import { DeviceCa } from '../../security/device-ca.service.js';
import type { EnrollInput } from '../agent-messages.schema.js';
import { generatedName, nameFromHostname, withSuffix } from './device-name.js';

export interface EnrolledDevice {
  deviceId: string;
  deviceName: string;
  /** The device credential; only its hash is stored, so this is the one time it exists. */
  credential: string;
  labels: Record<string, string>;
  /** The device's client certificate (PEM) when the request carried a CSR, else empty. */
  certificatePem: string;
}

type Tx = Prisma.TransactionClient;

/** Derived names that clash are retried with a new suffix this many times. */
const NAME_ATTEMPTS = 5;

/** Trades an enrollment token for a device identity (protocol.md "Enroll"). */
@Injectable()
export class EnrollmentRedemption {
  constructor(
    private readonly prisma: PrismaService,
    private readonly audit: AuditService,
    private readonly clock: Clock,
    private readonly ca: DeviceCa,
  ) {}

  async redeem(input: EnrollInput): Promise<EnrolledDevice> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.prisma.$transaction((tx) => this.redeemIn(tx, input, attempt), { maxWait: 10_000, timeout: 15_000 });
      } catch (err) {
        // Two enrollments deriving the same name at once: the loser tries another suffix.
        if (!isNameClash(err)) throw err;
        if (input.name) throw nameTaken(input.name);
        if (attempt + 1 >= NAME_ATTEMPTS) throw new Conflict('could not find a free device name; pass an explicit name to `ibex-agent enroll --name`');
      }
    }
  }

  private async redeemIn(tx: Tx, input: EnrollInput, attempt: number): Promise<EnrolledDevice> {
    const token = await this.claimToken(tx, input.enrollmentToken);
    const name = await this.chooseName(tx, input, attempt);
    const labels = stringRecord(token.labels);
    const device = await tx.device.create({
      data: {
        name,
        labels,
        enrollmentTokenId: token.id,
        ...(input.facts ? { facts: input.facts as Prisma.InputJsonValue } : {}),
        ...(input.agentVersion ? { agentVersion: input.agentVersion } : {}),
      },
    });
    const credential = newSecret('deviceCredential');
    await tx.deviceCredential.create({ data: { deviceId: device.id, hash: hashSecret(credential) } });
    const certificate = input.csrPem ? await this.ca.issue(tx, { id: device.id, name }, input.csrPem, 'csr_pem') : undefined;
    await this.audit.record(
      {
        actor: { type: 'device', id: device.id, name },
        action: 'device.enroll',
        target: { type: 'device', id: device.id },
        data: { enrollmentTokenId: token.id, agentVersion: input.agentVersion, hostname: input.facts?.hostname ?? null, certificateSerial: certificate?.serial ?? null },
      },
      tx,
    );
    return { deviceId: device.id, deviceName: name, credential, labels, certificatePem: certificate?.certificatePem ?? '' };
  }

  /**
   * Counts one use of the token, or refuses. The conditional UPDATE is what makes `maxUses`
   * race-safe: concurrent redemptions queue on the row lock and re-check `uses` in turn.
   */
  private async claimToken(tx: Tx, secret: string): Promise<{ id: string; labels: unknown }> {
    const hash = hashSecret(secret);
    const now = this.clock.now();
    const rows = await tx.$queryRaw<{ id: string; labels: unknown }[]>`
      UPDATE enrollment_token SET uses = uses + 1
      WHERE hash = ${hash}
        AND "revokedAt" IS NULL
        AND "expiresAt" > (${now.toISOString()}::timestamptz AT TIME ZONE 'UTC')
        AND ("maxUses" IS NULL OR uses < "maxUses")
      RETURNING id, labels`;
    const claimed = rows[0];
    if (claimed) return claimed;

    const token = await tx.enrollmentToken.findUnique({ where: { hash } });
    const next = 'ask an operator for a new enrollment token';
    if (!token) throw new Unauthenticated(`enrollment token ${displayPrefix(secret)}… is not recognised; ${next}`);
    const shown = `${token.prefix}…`;
    if (token.revokedAt) throw new Unauthenticated(`enrollment token ${shown} was revoked; ${next}`);
    if (token.expiresAt <= now) throw new Unauthenticated(`enrollment token ${shown} expired at ${token.expiresAt.toISOString()}; ${next}`);
    throw new Unauthenticated(`enrollment token ${shown} has been used ${token.uses} of ${token.maxUses} times; ${next}`);
  }

  /**
   * The requested name, else one derived from the hostname, else `device-<8 hex>`. A derived
   * name that is taken gets a `-<4 hex>` suffix; a requested one that is taken is refused.
   */
  private async chooseName(tx: Tx, input: EnrollInput, attempt: number): Promise<string> {
    if (input.name) {
      if (await tx.device.findUnique({ where: { name: input.name }, select: { id: true } })) throw nameTaken(input.name);
      return input.name;
    }
    const base = nameFromHostname(input.facts?.hostname ?? '') ?? generatedName();
    if (attempt === 0 && !(await tx.device.findUnique({ where: { name: base }, select: { id: true } }))) return base;
    let candidate = withSuffix(base);
    for (let i = 0; i < 8 && (await tx.device.findUnique({ where: { name: candidate }, select: { id: true } })); i++) candidate = withSuffix(base);
    return candidate; // still taken: the unique index refuses it and redeem() tries again
  }
}

function nameTaken(name: string): Conflict {
  return new Conflict(`device name "${name}" is already taken by another device; choose another name, or leave it empty to derive one from the hostname`);
}

/** The only unique column a redemption can collide on is device.name. */
function isNameClash(err: unknown): boolean {
  return err instanceof Prisma.PrismaClientKnownRequestError && err.code === 'P2002';
}

function stringRecord(value: unknown): Record<string, string> {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return {};
  return Object.fromEntries(Object.entries(value).filter((e): e is [string, string] => typeof e[1] === 'string'));
}
