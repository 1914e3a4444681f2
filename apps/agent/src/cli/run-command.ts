import { Agent } from '../agent/agent.js';
import { createLogger } from '../common/log.js';
import { readCredential } from '../journal/credential.js';
import { DataDir } from '../journal/data-dir.js';
import { DataDirLock, lockRefusal } from '../journal/data-dir-lock.js';
import { type FlagSpec, parseFlags } from './args.js';
import { type CliEnv, commonFlags, configFrom, connectFlags } from './common-flags.js';

export const runFlags: FlagSpec[] = [
  ...connectFlags,
  { name: 'drift-check-interval-sec', kind: 'value', arg: 'SECONDS', help: 'how often to look for drift (default 300)' },
  { name: 'heal-drift', kind: 'switch', help: 're-apply sections that drifted (default on; --no-heal-drift to only report)' },
  ...commonFlags,
];

export async function runCommand(argv: string[], io: CliEnv): Promise<number> {
  // Caught from the first moment: a stop during the start (recovery can take a while) is a
  // clean stop once the start is done, not a death by the default handler.
  let onSignal: (sig: NodeJS.Signals) => void = () => {};
  const signalled = new Promise<string>((resolve) => (onSignal = resolve));
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  try {
    return await runAgent(argv, io, signalled);
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  }
}

async function runAgent(argv: string[], io: CliEnv, signalled: Promise<string>): Promise<number> {
  const cfg = configFrom(parseFlags('run', argv, runFlags), io);
  const log = createLogger({ level: cfg.logLevel, format: cfg.logFormat });
  const dataDir = new DataDir(cfg.dataDir);
  const cred = readCredential(dataDir.credential);
  if (!cred) {
    io.err(`ibex-agent run: not enrolled (no ${dataDir.credential}); run ibex-agent enroll --controller URL --token TOKEN first\n`);
    return 1;
  }
  // One process changes the device through a data dir (data-dir-lock.ts).
  const lock = DataDirLock.acquire(cfg.dataDir, 'run');
  if (!(lock instanceof DataDirLock)) {
    io.err(lockRefusal('run', cfg.dataDir, lock) + '\n');
    return 1;
  }
  try {
    const agent = new Agent(cfg, cred, log);
    await agent.start();
    const sig = await signalled;
    log.info('signal received', { signal: sig });
    await agent.stop();
    return 0;
  } finally {
    lock.release();
  }
}
