import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { createDevice, expectStatus } from '../../testing/api-fixtures.js';
import { changedTables, dbFingerprint, type DbFingerprint } from '../../testing/db-fingerprint.js';
import { assertForBudget, fuzzSettings } from '../../testing/fuzz-values.js';
import { startTestController, type TestController } from '../../testing/test-controller.js';
import { type Fixtures, type FuzzCase, fuzzCases, type OpenApiDoc, type Operation, operations, resolve } from './openapi-cases.js';

// apps/controller/dist/api/fuzz -> the repository root (or IBEX_REPO as scripts/test.mjs sets it).
const repo = process.env['IBEX_REPO'] ?? fileURLToPath(new URL('../../../../../', import.meta.url));
const doc = JSON.parse(readFileSync(join(repo, 'docs', 'openapi.json'), 'utf8')) as OpenApiDoc;
const ops = operations(doc);
// IBEX_FUZZ_ONLY=PlanController narrows a long run to the operations whose id matches.
const only = process.env['IBEX_FUZZ_ONLY'] ? new RegExp(process.env['IBEX_FUZZ_ONLY']) : undefined;
const trace = !!process.env['IBEX_FUZZ_TRACE'];
const { seed, msPerOp } = fuzzSettings();

/**
 * A valid body for every operation that takes one: the fuzzer breaks it one way at a time.
 * The schema's own example where it has one.
 */
const VALID_BODIES: Record<string, unknown> = {
  ApiTokensController_create: { name: 'fuzz', role: 'viewer' },
  DevicesController_patch: { labels: { fuzz: 'yes' } },
  DesiredStateController_put: {
    spec: {
      files: { entries: [{ path: '/etc/motd', content: 'managed\n', mode: '0644' }] },
      generations: { volume: '/mnt/ibex-root', fallbacks: 2, health: { deadlineSec: 60, checks: [['/bin/true']] } },
    },
    message: 'fuzz',
  },
  JobsController_create: { type: 'facts.collect', timeoutSeconds: 60, params: {} },
  EnrollmentTokensController_create: { description: 'fuzz', labels: { site: 'lab' }, maxUses: 2 },
  RolloutsController_create: {
    name: 'fuzz-rollout',
    target: { kind: 'selector', selector: 'site=lab' },
    payload: { kind: 'generation_rollback', toGeneration: 'g1' },
    strategy: { canary: { count: 1 }, maxInProgress: 5 },
    // Far ahead: an accepted rollout waits, so no driver tick changes the database behind the fuzzer's back.
    start: { kind: 'at', at: '2099-01-01T00:00:00.000Z' },
  },
  RolloutsController_abort: { rollback: false },
  SchedulesController_create: {
    name: 'fuzz-schedule',
    cron: '0 2 * * 0',
    timeZone: 'Europe/Berlin',
    rollout: { name: 'weekly', target: { kind: 'selector', selector: 'site=lab' }, payload: { kind: 'generation_rollback', toGeneration: 'g1' } },
  },
  ImageBuildsController_create: { spec: { name: 'fuzz-image', hostname: 'vm1', base: { url: 'https://images.example/rootfs.tar.gz', sha256: 'a'.repeat(64) } } },
};

/**
 * Tables whose rows an accepted request's background work goes on updating (an image build runs,
 * and fails, after its 201): there a refused request is judged by the row count alone.
 */
const BACKGROUND_ROWS = new Set(['image_build']);
const rowsOf = (fingerprint: string | undefined) => fingerprint?.split(':')[0];

/** Would destroy what the other operations need (the device, the tokens): only ever sent ids that name nothing. */
const DESTRUCTIVE = new Set(['DevicesController_remove', 'DevicesController_revoke', 'ApiTokensController_revoke', 'EnrollmentTokensController_revoke', 'JobsController_cancel']);

// REST fuzzing (issue 15): every operation of docs/openapi.json gets malformed JSON, wrong
// types, missing and extra fields, oversized values, unicode and traversal in names, bad ids
// and bad query parameters. Every answer is a 4xx naming the field (or a 2xx where the input
// was merely odd), never a 5xx; a refused request leaves every table as it was.
describe('REST API fuzzing (generated from docs/openapi.json)', () => {
  let c: TestController;
  let fx: Fixtures;
  const tried: Array<{ op: string; requests: number; statuses: Record<number, number> }> = [];

  before(async () => {
    // The fuzzer sends thousands of bad tokens from one address: the failure limit (its own tests
    // are in security/) would answer 429 to all but the first 30, hiding what each operation does.
    c = await startTestController({ env: { IBEX_AUTH_FAILURES_PER_SOURCE: '1000000', IBEX_AUTH_FAILURES_PER_TOKEN: '1000000' } });
    await createDevice(c, 'fuzz-dev', { labels: { site: 'lab' } });
    await expectStatus(await c.api('/api/v1/devices/fuzz-dev/desired-state', { method: 'PUT', json: { spec: {}, message: 'first' } }), 200);
    const job = await expectStatus(await c.api('/api/v1/devices/fuzz-dev/jobs', { method: 'POST', json: { type: 'facts.collect' } }), 201);
    const nothing = '00000000-0000-4000-8000-000000000000';
    fx = {
      pathValues: {
        device: 'fuzz-dev',
        revision: '1',
        id: job.id,
        'ApiTokensController_revoke.id': nothing,
        'EnrollmentTokensController_revoke.id': nothing,
        'JobsController_cancel.id': nothing,
        'DevicesController_remove.device': 'no-such-device',
        'DevicesController_revoke.device': 'no-such-device',
      },
      validBodies: Object.fromEntries(ops.filter((o) => o.body).map((o) => [o.id, VALID_BODIES[o.id] ?? o.body!.example ?? {}])),
      destructive: DESTRUCTIVE,
      doc,
    };
  });
  after(async () => {
    if (tried.length) {
      const total = tried.reduce((n, t) => n + t.requests, 0);
      console.log(`REST fuzz (seed ${seed}, ${msPerOp} ms per operation): ${total} requests over ${tried.length} operations`);
      for (const t of tried) console.log(`  ${t.op}: ${t.requests} requests ${JSON.stringify(t.statuses)}`);
    }
    await c?.close();
  });

  it('has a valid body for every operation that takes one (a new operation must be added here)', () => {
    for (const op of ops.filter((o) => o.body)) assert.ok(VALID_BODIES[op.id] !== undefined || op.body!.example !== undefined, `${op.id}: add a valid body to VALID_BODIES`);
    assert.ok(ops.length >= 30, `read ${ops.length} operations from docs/openapi.json`);
    for (const id of DESTRUCTIVE) assert.ok(ops.some((o) => o.id === id), `${id} is in docs/openapi.json`);
    assert.ok(resolve(doc, { $ref: '#/components/schemas/CreateJob' }).properties?.['type']);
  });

  /** Sends a case as it is (headers, raw body); undefined when fetch itself refuses to send it. */
  async function send(op: Operation, fcase: FuzzCase): Promise<Response | undefined> {
    const headers = new Headers();
    if (!('authorization' in fcase.headers)) headers.set('authorization', `Bearer ${c.adminToken}`);
    try {
      for (const [k, v] of Object.entries(fcase.headers)) if (v !== '') headers.set(k, v);
      return await fetch(`${c.baseUrl}${fcase.path}${fcase.query ? `?${fcase.query}` : ''}`, { method: op.method, headers, ...(fcase.body !== undefined ? { body: fcase.body } : {}) });
    } catch (err) {
      // A header value fetch will not put on the wire (not a ByteString): nothing was sent.
      if (err instanceof TypeError && !(err as { cause?: unknown }).cause) return undefined;
      // Nor one undici checks itself before sending (`invalid content-length header`, `invalid range header`).
      if (err instanceof TypeError && (err as { cause?: { code?: string } }).cause?.code === 'UND_ERR_INVALID_ARG') return undefined;
      throw err;
    }
  }

  for (const op of ops.filter((o) => !only || only.test(o.id))) {
    it(`${op.method} ${op.template}: only 4xx naming the field, never 5xx, nothing changed`, async () => {
      let requests = 0;
      const statuses: Record<number, number> = {};
      let fp: DbFingerprint = await dbFingerprint(c.prisma);
      await assertForBudget(fuzzCases(op, fx), check, { seed, msPerOp });
      tried.push({ op: `${op.method} ${op.template}`, requests, statuses });
      assert.ok(requests > 0, 'sent at least one request');

      async function check(fcase: FuzzCase): Promise<void> {
        const res = await send(op, fcase);
        if (!res) return;
        requests++;
        statuses[res.status] = (statuses[res.status] ?? 0) + 1;
        const text = await res.text();
        // Taken before any assertion: the shrinking that follows a failure compares against it.
        if (res.status < 400) fp = await dbFingerprint(c.prisma);
        if (trace) console.log(`${res.status} ${res.headers.get('x-request-id')} ${fcase.what.slice(0, 100)} ${fcase.query.slice(0, 60)}`);
        const ctx = `${op.method} ${fcase.path.slice(0, 200)}${fcase.query ? `?${fcase.query.slice(0, 200)}` : ''} [${fcase.what}] -> ${res.status} ${text.slice(0, 400)}`;
        assert.ok(res.status < 500, `server error: ${ctx}`);
        // A path with dot segments is normalised by the URL: it may name another route.
        const routed = new URL(`${c.baseUrl}${fcase.path}`).pathname === fcase.path;
        if (fcase.mustRefuse && routed) assert.ok(res.status >= 400, `accepted: ${ctx}`);
        if (fcase.status && routed) assert.equal(res.status, fcase.status, ctx);
        if (res.status < 400) return;
        const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown; issues?: Array<{ path: string; message: string }> } };
        assert.equal(typeof body.error?.code, 'string', `no error code: ${ctx}`);
        assert.ok(typeof body.error?.message === 'string' && body.error.message.length > 0, `no error message: ${ctx}`);
        if (body.error!.code === 'validation_failed') {
          assert.ok(body.error!.issues?.length, `validation_failed without issues: ${ctx}`);
          if (fcase.field) {
            const f = fcase.field;
            assert.ok(
              body.error!.issues!.some((i) => i.path === f || i.path.startsWith(`${f}.`) || i.path.startsWith(`${f}[`)),
              `the refusal does not name ${JSON.stringify(f).slice(0, 80)}: ${ctx}`,
            );
          }
        }
        const after = await dbFingerprint(c.prisma);
        const changed = changedTables(fp, after).filter((t) => !(BACKGROUND_ROWS.has(t) && rowsOf(fp[t]) === rowsOf(after[t])));
        if (changed.length && trace) console.log(await c.prisma.$queryRawUnsafe(`SELECT action, "requestId", at FROM audit_event ORDER BY id DESC LIMIT 3`));
        assert.deepEqual(changed, [], `refused, but the database changed: ${ctx}`);
      }
    });
  }

  it('still answers after the fuzzing', async () => {
    await expectStatus(await c.api('/healthz', { token: null }), 200);
    const dev = await expectStatus(await c.api('/api/v1/devices/fuzz-dev'), 200);
    assert.equal(dev.name, 'fuzz-dev');
  });
});
