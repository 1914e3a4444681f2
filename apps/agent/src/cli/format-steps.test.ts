import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatStepDetails, shellQuote } from './format-steps.js';

describe('dry-run step details', () => {
  it('shows commands as argv a reader can copy, then the diff, indented', () => {
    const text = formatStepDetails({
      action: 'ifup',
      text: 'bring eth0 up',
      commands: [
        ['ifdown', '-i', '/etc/network/interfaces', 'eth0'],
        ['ip', 'addr', 'add', '10.0.0.2/24', 'dev', "it's odd"],
      ],
      diff: '--- a/etc/x\n+++ b/etc/x\n@@ -1 +1 @@\n-a\n+b\n',
    });
    assert.equal(
      text,
      [
        '    $ ifdown -i /etc/network/interfaces eth0',
        `    $ ip addr add 10.0.0.2/24 dev 'it'\\''s odd'`,
        '    --- a/etc/x',
        '    +++ b/etc/x',
        '    @@ -1 +1 @@',
        '    -a',
        '    +b',
        '',
      ].join('\n'),
    );
  });

  it('shows nothing for a step without details, and says when a diff was left out', () => {
    assert.equal(formatStepDetails({ action: 'chmod', text: 'chmod /x 0600' }), '');
    assert.equal(formatStepDetails({ action: 'write', text: 'w', diffOmitted: 'too big' }), '    (too big)\n');
  });

  it('quotes only what a shell would split or expand', () => {
    assert.deepEqual(['eth0', 'a b', '', '$HOME', '192.168.1.1/24'].map(shellQuote), ['eth0', "'a b'", "''", "'$HOME'", '192.168.1.1/24']);
  });
});
