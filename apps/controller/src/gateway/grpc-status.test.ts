import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import { ValidationError } from '@ibex/spec';
import { Conflict, Forbidden, NotFound, Unauthenticated, Unavailable, ValidationFailed } from '../common/errors.js';
import { Prisma } from '../generated/prisma/client.js';
import { grpcFailure } from './grpc-status.js';

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
