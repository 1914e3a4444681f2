// A small process that runs the real generations code, for crash tests: it is SIGKILLed at a
// failpoint (IBEX_AGENT_FAILPOINTS) like the agent would be, and run again to recover.
//   node generations-driver.js '{"root": "...", "op": "upgrade", "request": {...}}'
import { GenerationsManager } from '../capabilities/generations/generations-manager.js';
import { createLogger } from '../common/log.js';
import { NodeSystemAdapter } from '../system/node-system-adapter.js';
import { agentCommand } from './agent-process.js';

const arg = JSON.parse(process.argv[2] ?? '{}') as { root: string; op: 'upgrade' | 'rollback' | 'recover' | 'gc'; request?: unknown };
const [cmd, pre] = agentCommand();
const m = new GenerationsManager({ root: arg.root, sys: new NodeSystemAdapter(), log: createLogger({ level: 'info', format: 'text' }), selfCommand: [cmd, ...pre] });
const ops = {
  upgrade: () => m.upgrade(arg.request as Parameters<GenerationsManager['upgrade']>[0]),
  rollback: () => m.rollback((arg.request ?? {}) as Parameters<GenerationsManager['rollback']>[0]),
  recover: () => m.recover(),
  gc: () => m.gc(),
};
ops[arg.op]().then(
  (r) => process.stdout.write(JSON.stringify(r ?? null) + '\n'),
  (err: unknown) => {
    process.stderr.write(`driver: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
