import assert from 'node:assert/strict';
import { it } from 'node:test';
import { createLogger } from './log.js';

it('writes one line per event, as text or JSON, above the level', () => {
  const lines: string[] = [];
  const now = () => new Date('2026-01-02T03:04:05.000Z');
  const text = createLogger({ level: 'info', format: 'text', write: (l) => lines.push(l), now });
  text.debug('hidden');
  text.info('job finished', { jobId: 'j 1', attempt: 2, error: undefined });
  assert.deepEqual(lines, ['2026-01-02T03:04:05.000Z INFO  job finished jobId="j 1" attempt=2\n']);
  const json = createLogger({ level: 'debug', format: 'json', write: (l) => lines.push(l), now });
  json.warn('drift', { section: 'files' });
  assert.deepEqual(JSON.parse(lines[1]!), { ts: '2026-01-02T03:04:05.000Z', level: 'warn', msg: 'drift', section: 'files' });
});
