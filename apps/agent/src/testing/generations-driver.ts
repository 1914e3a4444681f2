// A small process that runs the real generations code, for crash tests: it is SIGKILLed at a
// failpoint (IBEX_AGENT_FAILPOINTS) like the agent would be, and run again to recover.
//   node generations-driver.js '{"root": "...", "op": "upgrade", "request": {...}}'
import { GenerationsRoot } from '../capabilities/generations/generations-root.js';
import { gc } from '../capabilities/generations/gc.js';
import { recover } from '../capabilities/generations/generations-journal.js';
import { type InitRequest, init } from '../capabilities/generations/init-adopt.js';
import { type RollbackRequest, rollback } from '../capabilities/generations/rollback.js';
import { type UpgradeRequest, upgrade } from '../capabilities/generations/upgrade.js';
import { createLogger } from '../common/log.js';
import { NodeSystemAdapter } from '../system/node-system-adapter.js';
import { agentCommand } from './agent-process.js';

const arg = JSON.parse(process.argv[2] ?? '{}') as { root: string; op: 'init' | 'upgrade' | 'rollback' | 'recover' | 'gc'; request?: unknown };
const [cmd, pre] = agentCommand();
const m = new GenerationsRoot({ root: arg.root, sys: new NodeSystemAdapter(), log: createLogger({ level: 'info', format: 'text' }), selfCommand: [cmd, ...pre] });
const ops = {
  init: () => init(m, arg.request as InitRequest),
  upgrade: () => upgrade(m, arg.request as UpgradeRequest),
  rollback: () => rollback(m, (arg.request ?? {}) as RollbackRequest),
  recover: () => recover(m),
  gc: () => gc(m),
};
ops[arg.op]().then(
  (r) => process.stdout.write(JSON.stringify(r ?? null) + '\n'),
  (err: unknown) => {
    process.stderr.write(`driver: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
