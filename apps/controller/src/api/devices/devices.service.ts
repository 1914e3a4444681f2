import { Inject, Injectable, Logger } from '@nestjs/common';
import type pg from 'pg';
import { z } from 'zod';
import { labelsSchema } from '@ibex/spec';
import { AuditService } from '../../audit/audit.service.js';
import { Clock } from '../../common/clock.js';
import { NotFound, Unavailable, ValidationFailed } from '../../common/errors.js';
import { CONFIG, type Config } from '../../config/config.js';
import { AGENT_DELIVERY, type AgentDelivery } from '../../delivery/agent-delivery.port.js';
import { type Device, Prisma } from '../../generated/prisma/client.js';
import { PrismaService } from '../../prisma/prisma.service.js';
import { decodeCursor, encodeCursor } from '../http/pagination.js';
import type { Caller } from '../http/request-context.js';
import { isUuid } from '../http/schemas.js';
import { schemaIssues } from '../http/schema-validation.pipe.js';
import { deviceByIdQuery, devicePageQuery } from './device-filter.js';
import { type DeviceViewRow, deviceViewSql, labelsOf, withGenerations } from './device-view.js';
import type { DeviceView, ListDevicesQuery, PatchDeviceBody } from './devices.dto.js';

type Tx = Prisma.TransactionClient;
const nameCursor = z.object({ name: z.string() });

/** Devices as operators see and change them. Enrollment and presence are the gateway's. */
@Injectable()
export class DevicesService {
  private readonly log = new Logger('Devices');

  constructor(
    private readonly prisma: PrismaService,
    private readonly audit: AuditService,
    private readonly clock: Clock,
    @Inject(CONFIG) private readonly config: Config,
    @Inject(AGENT_DELIVERY) private readonly delivery: AgentDelivery,
  ) {}

  /** The device as the API shows it (built by the same SQL as each item of the list). */
  async view(d: Device): Promise<DeviceView> {
    const { rows } = await this.query<DeviceViewRow>(deviceByIdQuery(d.id, deviceViewSql(this.onlineSince())));
    if (!rows[0]) throw new NotFound(`device "${d.name}" was deleted meanwhile`);
    return JSON.parse(withGenerations(rows[0])) as DeviceView;
  }

  private onlineSince(): Date {
    return new Date(this.clock.now().getTime() - this.config.offlineAfterMs);
  }

  /** A read through the pool directly: rows as pg decodes them, without Prisma's row mapping. */
  private query<R extends pg.QueryResultRow>(sql: Prisma.Sql): Promise<pg.QueryResult<R>> {
    return this.prisma.pool.query<R>(sql.text, sql.values as unknown[]);
  }

  /** A device by id (uuid) or name. */
  async find(ref: string, tx: Tx = this.prisma): Promise<Device> {
    const d = (isUuid(ref) ? await tx.device.findUnique({ where: { id: ref.toLowerCase() } }) : null) ?? (await tx.device.findUnique({ where: { name: ref } }));
    if (!d) throw new NotFound(`device "${ref}" not found (give its id or name); list devices with GET /api/v1/devices`);
    return d;
  }

  /** Like find, and holds the row lock until the transaction ends (serialises changes to one device). */
  async findForUpdate(tx: Tx, ref: string): Promise<Device> {
    const found = await this.find(ref, tx);
    await tx.$queryRaw`SELECT id FROM device WHERE id = ${found.id}::uuid FOR UPDATE`;
    const d = await tx.device.findUnique({ where: { id: found.id } });
    if (!d) throw new NotFound(`device "${ref}" was deleted meanwhile`);
    return d;
  }

  /**
   * One page, as the JSON text of a DevicePage (devices.dto.ts): the view of each device is
   * built by Postgres (device-view.ts deviceViewSql), so a page costs this process next to nothing.
   */
  async listJson(q: ListDevicesQuery): Promise<string> {
    const onlineSince = this.onlineSince();
    const filter = { terms: q.selector ?? [], status: q.status, sync: q.sync, onlineSince, afterName: q.cursor ? decodeCursor(nameCursor, q.cursor).name : undefined };
    const { rows } = await this.query<DeviceViewRow & { name: string }>(devicePageQuery(filter, q.limit + 1, deviceViewSql(onlineSince)));
    const page = rows.slice(0, q.limit);
    const last = page[page.length - 1];
    const nextCursor = rows.length > q.limit && last ? encodeCursor({ name: last.name }) : null;
    return `{"items":[${page.map(withGenerations).join(',')}],"nextCursor":${JSON.stringify(nextCursor)}}`;
  }

  async get(ref: string): Promise<DeviceView> {
    return this.view(await this.find(ref));
  }

  /** Merges labels (null removes one); the result must still be a valid label set. */
  async patch(caller: Caller, ref: string, body: PatchDeviceBody): Promise<DeviceView> {
    const d = await this.prisma.$transaction(async (tx) => {
      const before = await this.findForUpdate(tx, ref);
      const labels = labelsOf(before.labels);
      const set: Record<string, string> = {};
      const removed: string[] = [];
      for (const [k, v] of Object.entries(body.labels)) {
        if (v === null) {
          if (Object.hasOwn(labels, k)) removed.push(k);
          delete labels[k];
        } else {
          set[k] = v;
          labels[k] = v;
        }
      }
      const checked = labelsSchema.safeParse(labels);
      if (!checked.success) {
        const issues = schemaIssues(checked.error.issues, 'labels');
        throw new ValidationFailed(`device "${before.name}" would get invalid labels: ${issues.map((i) => i.message).join('; ')}`, issues);
      }
      const after = await tx.device.update({ where: { id: before.id }, data: { labels: checked.data } });
      await this.audit.record({ actor: caller.actor, action: 'device.update', target: { type: 'device', id: before.id }, data: { name: before.name, set, removed }, requestId: caller.requestId }, tx);
      return after;
    });
    return this.view(d);
  }

  /**
   * Revokes the device and all its credentials and certificates, then closes its stream. Revoking again changes
   * nothing but still asks for the stream to be closed.
   */
  async revoke(caller: Caller, ref: string): Promise<DeviceView> {
    const now = this.clock.now();
    const d = await this.prisma.$transaction(async (tx) => {
      const before = await this.findForUpdate(tx, ref);
      if (before.revokedAt) return before;
      const after = await tx.device.update({ where: { id: before.id }, data: { revokedAt: now } });
      const creds = await tx.deviceCredential.updateMany({ where: { deviceId: before.id, revokedAt: null }, data: { revokedAt: now } });
      const certs = await tx.deviceCertificate.updateMany({ where: { deviceId: before.id, revokedAt: null }, data: { revokedAt: now } });
      await this.audit.record(
        {
          actor: caller.actor,
          action: 'device.revoke',
          target: { type: 'device', id: before.id },
          data: { name: before.name, credentialsRevoked: creds.count, certificatesRevoked: certs.count },
          requestId: caller.requestId,
        },
        tx,
      );
      return after;
    });
    await this.disconnect(d, 'revoked', caller);
    return this.view(d);
  }

  /** Deletes the device with its revisions, states and jobs, then closes its stream. */
  async remove(caller: Caller, ref: string): Promise<void> {
    const d = await this.prisma.$transaction(async (tx) => {
      const d = await this.findForUpdate(tx, ref);
      await tx.device.delete({ where: { id: d.id } });
      await this.audit.record({ actor: caller.actor, action: 'device.delete', target: { type: 'device', id: d.id }, data: { name: d.name, labels: labelsOf(d.labels) }, requestId: caller.requestId }, tx);
      return d;
    });
    await this.disconnect(d, 'deleted', caller);
  }

  // The change is committed either way (a revoked credential cannot reconnect), but an open
  // stream stays open until this succeeds: say so, so the operator retries.
  private async disconnect(d: Device, change: 'revoked' | 'deleted', caller: Caller): Promise<void> {
    try {
      await this.delivery.disconnect(d.id, `device ${change} by ${caller.actor.name}`);
    } catch (err) {
      this.log.error(`closing the stream of device ${d.name} (${d.id}) failed: ${(err as Error).message}`);
      throw new Unavailable(`device "${d.name}" is ${change}, but closing its open stream failed (${(err as Error).message}); retry the request`);
    }
  }
}
