import { Agent } from '../agent/agent.js';
import { createLogger } from '../common/log.js';
import { readCredential } from '../journal/credential.js';
import { DataDir } from '../journal/data-dir.js';
import { type FlagSpec, parseFlags } from './args.js';
import { type CliEnv, commonFlags, configFrom, connectFlags } from './common-flags.js';

export const runFlags: FlagSpec[] = [
  ...connectFlags,
  { name: 'drift-check-interval-sec', kind: 'value', arg: 'SECONDS', help: 'how often to look for drift (default 300)' },
  { name: 'heal-drift', kind: 'switch', help: 're-apply sections that drifted (default on; --no-heal-drift to only report)' },
  ...commonFlags,
];

export async function runCommand(argv: string[], io: CliEnv): Promise<number> {
  const cfg = configFrom(parseFlags('run', argv, runFlags), io);
  const log = createLogger({ level: cfg.logLevel, format: cfg.logFormat });
  const dataDir = new DataDir(cfg.dataDir);
  const cred = readCredential(dataDir.credential);
  if (!cred) {
    io.err(`ibex-agent run: not enrolled (no ${dataDir.credential}); run ibex-agent enroll --controller URL --token TOKEN first\n`);
    return 1;
  }
  const agent = new Agent(cfg, cred, log);
  const signalled = new Promise<string>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  await agent.start();
  const sig = await signalled;
  log.info('signal received', { signal: sig });
  await agent.stop();
  return 0;
}
