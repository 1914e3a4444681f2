import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Client, credentials, Metadata, status, type ClientDuplexStream } from '@grpc/grpc-js';
import fc from 'fast-check';
import { AgentMessage, ControllerMessage, JobOutcome, SectionState } from '@ibex/proto';
import { changedTables, dbFingerprint } from '../../testing/db-fingerprint.js';
import { FakeAgent, sampleFacts } from '../../testing/fake-agent.js';
import { assertForBudget, fuzzSettings, fuzzString } from '../../testing/fuzz-values.js';
import { startTestController, type TestController } from '../../testing/test-controller.js';
import { waitFor } from '../../testing/wait-for.js';
import { createJob, enrollDevice } from '../testing/fixtures.js';

const CONNECT = '/ibex.agent.v1.AgentService/Connect';
const { seed, msPerOp } = fuzzSettings(4000);

/** What a stream may end with: a clear refusal, never a bug (INTERNAL, UNKNOWN). */
const CLEAR_ENDS = new Set([status.OK, status.CANCELLED, status.INVALID_ARGUMENT, status.FAILED_PRECONDITION, status.RESOURCE_EXHAUSTED, status.UNAUTHENTICATED, status.PERMISSION_DENIED, status.NOT_FOUND, status.ALREADY_EXISTS]);

type Frame = Buffer;
const encode = (m: AgentMessage['msg']): Frame => Buffer.from(AgentMessage.encode({ msg: m }).finish());

/** A raw Connect stream: frames go out as they are (no encoding), answers are decoded. */
class RawStream {
  readonly received: ControllerMessage[] = [];
  readonly ended: Promise<{ code: status; details: string }>;
  private readonly client: Client;
  private readonly call: ClientDuplexStream<Frame, Buffer>;

  constructor(address: string, credential: string) {
    this.client = new Client(address, credentials.createInsecure());
    const md = new Metadata();
    md.set('authorization', `Bearer ${credential}`);
    this.call = this.client.makeBidiStreamRequest(CONNECT, (b: Frame) => b, (b: Buffer) => b, md);
    this.call.on('data', (b: Buffer) => this.received.push(ControllerMessage.decode(b)));
    this.call.on('error', () => {});
    this.ended = new Promise((resolve) => this.call.on('status', (s) => resolve({ code: s.code, details: s.details })));
  }

  write(f: Frame): void {
    this.call.write(f);
  }

  /** The end status, or undefined if the stream is still open after `ms`. */
  async endWithin(ms: number): Promise<{ code: status; details: string } | undefined> {
    let t: NodeJS.Timeout | undefined;
    const r = await Promise.race([this.ended, new Promise<undefined>((res) => (t = setTimeout(() => res(undefined), ms)))]);
    clearTimeout(t);
    return r;
  }

  async waitFor(what: (m: ControllerMessage) => boolean, ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      if (this.received.some(what)) return true;
      await new Promise((r) => setTimeout(r, 10));
    }
    return false;
  }

  close(): void {
    this.call.cancel();
    this.client.close();
  }
}

const hello = (): AgentMessage['msg'] => ({
  $case: 'hello',
  value: { agentVersion: '0.1.0', facts: sampleFacts('fuzz'), lastAppliedRevision: 0, lastReceivedRevision: 0, unfinishedJobs: [], bootId: 'boot-1' },
});

/** Valid messages an agent sends after Hello, as templates whose strings the fuzzer replaces. */
function afterHello(): NonNullable<AgentMessage['msg']>[] {
  const jobId = randomUUID();
  return [
    { $case: 'heartbeat', value: { seq: 1, sentAtMs: Date.now() } },
    { $case: 'jobUpdate', value: { updateId: `${jobId}:1:log:0`, jobId, attempt: 1, update: { $case: 'log', value: { lines: [{ tsMs: Date.now(), level: 'info', text: 'hello' }] } } } },
    { $case: 'jobUpdate', value: { updateId: `${jobId}:1:result:0`, jobId, attempt: 1, update: { $case: 'result', value: { outcome: JobOutcome.JOB_OUTCOME_SUCCEEDED, outputJson: '{}', error: '', retryable: false, finishedAtMs: Date.now() } } } },
    { $case: 'facts', value: { facts: sampleFacts('fuzz') } },
    { $case: 'stateReport', value: { reportId: randomUUID(), revision: 1, sections: [{ section: 'files', state: SectionState.SECTION_STATE_IN_SYNC, error: '', detailJson: '', observedAtMs: Date.now() }] } },
    {
      $case: 'localChange',
      value: { changeId: randomUUID(), type: 'state.apply', paramsJson: '{}', startedAtMs: Date.now(), result: { outcome: JobOutcome.JOB_OUTCOME_SUCCEEDED, outputJson: '{}', error: '', retryable: false, finishedAtMs: Date.now() }, user: 'root', log: [{ tsMs: Date.now(), level: 'info', text: 'by hand' }] },
    },
  ];
}

/** Every string leaf of a message, by path. */
function stringPaths(v: unknown, path: string[] = []): string[][] {
  if (typeof v === 'string') return [path];
  if (v && typeof v === 'object') return Object.entries(v).flatMap(([k, x]) => (k === '$case' ? [] : stringPaths(x, [...path, k])));
  return [];
}

function withString<T>(v: T, path: string[], s: string): T {
  if (!path.length) return s as T;
  const [k, ...rest] = path;
  const copy = (Array.isArray(v) ? [...v] : { ...v }) as Record<string, unknown>;
  copy[k!] = withString(copy[k!], rest, s);
  return copy as T;
}

/** One fuzzed stream: what is sent, in order, and whether it must be refused. */
interface StreamCase {
  what: string;
  frames: Frame[];
  /** Must end with a refusal (not OK, not still open). */
  mustEnd: boolean;
  /** Nothing valid precedes the bad frame: the database must stay as it was. */
  nothingValid: boolean;
}

const randomBytes = fc.uint8Array({ minLength: 1, maxLength: 300 }).map((a) => Buffer.from(a));

const streamCase: fc.Arbitrary<StreamCase> = fc.oneof<fc.Arbitrary<StreamCase>[]>(
  randomBytes.map((b) => ({ what: `random frame first (${b.length} bytes)`, frames: [b], mustEnd: false, nothingValid: true })),
  fc.integer({ min: 1, max: 2000 }).map((cut) => {
    const full = encode(hello());
    const n = Math.min(cut, full.length - 1);
    return { what: `Hello truncated to ${n} of ${full.length} bytes`, frames: [full.subarray(0, n)], mustEnd: true, nothingValid: true };
  }),
  fc.integer({ min: 0, max: 5 }).map((i) => {
    const m = afterHello()[i]!;
    return { what: `${m.$case} before Hello`, frames: [encode(m)], mustEnd: true, nothingValid: true };
  }),
  fc.tuple(fc.nat(), fc.nat(), fuzzString).map(([i, p, s]) => {
    const withStrings = afterHello().filter((x) => stringPaths(x.value).length);
    const m = withStrings[i % withStrings.length]!;
    const paths = stringPaths(m.value);
    const path = paths[p % paths.length]!;
    return { what: `${m.$case}.${path.join('.')} = ${JSON.stringify(s).slice(0, 60)}`, frames: [encode(hello()), encode({ ...m, value: withString(m.value, path, s) } as AgentMessage['msg'])], mustEnd: false, nothingValid: false };
  }),
  fc.tuple(fc.nat(), fuzzString).map(([p, s]) => {
    const h = hello()!;
    const paths = stringPaths(h.value);
    const path = paths[p % paths.length]!;
    return { what: `hello.${path.join('.')} = ${JSON.stringify(s).slice(0, 60)}`, frames: [encode({ ...h, value: withString(h.value, path, s) } as AgentMessage['msg'])], mustEnd: false, nothingValid: false };
  }),
  fc.tuple(randomBytes, fc.integer({ min: 0, max: 5 })).map(([b, i]) => {
    const valid = encode(afterHello()[i]!);
    return { what: `Hello, then ${afterHello()[i]!.$case} truncated + random bytes`, frames: [encode(hello()), Buffer.concat([valid.subarray(0, Math.max(1, valid.length >> 1)), b])], mustEnd: false, nothingValid: false };
  }),
  fc.constant<StreamCase>({ what: 'two Hellos', frames: [encode(hello()), encode(hello())], mustEnd: true, nothingValid: false }),
  fc.constant<StreamCase>({ what: 'empty frame first', frames: [Buffer.alloc(0)], mustEnd: true, nothingValid: true }),
);

// gRPC stream fuzzing (issue 15): random and truncated protobuf frames, oversized messages,
// messages out of order, odd strings in every field, unknown job ids. The controller survives,
// every stream ends with a clear status (never INTERNAL/UNKNOWN), and a refused first frame
// changes nothing in the database.
describe('gRPC Connect fuzzing', () => {
  let c: TestController;
  let credential: string;
  let deviceId: string;
  const streams: RawStream[] = [];
  const open = () => {
    const s = new RawStream(c.grpcAddress, credential);
    streams.push(s);
    return s;
  };

  before(async () => {
    c = await startTestController({ env: { IBEX_HELLO_TIMEOUT_MS: '2000', IBEX_AUTH_FAILURES_PER_SOURCE: '1000000', IBEX_AUTH_FAILURES_PER_TOKEN: '1000000' } });
    const d = await enrollDevice(c, 'grpc-fuzz');
    credential = d.credential;
    deviceId = d.deviceId;
  });
  after(async () => {
    for (const s of streams) s.close();
    await c?.close();
  });

  it('ends every bad stream with a clear status and survives', async () => {
    let tried = 0;
    const codes: Record<string, number> = {};
    const check = async (sc: StreamCase): Promise<void> => {
      tried++;
      // The previous stream's clean-up (connectedAt cleared) must land before the snapshot.
      if (sc.nothingValid) await waitFor('the previous stream to be cleaned up', async () => (await c.prisma.device.findUniqueOrThrow({ where: { id: deviceId } })).connectedAt === null);
      const fp = sc.nothingValid ? await dbFingerprint(c.prisma) : undefined;
      const s = open();
      for (const f of sc.frames) s.write(f);
      const end = await s.endWithin(sc.mustEnd ? 5000 : 400);
      s.close();
      const ctx = `[${sc.what}] -> ${end ? `${status[end.code]}: ${end.details}` : 'still open'}`;
      codes[end ? status[end.code]! : 'open'] = (codes[end ? status[end.code]! : 'open'] ?? 0) + 1;
      if (sc.mustEnd) assert.ok(end && end.code !== status.OK && end.code !== status.CANCELLED, `must be refused: ${ctx}`);
      if (end && end.code !== status.CANCELLED) {
        assert.ok(CLEAR_ENDS.has(end.code), `not a clear status: ${ctx}`);
        if (end.code !== status.OK) assert.ok(end.details.length > 10, `no details: ${ctx}`);
      }
      if (fp && end && end.code !== status.OK && end.code !== status.CANCELLED) {
        await new Promise((r) => setTimeout(r, 50));
        assert.deepEqual(changedTables(fp, await dbFingerprint(c.prisma)), [], `refused, but the database changed: ${ctx}`);
      }
    };
    await assertForBudget(streamCase, check, { seed, msPerOp });
    console.log(`gRPC fuzz (seed ${seed}, ${msPerOp} ms): ${tried} streams ${JSON.stringify(codes)}`);
    assert.ok(tried > 0);
  });

  it('refuses an Enroll request that is not valid protobuf with INVALID_ARGUMENT, enrolling nothing', async () => {
    const before = await c.prisma.device.count();
    const client = new Client(c.grpcAddress, credentials.createInsecure());
    try {
      for (const frame of [Buffer.from([0x0d]), Buffer.from([0x0a, 0x05, 0x41]), Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f])]) {
        const err = await new Promise<{ code: status; details: string }>((resolve) =>
          client.makeUnaryRequest('/ibex.agent.v1.AgentService/Enroll', (b: Frame) => b, (b: Buffer) => b, frame, (e) => resolve({ code: e?.code ?? status.OK, details: e?.details ?? '' })),
        );
        assert.equal(err.code, status.INVALID_ARGUMENT, `${frame.toString('hex')}: ${JSON.stringify(err)}`);
        assert.match(err.details, /^invalid EnrollRequest: the \d+-byte frame is not a valid protobuf EnrollRequest/);
      }
    } finally {
      client.close();
    }
    assert.equal(await c.prisma.device.count(), before);
  });

  it('refuses a NUL character in a Hello with INVALID_ARGUMENT naming the field, and fails a job whose output holds one', async () => {
    const cleanedUp = async () => (await c.prisma.device.findUniqueOrThrow({ where: { id: deviceId } })).connectedAt === null;
    await waitFor('the streams before to be cleaned up', cleanedUp);
    await new Promise((r) => setTimeout(r, 200));
    const before = await dbFingerprint(c.prisma);
    const bad = new FakeAgent(c.grpcAddress, credential);
    bad.hello({ facts: { ...sampleFacts('fuzz'), hostname: 'edge\u0000one' } });
    const end = await bad.ended;
    bad.close();
    assert.equal(end.code, status.INVALID_ARGUMENT, end.details);
    assert.match(end.details, /^invalid Hello: facts\.hostname: contains a NUL character/);
    await waitFor('the stream to be cleaned up', cleanedUp);
    assert.deepEqual(changedTables(before, await dbFingerprint(c.prisma)), []);

    const job = await createJob(c, deviceId, { type: 'facts.collect' });
    const agent = await FakeAgent.connect(c.grpcAddress, credential);
    try {
      const a = await agent.next('assign', (x) => x.jobId === job.id);
      const updateId = `${job.id}:${a.attempt}:result:0`;
      const outputJson = JSON.stringify({ ...sampleFacts('fuzz'), hostname: 'a\u0000b' });
      agent.send({ $case: 'jobUpdate', value: { updateId, jobId: job.id, attempt: a.attempt, update: { $case: 'result', value: { outcome: JobOutcome.JOB_OUTCOME_SUCCEEDED, outputJson, error: '', retryable: false, finishedAtMs: Date.now() } } } });
      await agent.acked(updateId);
      const row = await c.prisma.job.findUniqueOrThrow({ where: { id: job.id } });
      assert.equal(row.status, 'failed');
      assert.match(row.error ?? '', /^invalid output: output_json at hostname contains a NUL character/);
    } finally {
      agent.close();
    }
  });

  it('refuses an oversized message with RESOURCE_EXHAUSTED', async () => {
    const s = open();
    s.write(encode(hello()));
    assert.ok(await s.waitFor((m) => m.msg?.$case === 'welcome', 5000), 'welcomed');
    const big = encode({ $case: 'facts', value: { facts: { ...sampleFacts('fuzz'), kernel: 'k'.repeat(33 * 1024 * 1024) } } });
    s.write(big);
    const end = await s.endWithin(15_000);
    assert.equal(end?.code, status.RESOURCE_EXHAUSTED, JSON.stringify(end));
    assert.match(end!.details, /larger than max|exceeds|too large/i);
  });

  it('acknowledges updates for unknown job ids and keeps the stream', async () => {
    const s = open();
    s.write(encode(hello()));
    assert.ok(await s.waitFor((m) => m.msg?.$case === 'welcome', 5000), 'welcomed');
    const jobId = randomUUID();
    const updateId = `${jobId}:1:log:0`;
    s.write(encode({ $case: 'jobUpdate', value: { updateId, jobId, attempt: 1, update: { $case: 'log', value: { lines: [{ tsMs: Date.now(), level: 'info', text: 'x' }] } } } }));
    assert.ok(await s.waitFor((m) => m.msg?.$case === 'ack' && m.msg.value.ids.includes(updateId), 5000), 'acknowledged');
    assert.equal(await s.endWithin(300), undefined, 'still open');
    assert.equal(await c.prisma.jobEvent.count({ where: { jobId } }), 0);
  });

  it('still serves a well-behaved agent afterwards', async () => {
    const agent = await FakeAgent.connect(c.grpcAddress, credential);
    try {
      agent.heartbeat(1);
      assert.equal((await c.prisma.device.findUniqueOrThrow({ where: { id: deviceId } })).name, 'grpc-fuzz');
    } finally {
      agent.close();
    }
  });
});
