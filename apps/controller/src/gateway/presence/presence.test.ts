import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import type { FakeAgent } from '../../testing/fake-agent.js';
import { startTestController, type TestController } from '../../testing/test-controller.js';
import { waitFor } from '../../testing/wait-for.js';
import pg from 'pg';
import { connectedDevice, enrollDevice } from '../testing/fixtures.js';
import { PresenceService } from './presence.service.js';

const FLUSH_MS = 300;

describe('presence', () => {
  let c: TestController;
  const agents: FakeAgent[] = [];

  before(async () => {
    c = await startTestController({ env: { IBEX_PRESENCE_FLUSH_MS: String(FLUSH_MS), IBEX_HEARTBEAT_INTERVAL_MS: '200', IBEX_OFFLINE_AFTER_MS: '60000' } });
  });
  after(async () => {
    for (const a of agents) a.close();
    await c?.close();
  });

  it('writes heartbeats to lastSeenAt in batched UPDATEs, each heartbeat visible within a flush interval', async () => {
    const devices = await Promise.all(Array.from({ length: 5 }, (_, i) => connectedDevice(c, `beat-${i}`)));
    for (const d of devices) agents.push(d.agent);
    // Count what reaches the device table, in the database itself.
    await c.prisma.$executeRawUnsafe(`CREATE TABLE presence_probe (statements int NOT NULL DEFAULT 0, rows int NOT NULL DEFAULT 0)`);
    await c.prisma.$executeRawUnsafe(`INSERT INTO presence_probe VALUES (0, 0)`);
    await c.prisma.$executeRawUnsafe(`CREATE FUNCTION probe_stmt() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN UPDATE presence_probe SET statements = statements + 1; RETURN NULL; END $$`);
    await c.prisma.$executeRawUnsafe(`CREATE FUNCTION probe_row() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN UPDATE presence_probe SET rows = rows + 1; RETURN NULL; END $$`);
    await c.prisma.$executeRawUnsafe(`CREATE TRIGGER probe_stmt AFTER UPDATE ON device FOR EACH STATEMENT EXECUTE FUNCTION probe_stmt()`);
    await c.prisma.$executeRawUnsafe(`CREATE TRIGGER probe_row AFTER UPDATE ON device FOR EACH ROW EXECUTE FUNCTION probe_row()`);
    const stats = c.app.get(PresenceService).stats;
    const statsBefore = { ...stats };

    const rounds = 20;
    const started = Date.now();
    // Taken just before the last round is sent: the controller stamps a heartbeat when it
    // arrives, so never earlier than this (a time taken after the last sleep could be later
    // than that stamp when the machine is loaded, and the wait below would never end).
    let lastSent = 0;
    for (let seq = 1; seq <= rounds; seq++) {
      if (seq === rounds) lastSent = Date.now();
      for (const d of devices) d.agent.heartbeat(seq);
      await sleep(50);
    }
    const ids = devices.map((d) => d.device.deviceId);
    const seenAt = await waitFor(
      'every last heartbeat in lastSeenAt',
      async () => {
        const rows = await c.prisma.device.findMany({ where: { id: { in: ids } }, select: { lastSeenAt: true } });
        return rows.every((r) => r.lastSeenAt && r.lastSeenAt.getTime() >= lastSent) && Date.now();
      },
      { intervalMs: 10 },
    );
    const elapsed = Date.now() - started;
    assert.ok(seenAt - lastSent <= FLUSH_MS + 1000, `the last heartbeat took ${seenAt - lastSent} ms to reach lastSeenAt (flush every ${FLUSH_MS} ms)`);

    const [probe] = await c.prisma.$queryRawUnsafe<{ statements: number; rows: number }[]>(`SELECT statements, rows FROM presence_probe`);
    const heartbeats = rounds * devices.length;
    const flushesPossible = Math.ceil(elapsed / FLUSH_MS) + 1;
    assert.ok(probe!.statements <= flushesPossible, `${probe!.statements} UPDATE statements for ${heartbeats} heartbeats in ${elapsed} ms`);
    assert.ok(probe!.statements * 10 < heartbeats, `${probe!.statements} statements is not batched for ${heartbeats} heartbeats`);
    assert.ok(probe!.rows <= probe!.statements * devices.length, `${probe!.rows} rows: at most one per device per statement`);
    assert.equal(stats.statements - statsBefore.statements, probe!.statements, 'every device UPDATE in the window was a presence flush');
  });

  it('does not wait for device rows another transaction holds: the others are written, the locked one on a later flush (no stall, no deadlock)', async () => {
    const presence = c.app.get(PresenceService);
    const free = await enrollDevice(c, 'presence-free');
    const held = await enrollDevice(c, 'presence-held');
    // A long transaction holding one device row, as a rollout writing desired revisions does.
    await c.prisma.device.updateMany({ where: { id: { in: [free.deviceId, held.deviceId] } }, data: { lastSeenAt: null } });
    const locker = new pg.Client({ connectionString: c.db.url });
    await locker.connect();
    try {
      await locker.query('BEGIN');
      await locker.query('SELECT id FROM device WHERE id = $1 FOR UPDATE', [held.deviceId]);
      const skippedBefore = presence.stats.skipped;
      const at = Date.now();
      presence.touch(free.deviceId);
      presence.touch(held.deviceId);
      const flushed = await Promise.race([presence.flush().then(() => true), sleep(5000).then(() => false)]);
      assert.ok(flushed, 'the flush waited for the locked row');
      const seen = async (id: string) => (await c.prisma.device.findUniqueOrThrow({ where: { id }, select: { lastSeenAt: true } })).lastSeenAt?.getTime() ?? 0;
      assert.ok((await seen(free.deviceId)) >= at - 5, 'the free device was written');
      assert.equal(await seen(held.deviceId), 0, 'the locked device was not written (it was locked)');
      assert.ok(presence.stats.skipped - skippedBefore >= 1, 'counted as skipped');
      await locker.query('COMMIT');
      await waitFor('the locked device written on a later flush', async () => (await seen(held.deviceId)) >= at - 5, { intervalMs: 50 });
    } finally {
      await locker.end();
    }
  });
});
