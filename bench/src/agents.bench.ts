#!/usr/bin/env node
// Load harness entry: `npm run bench:agents -- --agents 2000` (see --help, bench/README.md).
// Exit status: 0 bar met, 1 bar not met, 2 bad flags, 3 the run itself failed, 130 interrupted.
import { parseBenchFlags, usage, UsageError } from './bench-flags.js';
import { summary } from './bench-report.js';
import { BenchRun, RunFailed } from './bench-run.js';
import { Cleanup } from './cleanup.js';

async function main(): Promise<number> {
  let opts;
  try {
    opts = parseBenchFlags(process.argv.slice(2), process.env);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`bench:agents: ${err.message}\n`);
    return 2;
  }
  if (opts.help) {
    process.stdout.write(`${usage()}\n`);
    return 0;
  }
  // With --json, stdout carries only the result; everything for people goes to stderr.
  const human = opts.json ? process.stderr : process.stdout;
  const print = (line: string) => human.write(`${line}\n`);
  const cleanup = new Cleanup((line) => process.stderr.write(`${line}\n`));
  const run = new BenchRun(opts, cleanup, print);

  let interrupted = false;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      if (interrupted) return;
      interrupted = true;
      process.stderr.write(`\n${sig}: stopping the agents and the controller, removing the database and Redis keys\n`);
      void run.stopAgents().then(() => cleanup.run()).finally(() => process.exit(130));
    });
  }

  try {
    const result = await run.run();
    print(summary(result));
    if (opts.json) process.stdout.write(`${JSON.stringify(result)}\n`);
    return result.ok ? 0 : 1;
  } catch (err) {
    const message = err instanceof RunFailed ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err);
    process.stderr.write(`bench:agents: the run failed: ${message}\n`);
    return 3;
  } finally {
    await run.stopAgents();
    await cleanup.run();
  }
}

// Explicit exit: a stray handle (a gRPC channel closing slowly) must not keep the harness alive.
main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench:agents: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(3);
  },
);
