import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { readStatusFile, type StatusFile, writeStatusFile } from './status-file.js';

describe('status.json', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ibex-status-file-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const status: StatusFile = { connected: true, credentialRefused: false, pid: 42, bootId: 'b', startedAtMs: 1, controller: 'grpc://127.0.0.1:1', running: true, updatedAtMs: 2 };

  it('is replaced whole, readable by everyone, with no temp file left', () => {
    const path = join(dir, 'data', 'status.json');
    writeStatusFile(path, { ...status, connected: false });
    writeStatusFile(path, status);
    assert.deepEqual(readStatusFile(path), status);
    assert.equal(statSync(path).mode & 0o777, 0o644);
    assert.deepEqual(readdirSync(join(dir, 'data')), ['status.json']);
  });

  it('reads as absent when missing, or empty or torn as a power cut can leave it (it is not fsynced)', () => {
    assert.equal(readStatusFile(join(dir, 'none.json')), undefined);
    const empty = join(dir, 'empty.json');
    writeFileSync(empty, '');
    assert.equal(readStatusFile(empty), undefined);
    const torn = join(dir, 'torn.json');
    writeFileSync(torn, '{"connected": tr');
    assert.equal(readStatusFile(torn), undefined);
  });
});
