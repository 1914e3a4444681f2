import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import { ValidationError } from '@ibex/spec';
import { Conflict, Forbidden, NotFound, Unauthenticated, Unavailable, ValidationFailed } from '../common/errors.js';
import { Prisma } from '../generated/prisma/client.js';
import { grpcFailure, isTransient, retryTransient } from './grpc-status.js';

describe('grpcFailure', () => {
  it('sends details grpc-js can encode: an unpaired surrogate becomes U+FFFD (else the call never ends)', () => {
    const f = grpcFailure(new ValidationFailed('invalid Hello: facts.hostname: bad "x\ud800"', []));
    assert.equal(f.details, 'invalid Hello: facts.hostname: bad "x\ufffd"');
    assert.doesNotThrow(() => encodeURI(f.details));
  });

  it('maps each domain error to its gRPC code, keeping the message', () => {
    const cases: [Error, status][] = [
      [new ValidationFailed('invalid Hello: boot_id: too long', [{ path: 'boot_id', message: 'too long' }]), status.INVALID_ARGUMENT],
      [new ValidationError('spec', [{ path: 'files', message: 'bad' }]), status.INVALID_ARGUMENT],
      [new NotFound('job x not found'), status.NOT_FOUND],
      [new Conflict('name taken'), status.ALREADY_EXISTS],
      [new Conflict('job already finished', { precondition: true }), status.FAILED_PRECONDITION],
      [new Unauthenticated('bad credential'), status.UNAUTHENTICATED],
      [new Forbidden('viewer token'), status.PERMISSION_DENIED],
      [new Unavailable('redis down'), status.UNAVAILABLE],
    ];
    for (const [err, code] of cases) assert.deepEqual(grpcFailure(err), { code, details: err.message }, err.name);
  });

  it('says UNAVAILABLE when Postgres or Redis cannot be reached, and hides other errors as INTERNAL', () => {
    const pg = new Prisma.PrismaClientKnownRequestError("Can't reach database server at 127.0.0.1:5432", { code: 'P1001', clientVersion: '7' });
    assert.equal(grpcFailure(pg).code, status.UNAVAILABLE);
    assert.equal(grpcFailure(new Error('Connection is closed.')).code, status.UNAVAILABLE);
    assert.equal(grpcFailure(new Error('query failed', { cause: Object.assign(new Error('connect'), { code: 'ECONNREFUSED' }) })).code, status.UNAVAILABLE);
    assert.deepEqual(grpcFailure(new TypeError('x is undefined')), { code: status.INTERNAL, details: 'internal controller error (see the controller log)' });
  });
});

describe('isTransient / retryTransient', () => {
  const known = (code: string, message: string) => new Prisma.PrismaClientKnownRequestError(message, { code, clientVersion: '7' });

  it('counts pool timeouts, transactions that could not start or expired, conflicts and deadlocks as contention; not outages or bugs', () => {
    assert.ok(isTransient(known('P2024', 'Timed out fetching a new connection from the connection pool.')));
    assert.ok(isTransient(known('P2028', 'Transaction API error: Unable to start a transaction in the given time.')));
    assert.ok(isTransient(known('P2034', 'Transaction failed due to a write conflict or a deadlock. Please retry your transaction')));
    assert.ok(isTransient(new Error('query failed', { cause: Object.assign(new Error('deadlock detected'), { code: '40P01' }) })));
    assert.equal(isTransient(known('P1001', "Can't reach database server at 127.0.0.1:5432")), false);
    assert.equal(isTransient(known('P2002', 'Unique constraint failed on the fields: (`name`)')), false);
    assert.equal(isTransient(new ValidationFailed('invalid JobUpdate: job_id: bad', [])), false);
  });

  it('retries contention until it passes, gives up after the attempts, and never retries other errors', async () => {
    let calls = 0;
    const retried: number[] = [];
    const v = await retryTransient(
      async () => {
        if (++calls < 3) throw known('P2028', 'Transaction API error: Unable to start a transaction in the given time.');
        return 'ok';
      },
      { baseMs: 5, onRetry: (_e, n) => retried.push(n) },
    );
    assert.equal(v, 'ok');
    assert.equal(calls, 3);
    assert.deepEqual(retried, [1, 2]);

    calls = 0;
    await assert.rejects(retryTransient(async () => { calls++; throw known('P2024', 'pool timeout'); }, { attempts: 3, baseMs: 1 }), /pool timeout/);
    assert.equal(calls, 3);

    calls = 0;
    await assert.rejects(retryTransient(async () => { calls++; throw new TypeError('x is undefined'); }, { baseMs: 1 }), TypeError);
    assert.equal(calls, 1);
  });
});
