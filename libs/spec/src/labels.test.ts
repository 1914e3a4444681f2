import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { labelsSchema, matchesSelector, parseSelector } from './labels.js';

describe('label selectors', () => {
  it('parses equality, inequality, existence and absence', () => {
    assert.deepEqual(parseSelector('site=berlin, tier!=edge,beta,!legacy,a==b'), [
      { key: 'site', op: 'eq', value: 'berlin' },
      { key: 'tier', op: 'neq', value: 'edge' },
      { key: 'beta', op: 'exists' },
      { key: 'legacy', op: 'notexists' },
      { key: 'a', op: 'eq', value: 'b' },
    ]);
    assert.deepEqual(parseSelector(''), []);
  });

  it('names the bad term', () => {
    assert.throws(() => parseSelector('site=berlin,=x'), /selector term "=x"/);
    assert.throws(() => parseSelector('bad key=x'), /"bad key=x"/);
    assert.throws(() => parseSelector('k=a b'), /"a b" is not a valid label value/);
  });

  it('matches like Kubernetes: != also matches devices without the label', () => {
    const terms = parseSelector('site=berlin,tier!=edge');
    assert.equal(matchesSelector({ site: 'berlin' }, terms), true);
    assert.equal(matchesSelector({ site: 'berlin', tier: 'core' }, terms), true);
    assert.equal(matchesSelector({ site: 'berlin', tier: 'edge' }, terms), false);
    assert.equal(matchesSelector({ site: 'paris' }, terms), false);
    assert.equal(matchesSelector({ x: '1' }, parseSelector('!x')), false);
  });

  it('validates label keys and values', () => {
    assert.equal(labelsSchema.safeParse({ 'ibex.dev/site': 'berlin-1', tier: '' }).success, true);
    const bad = labelsSchema.safeParse({ '-x': 'ok' });
    assert.equal(bad.success, false);
    assert.equal(labelsSchema.safeParse({ ok: 'not ok' }).success, false);
  });
});
