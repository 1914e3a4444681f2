import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UsageError } from '../common/errors.js';
import { type FlagSpec, parseFlags } from './args.js';

const specs: FlagSpec[] = [
  { name: 'spec', kind: 'value', arg: 'FILE', help: '', required: true },
  { name: 'json', kind: 'switch', help: '' },
  { name: 'heal-drift', kind: 'switch', help: '' },
];
const usage = (argv: string[], re: RegExp) => assert.throws(() => parseFlags('plan', argv, specs), (e: unknown) => e instanceof UsageError && re.test(e.message));

describe('flag parsing', () => {
  it('takes --flag value, --flag=value, switches and --no-switches', () => {
    assert.deepEqual(parseFlags('plan', ['--spec', 'a.json', '--json'], specs), { spec: 'a.json', json: true });
    assert.deepEqual(parseFlags('plan', ['--spec=a=b.json', '--no-heal-drift'], specs), { spec: 'a=b.json', 'heal-drift': false });
    assert.deepEqual(parseFlags('plan', ['--spec', 'x', '--json=false'], specs), { spec: 'x', json: false });
  });

  it('refuses what it does not know, naming it and listing the flags', () => {
    usage(['--spec', 'x', '--jsn'], /ibex-agent plan: unknown flag --jsn; flags are: --spec, --json, --heal-drift/);
    usage(['--spec', 'x', 'extra'], /unexpected argument "extra"/);
    usage(['--spec'], /--spec needs a value \(FILE\)/);
    usage(['--spec', '--json'], /--spec needs a value/);
    usage(['--json'], /--spec FILE is required/);
    usage(['--spec', 'a', '--spec', 'b'], /--spec given twice/);
    usage(['--spec', 'a', '--json=yes'], /--json is a switch/);
    usage(['--spec='], /needs a non-empty value/);
    usage(['--spec', 'x', '--no-spec'], /unknown flag --no-spec/);
  });
});
